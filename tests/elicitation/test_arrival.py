"""The study link: a GET writes nothing, the consent POST starts the session, a full study
turns workers away at once with its screen-out code, and each platform leaves its own way."""

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from elicitation import services
from elicitation.models import Participant, Study
from tests.conftest import advance_to_trials, answer_remaining_trials, categorical_answer

pytestmark = pytest.mark.django_db

CONSENT = {"adult": "on", "understood": "on", "agree": "on"}
PROLIFIC = "?PROLIFIC_PID=P-1&STUDY_ID=S-1&SESSION_ID=X-1"
MTURK = (
    "?workerId=W-1&hitId=H-1&assignmentId=A-1&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com"
)


def _entry(study: Study, query: str = "") -> str:
    return f"/s/{study.slug}/{query}"


@pytest.mark.parametrize(
    "query",
    ["", PROLIFIC, MTURK, "?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H-1"],
    ids=["direct", "prolific", "mturk", "mturk-preview"],
)
@pytest.mark.parametrize("method", ["get", "head"])
def test_following_the_link_creates_nothing_and_shows_the_consent_form(
    client: Client, make_study: Callable[..., Study], query: str, method: str
) -> None:
    # given
    study = make_study()
    # when
    res = getattr(client, method)(_entry(study, query))
    # then
    assert res.status_code == 200
    assert Participant.objects.exists() is False
    if method == "get":
        page = res.content.decode()
        assert "Consent text." in page
        assert ('id="consent-form"' in page) is ("ASSIGNMENT_ID_NOT_AVAILABLE" not in query)


