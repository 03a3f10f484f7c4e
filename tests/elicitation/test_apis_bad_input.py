"""Every participant endpoint refuses bad input with a clear 4xx and writes nothing."""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from elicitation import services
from elicitation.models import ComprehensionAttempt, Participant, Response, Study, Trial
from tests.conftest import advance_to_trials, categorical_answer
from tests.factories import CLASSES

pytestmark = pytest.mark.django_db


def _url(name: str, participant: Participant) -> str:
    return reverse(f"participant-api:{name}", kwargs={"token": participant.token})


def _submit(client: APIClient, participant: Participant, **overrides: Any) -> Any:
    trial = participant.trials.filter(response__isnull=True).order_by("position").first()
    body: dict[str, Any] = {
        "trial": trial.id if trial else 1,
        "client_key": str(uuid.uuid4()),
        "rt_ms": 900,
        "answer": categorical_answer(),
    }
    body.update(overrides)
    return client.post(_url("session-responses", participant), body, format="json")


@pytest.mark.parametrize(
    ("answer", "message_part"),
    [
        (categorical_answer(p1=101), "p1 must be between 0 and 100"),
        (categorical_answer(p1=-1), "p1 must be between 0 and 100"),
        (categorical_answer(p2=120), "p2 must be between 0 and 100"),
        (categorical_answer(p1="60"), "p1 must be a number"),
        (categorical_answer(top_class="Unicorn"), "Unknown class 'Unicorn'"),
        (categorical_answer(second_class="Zebra"), "Unknown class 'Zebra'"),
        (categorical_answer(impossible=["Cow"]), "Unknown class 'Cow'"),
        (categorical_answer(second_class="Cat"), "must differ from the most probable class"),
        (categorical_answer(impossible=["Cat"]), "cannot also be impossible"),
        (categorical_answer(p1=70, p2=40), "more than 100%"),
        (
            categorical_answer(p1=0, second_class=None, p2=None),
            "The most probable class needs a share above 0%.",
        ),
        (
            categorical_answer(
                p1=5,
                p2=5,
                impossible=[c for c in CLASSES if c not in ("Cat", "Dog")],
            ),
            "The shares add up to 10% and every other class is ruled impossible",
        ),
        ({"top_class": "Cat"}, "top_class and p1 are required"),
        ("Cat 60", "answer must be an object"),
        (categorical_answer(extra=1), "Unexpected fields"),
    ],
)
def test_bad_answers_are_refused_and_nothing_is_written(
    api_client: APIClient, participant_in_trials: Participant, answer: Any, message_part: str
) -> None:
    # when
    res = _submit(api_client, participant_in_trials, answer=answer)
    # then
    assert res.status_code == 400
    assert message_part in res.json()["message"]
    assert Response.objects.exists() is False


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        ({"client_key": "not-a-uuid"}, "client_key"),
        ({"rt_ms": -5}, "rt_ms"),
        ({"trial": "x"}, "trial"),
    ],
)
def test_malformed_submit_fields_are_refused(
    api_client: APIClient,
    participant_in_trials: Participant,
    body: dict[str, Any],
    message_part: str,
) -> None:
    # when
    res = _submit(api_client, participant_in_trials, **body)
    # then
    assert res.status_code == 400
    assert message_part in res.json()["message"]
    assert Response.objects.exists() is False


@pytest.mark.parametrize(
    "name",
    [
        "session-consent",
        "session-comprehension",
        "session-responses",
        "session-debrief",
        "session-start",
    ],
)
def test_malformed_json_body_is_refused(
    api_client: APIClient, participant_in_trials: Participant, name: str
) -> None:
    # given
    url = (
        reverse("participant-api:session-start")
        if name == "session-start"
        else _url(name, participant_in_trials)
    )
    before = Participant.objects.count()
    # when
    res = api_client.post(url, data='{"answers": [1,', content_type="application/json")
    # then
    assert res.status_code == 400
    assert "JSON parse error" in res.json()["message"]
    assert Response.objects.exists() is False
    assert Participant.objects.count() == before


