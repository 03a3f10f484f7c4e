from collections.abc import Callable

import pytest
from django.urls import reverse

from elicitation import services
from elicitation.models import Participant, Study
from tests.conftest import advance_to_trials, answer_all_trials, categorical_answer, token_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_study_detail_gives_the_prolific_links(make_study: Callable[..., Study]) -> None:
    # given
    study = make_study()
    # when
    links = (
        token_client(study.owner)
        .get(reverse("api:study-detail", kwargs={"slug": study.slug}))
        .json()["links"]
    )
    # then
    entry = f"http://testserver/s/{study.slug}/"
    assert links["direct"] == entry
    assert links["prolific"] == (
        entry + "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}"
        "&SESSION_ID={{%SESSION_ID%}}"
    )
    assert links["completion_url"] == "https://app.prolific.com/submissions/complete?cc=CODE123"
    assert links["prolific_completion_url"] == (
        "https://app.prolific.com/submissions/complete?cc=CODE123"
    )


def test_returned_participant_frees_the_slot_at_once(make_study: Callable[..., Study]) -> None:
    # given one slot, held by a worker who then returns the study on Prolific
    study = make_study(n_stimuli=2, batch_size=2, participants_per_batch=1)
    holder = advance_to_trials(
        services.participant_start(study=study, platform="prolific", external_id="P-1")[0]
    )
    # when
    res = token_client(study.owner).post(
        reverse("api:participant-return", kwargs={"slug": study.slug}),
        {"external_id": "P-1"},
        format="json",
    )
    newcomer = advance_to_trials(
        services.participant_start(study=study, platform="prolific", external_id="P-2")[0]
    )
    # then
    assert res.status_code == 200
    assert res.json()["stage"] == "returned"
    assert newcomer.stage == Participant.Stage.TRIALS
    assert newcomer.batch_id == holder.batch_id


def test_return_needs_an_identifier_and_a_known_participant(
    make_study: Callable[..., Study],
) -> None:
    # given
    study = make_study()
    url = reverse("api:participant-return", kwargs={"slug": study.slug})
    client = token_client(study.owner)
    # when
    empty = client.post(url, {}, format="json")
    unknown = client.post(url, {"external_id": "nobody"}, format="json")
    # then
    assert empty.status_code == 400
    assert empty.json()["message"].startswith("Give the participant's external_id")
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "No such participant in this study."


def test_a_completed_participant_cannot_be_returned(make_study: Callable[..., Study]) -> None:
    # given
    study = make_study()
    p = services.participant_start(study=study, platform="prolific", external_id="done")[0]
    Participant.objects.filter(id=p.id).update(stage=Participant.Stage.COMPLETED)
    # when
    res = token_client(study.owner).post(
        reverse("api:participant-return", kwargs={"slug": study.slug}),
        {"token": str(p.token)},
        format="json",
    )
    # then
    p.refresh_from_db()
    assert res.status_code == 409
    assert res.json()["message"] == "A completed session cannot be returned."
    assert p.stage == Participant.Stage.COMPLETED


def test_participants_are_listed_by_stage_for_researchers_only(
    make_study: Callable[..., Study],
) -> None:
    # given
    study = make_study()
    services.participant_start(study=study, platform="prolific", external_id="x")
    url = reverse("api:participant-list", kwargs={"slug": study.slug})
    # when
    mine = token_client(study.owner).get(url, {"stage": "consent"}).json()["results"]
    stranger = token_client(UserFactory(username="else")).get(url)
    # then
    assert [(p["external_id"], p["stage"], p["batch"]) for p in mine] == [("x", "consent", None)]
    assert stranger.status_code == 403


def test_owner_adds_a_collaborator_over_the_api(make_study: Callable[..., Study]) -> None:
    # given
    study = make_study()
    colleague = UserFactory(username="colleague")
    url = reverse("api:collaborator-add", kwargs={"slug": study.slug})
    # when
    added = token_client(study.owner).post(url, {"username": "colleague"}, format="json")
    unknown = token_client(study.owner).post(url, {"username": "ghost"}, format="json")
    by_collaborator = token_client(colleague).post(url, {"username": "owner"}, format="json")
    # then
    assert added.status_code == 200
    assert added.json() == {"owner": "owner", "researchers": ["colleague"]}
    assert unknown.status_code == 400
    assert unknown.json()["message"] == "username: No account named 'ghost'."
    assert by_collaborator.status_code == 403
    assert list(study.researchers.values_list("username", flat=True)) == ["colleague"]


def test_participant_and_response_lists_carry_the_quality_flags(
    make_study: Callable[..., Study],
) -> None:
    # given: one participant who answered every trial in 10 ms, the same way each time
    study = make_study(n_stimuli=2, batch_size=2)
    participant = answer_all_trials(study, "fast", lambda _t: categorical_answer(), rt_ms=10)
    services.participant_debrief_submit(participant=participant, answers={})
    client = token_client(study.owner)
    # when
    people = client.get(reverse("api:participant-list", kwargs={"slug": study.slug})).json()
    answers = client.get(reverse("api:response-list", kwargs={"slug": study.slug})).json()
    # then
    assert [
        (p["external_id"], p["fast_answers"], p["straight_lining"]) for p in people["results"]
    ] == [("fast", 4, True)]
    assert [r["too_fast"] for r in answers["results"]] == [True] * 4