def test_posting_consent_starts_the_session_at_the_instructions(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given
    study = make_study()
    # when
    res = client.post(_entry(study, PROLIFIC), CONSENT)
    # then
    participant = Participant.objects.get()
    assert res.status_code == 302
    assert res["Location"] == f"/p/{participant.token}/"
    assert (participant.platform, participant.external_id, participant.platform_session_id) == (
        "prolific",
        "P-1",
        "X-1",
    )
    assert participant.stage == Participant.Stage.INSTRUCTIONS


def test_declining_is_recorded_as_declined(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given
    study = make_study()
    # when
    client.post(_entry(study, PROLIFIC), {"decline": "on"})
    # then
    assert Participant.objects.get().stage == Participant.Stage.DECLINED


def test_consent_without_all_three_statements_is_refused_and_nothing_is_stored(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given
    study = make_study()
    # when
    res = client.post(_entry(study, PROLIFIC), {"adult": "on", "agree": "on"})
    # then
    assert res.status_code == 400
    assert "Please confirm all three statements to take part." in res.content.decode()
    assert Participant.objects.exists() is False


def test_mturk_preview_cannot_start_a_session(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given
    study = make_study()
    # when
    res = client.post(_entry(study, "?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE"), CONSENT)
    # then
    assert res.status_code == 400
    assert "This is a preview. Please accept the HIT to take part." in res.content.decode()
    assert Participant.objects.exists() is False


def test_a_returning_worker_is_sent_to_their_session_without_a_second_one(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given
    study = make_study()
    client.post(_entry(study, PROLIFIC), CONSENT)
    participant = Participant.objects.get()
    # when
    res = client.get(_entry(study, PROLIFIC))
    # then
    assert res.status_code == 302
    assert res["Location"] == f"/p/{participant.token}/"
    assert Participant.objects.count() == 1


def test_a_direct_link_browser_resumes_by_cookie(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given
    study = make_study()
    client.post(_entry(study), CONSENT)
    participant = Participant.objects.get()
    # when
    res = client.get(_entry(study))
    # then
    assert res["Location"] == f"/p/{participant.token}/"
    assert Participant.objects.count() == 1


def _full_study(make_study: Callable[..., Study], **fields: Any) -> Study:
    study = make_study(n_stimuli=2, batch_size=2, participants_per_batch=1)
    if fields:
        services.study_update(study=study, **fields)
    services.participant_start(study=study, platform="prolific", external_id="HOLDER")
    advance_to_trials(Participant.objects.get(external_id="HOLDER"))
    return study


def test_a_full_study_says_so_at_once_with_its_screen_out_code(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given
    study = _full_study(make_study, full_code="FULL-9")
    # when
    res = client.get(_entry(study, PROLIFIC))
    # then
    page = res.content.decode()
    assert res.status_code == 200
    assert "all places in this study are taken" in page
    assert '<strong id="exit-code" class="code">FULL-9</strong>' in page
    assert 'href="https://app.prolific.com/submissions/complete?cc=FULL-9"' in page
    assert 'id="consent-form"' not in page
    assert list(Participant.objects.values_list("external_id", flat=True)) == ["HOLDER"]


def test_a_full_study_without_a_code_asks_prolific_workers_to_return_it(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given
    study = _full_study(make_study)
    # when
    res = client.get(_entry(study, PROLIFIC))
    # then
    assert "Please return this study on Prolific" in res.content.decode()
    assert Participant.objects.count() == 1


def test_consent_posted_after_the_last_place_went_is_turned_away_without_a_session(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given
    study = _full_study(make_study, full_code="FULL-9")
    # when
    res = client.post(_entry(study, PROLIFIC), CONSENT)
    # then
    assert res.status_code == 409
    assert "FULL-9" in res.content.decode()
    assert Participant.objects.count() == 1


def test_a_closed_study_creates_nothing(client: Client, make_study: Callable[..., Study]) -> None:
    # given
    study = make_study()
    services.study_set_status(study=study, status=Study.Status.CLOSED)
    # when
    res = client.get(_entry(study, PROLIFIC))
    posted = client.post(_entry(study, PROLIFIC), CONSENT)
    # then
    assert (res.status_code, posted.status_code) == (409, 409)
    assert Participant.objects.exists() is False


def _complete(participant: Participant) -> Participant:
    participant = answer_remaining_trials(
        advance_to_trials(participant), lambda _: categorical_answer()
    )
    services.participant_debrief_submit(participant=participant, answers={})
    return participant


def test_mturk_completion_posts_the_assignment_to_the_sandbox_it_came_from(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given
    study = make_study()
    client.post(_entry(study, MTURK), CONSENT)
    participant = _complete(Participant.objects.get())
    # when
    page = client.get(f"/p/{participant.token}/").content.decode()
    # then
    assert participant.turk_submit_to == "https://workersandbox.mturk.com"
    assert (
        '<form method="post" action="https://workersandbox.mturk.com/mturk/externalSubmit"' in page
    )
    assert '<input type="hidden" name="assignmentId" value="A-1">' in page
    assert '<input type="hidden" name="completion_code" value="CODE123">' in page
    assert "elicitation/exit.js" in page
    assert "<script>" not in page  # no inline script


def test_mturk_arrival_with_a_foreign_submit_host_keeps_none(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given
    study = make_study()
    query = "?workerId=W-2&hitId=H&assignmentId=A-2&turkSubmitTo=https%3A%2F%2Fevil.example.org"
    # when
    client.post(_entry(study, query), CONSENT)
    # then
    assert Participant.objects.get().turk_submit_to == ""


def test_excluded_participants_get_the_excluded_code(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given: the default limit of three failed checks
    study = make_study()
    services.study_update(study=study, excluded_code="EXCL-7")
    client.post(_entry(study, PROLIFIC), CONSENT)
    participant = Participant.objects.get()
    # when
    for _ in range(3):
        services.participant_instructions_complete(participant=participant)
        services.comprehension_submit(participant=participant, answers=[0])
    page = client.get(f"/p/{participant.token}/").content.decode()
    # then
    participant.refresh_from_db()
    assert study.max_comprehension_failures == 3
    assert participant.stage == Participant.Stage.EXCLUDED
    assert '<strong id="exit-code" class="code">EXCL-7</strong>' in page
    assert 'href="https://app.prolific.com/submissions/complete?cc=EXCL-7"' in page