def test_someone_elses_trial_is_refused(
    api_client: APIClient, make_study: Callable[..., Study]
) -> None:
    # given two participants in trials
    study = make_study(n_stimuli=4, batch_size=2)
    mine = advance_to_trials(
        services.participant_start(study=study, platform="prolific", external_id="A")[0]
    )
    theirs = advance_to_trials(
        services.participant_start(study=study, platform="prolific", external_id="B")[0]
    )
    their_trial = theirs.trials.order_by("position").first()
    missing_id = Trial.objects.order_by("-id").values_list("id", flat=True)[0] + 1000
    # when I submit an answer to their trial, and to a trial that does not exist, with my session
    res = _submit(api_client, mine, trial=their_trial.id)
    res_missing = _submit(api_client, mine, trial=missing_id)
    # then both answer the same way: the status does not tell which trial ids exist
    assert res.status_code == 404
    assert res.json() == {"message": "No such trial.", "extra": {"trial": their_trial.id}}
    assert res_missing.status_code == 404
    assert res_missing.json() == {"message": "No such trial.", "extra": {"trial": missing_id}}
    assert Response.objects.exists() is False


def test_unknown_session_token_is_404(api_client: APIClient) -> None:
    # when
    res = api_client.post(
        reverse("participant-api:session-responses", kwargs={"token": uuid.uuid4()}),
        {"trial": 1, "client_key": str(uuid.uuid4()), "rt_ms": 1, "answer": {}},
        format="json",
    )
    # then
    assert res.status_code == 404
    assert res.json()["message"] == "No session with this token."


def test_finished_session_refuses_responses(
    api_client: APIClient, participant_in_trials: Participant
) -> None:
    # given a participant whose session was returned on the platform
    trial_id = participant_in_trials.trials.order_by("position").first().id
    services.participant_return(participant=participant_in_trials)
    # when
    res = _submit(api_client, participant_in_trials, trial=trial_id)
    # then
    assert res.status_code == 409
    assert res.json()["message"] == "This session is finished."
    assert Response.objects.exists() is False


def test_answering_a_trial_out_of_order_is_refused(
    api_client: APIClient, participant_in_trials: Participant
) -> None:
    # given
    later = participant_in_trials.trials.order_by("position")[1]
    # when
    res = _submit(api_client, participant_in_trials, trial=later.id)
    # then
    assert res.status_code == 409
    assert res.json()["message"] == "This is not the current trial."
    assert Response.objects.exists() is False


def test_repeated_submit_returns_the_stored_response_without_writing(
    api_client: APIClient, participant_in_trials: Participant
) -> None:
    # given
    trial = participant_in_trials.trials.order_by("position").first()
    body = {
        "trial": trial.id,
        "client_key": str(uuid.uuid4()),
        "rt_ms": 900,
        "answer": categorical_answer(),
    }
    url = _url("session-responses", participant_in_trials)
    # when
    first = api_client.post(url, body, format="json")
    second = api_client.post(url, body, format="json")
    # then
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert Response.objects.count() == 1


def test_a_second_answer_to_an_answered_trial_is_refused(
    api_client: APIClient, participant_in_trials: Participant
) -> None:
    # given
    trial = participant_in_trials.trials.order_by("position").first()
    _submit(api_client, participant_in_trials, trial=trial.id)
    # when the same trial is answered again with a new key (a second tab)
    res = _submit(api_client, participant_in_trials, trial=trial.id)
    # then
    assert res.status_code == 409
    assert res.json()["message"] == "This trial was already answered."
    assert Response.objects.count() == 1


def test_consent_needs_all_three_statements(
    api_client: APIClient, make_study: Callable[..., Study]
) -> None:
    # given
    participant, _ = services.participant_start(
        study=make_study(), platform="prolific", external_id="C"
    )
    # when
    res = api_client.post(
        _url("session-consent", participant), {"adult": True, "agree": True}, format="json"
    )
    # then
    participant.refresh_from_db()
    assert res.status_code == 400
    assert (
        res.json()["message"] == "understood: All three statements must be confirmed to take part."
    )
    assert participant.stage == Participant.Stage.CONSENT


def test_comprehension_answers_of_wrong_length_are_refused(
    api_client: APIClient, make_study: Callable[..., Study]
) -> None:
    # given
    participant, _ = services.participant_start(
        study=make_study(), platform="prolific", external_id="D"
    )
    services.participant_consent(participant=participant, agreed=True)
    services.participant_instructions_complete(participant=participant)
    # when
    res = api_client.post(
        _url("session-comprehension", participant), {"answers": [1, 0]}, format="json"
    )
    # then
    assert res.status_code == 400
    assert res.json()["message"] == "answers: Expected a list of 1 answers, one per question."
    assert ComprehensionAttempt.objects.exists() is False


def test_comprehension_out_of_order_is_refused(
    api_client: APIClient, make_study: Callable[..., Study]
) -> None:
    # given a participant who has not consented yet
    participant, _ = services.participant_start(
        study=make_study(), platform="prolific", external_id="E"
    )
    # when
    res = api_client.post(
        _url("session-comprehension", participant), {"answers": [1]}, format="json"
    )
    # then
    assert res.status_code == 409
    assert res.json()["message"] == "This step is not open: the session is at 'consent'."
    assert ComprehensionAttempt.objects.exists() is False


def test_debrief_before_the_trials_are_done_is_refused(
    api_client: APIClient, participant_in_trials: Participant
) -> None:
    # when
    res = api_client.post(
        _url("session-debrief", participant_in_trials), {"answers": {"0": "hi"}}, format="json"
    )
    # then
    participant_in_trials.refresh_from_db()
    assert res.status_code == 409
    assert participant_in_trials.stage == Participant.Stage.TRIALS
    assert participant_in_trials.debrief == {}


def test_start_needs_a_worker_id_for_prolific(
    api_client: APIClient, make_study: Callable[..., Study]
) -> None:
    # when
    res = api_client.post(
        reverse("participant-api:session-start"),
        {"study": make_study().slug, "platform": "prolific"},
        format="json",
    )
    # then
    assert res.status_code == 400
    assert res.json()["message"] == "external_id (PROLIFIC_PID / workerId) is required."
    assert Participant.objects.exists() is False


def test_start_on_a_paused_study_is_refused(
    api_client: APIClient, make_study: Callable[..., Study]
) -> None:
    # given
    study = make_study()
    services.study_set_status(study=study, status=Study.Status.PAUSED)
    # when
    res = api_client.post(
        reverse("participant-api:session-start"),
        {"study": study.slug, "platform": "direct"},
        format="json",
    )
    # then
    assert res.status_code == 409
    assert res.json()["message"] == "This study is not accepting participants right now."
    assert Participant.objects.exists() is False


def test_same_prolific_pid_resumes_its_session(
    api_client: APIClient, make_study: Callable[..., Study]
) -> None:
    # given
    study = make_study()
    body = {"study": study.slug, "platform": "prolific", "external_id": "SAME"}
    # when
    first = api_client.post(reverse("participant-api:session-start"), body, format="json")
    second = api_client.post(reverse("participant-api:session-start"), body, format="json")
    # then
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["token"] == second.json()["token"]
    assert Participant.objects.count() == 1


def test_start_on_a_full_study_is_refused_with_its_screen_out_code_and_nothing_is_stored(
    api_client: APIClient, make_study: Callable[..., Study]
) -> None:
    # given: one place, taken
    study = make_study(n_stimuli=2, batch_size=2, participants_per_batch=1)
    services.study_update(study=study, full_code="FULL-3")
    advance_to_trials(
        services.participant_start(study=study, platform="prolific", external_id="HOLDER")[0]
    )
    # when
    res = api_client.post(
        reverse("participant-api:session-start"),
        {"study": study.slug, "platform": "prolific", "external_id": "LATE"},
        format="json",
    )
    # then
    assert res.status_code == 409
    assert res.json() == {
        "message": "Sorry, all places in this study are taken.",
        "extra": {"reason": "full", "screen_out_code": "FULL-3"},
    }
    assert list(Participant.objects.values_list("external_id", flat=True)) == ["HOLDER"]
