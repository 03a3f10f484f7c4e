"""Who may act as a session: a returning Prolific worker needs the STUDY_ID and SESSION_ID the
session started with, and a replayed idempotency key must carry the same body."""

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from elicitation.models import Participant, Response, Study
from tests.conftest import categorical_answer

pytestmark = pytest.mark.django_db

PID = "5f1d2c3b4a596877"
STARTED_WITH = {"PROLIFIC_PID": PID, "STUDY_ID": "63a-study", "SESSION_ID": "sess-1"}


def _arrive(client: Client, study: Study, **params: str) -> Any:
    return client.get(reverse("elicitation:entry", kwargs={"slug": study.slug}), params)


def _consent(client: Client, study: Study, **params: str) -> Any:
    """The consent form posted from the study link: what starts a session."""
    url = f"{reverse('elicitation:entry', kwargs={'slug': study.slug})}?{urlencode(params)}"
    return client.post(url, {"adult": "on", "understood": "on", "agree": "on"})


def test_returning_prolific_worker_with_the_same_ids_resumes_their_session(
    make_study: Callable[..., Study],
) -> None:
    # given
    study = make_study()
    first = _consent(Client(), study, **STARTED_WITH)
    # when the same worker comes back in a fresh browser, from the same Prolific submission
    again = _arrive(Client(), study, **STARTED_WITH)
    # then
    participant = Participant.objects.get()
    assert first.status_code == again.status_code == 302
    assert again["Location"] == f"/p/{participant.token}/"
    assert (participant.platform_study_id, participant.platform_session_id) == (
        "63a-study",
        "sess-1",
    )


@pytest.mark.parametrize(
    "params",
    [
        {"PROLIFIC_PID": PID},
        {"PROLIFIC_PID": PID, "STUDY_ID": "63a-study"},
        {"PROLIFIC_PID": PID, "STUDY_ID": "63a-study", "SESSION_ID": "sess-2"},
        {"PROLIFIC_PID": PID, "STUDY_ID": "other-study", "SESSION_ID": "sess-1"},
    ],
)
def test_a_prolific_id_alone_does_not_hand_out_the_session(
    make_study: Callable[..., Study], params: dict[str, str]
) -> None:
    # given a worker's session
    study = make_study()
    _consent(Client(), study, **STARTED_WITH)
    participant = Participant.objects.get()
    # when someone arrives with the PROLIFIC_PID but not the session's STUDY_ID and SESSION_ID,
    # following the link or posting its consent form
    for res in (_arrive(Client(), study, **params), _consent(Client(), study, **params)):
        # then a refusal page, without the session's token, and nothing new stored
        assert res.status_code == 403
        assert "Location" not in res
        body = res.content.decode()
        assert "This Prolific ID already has a session in this study" in body
        assert str(participant.token) not in body
    assert list(Participant.objects.values_list("id", flat=True)) == [participant.id]
    participant.refresh_from_db()
    assert participant.stage == Participant.Stage.INSTRUCTIONS


def test_the_session_api_checks_the_prolific_session_id_too(
    api_client: APIClient, make_study: Callable[..., Study]
) -> None:
    # given
    study = make_study()
    body = {
        "study": study.slug,
        "platform": "prolific",
        "external_id": PID,
        "platform_study_id": "63a-study",
        "platform_session_id": "sess-1",
    }
    started = api_client.post(reverse("participant-api:session-start"), body, format="json")
    # when
    same = api_client.post(reverse("participant-api:session-start"), body, format="json")
    other = api_client.post(
        reverse("participant-api:session-start"),
        {**body, "platform_session_id": "sess-2"},
        format="json",
    )
    # then
    assert started.status_code == 201
    assert same.status_code == 200
    assert same.json()["token"] == started.json()["token"]
    assert other.status_code == 403
    assert other.json() == {
        "message": "This Prolific ID already has a session in this study, started from another "
        "Prolific study or submission. Open the study from your own Prolific submission.",
        "extra": {},
    }
    assert Participant.objects.count() == 1


MTURK_STARTED_WITH = {
    "workerId": "A1WORKER",
    "hitId": "HIT-1",
    "assignmentId": "ASSIGN-1",
    "turkSubmitTo": "https://workersandbox.mturk.com",
}


@pytest.mark.parametrize(
    "params",
    [
        {"workerId": "A1WORKER"},
        {"workerId": "A1WORKER", "hitId": "HIT-1"},
        {"workerId": "A1WORKER", "hitId": "HIT-1", "assignmentId": "ASSIGN-2"},
    ],
)
def test_an_mturk_worker_id_alone_does_not_hand_out_the_session(
    make_study: Callable[..., Study], params: dict[str, str]
) -> None:
    # given an MTurk worker's session, and the same worker back from the same assignment
    study = make_study()
    _consent(Client(), study, **MTURK_STARTED_WITH)
    participant = Participant.objects.get()
    same = _arrive(Client(), study, **MTURK_STARTED_WITH)
    # when someone arrives with the workerId but not the session's hitId and assignmentId
    for res in (_arrive(Client(), study, **params), _consent(Client(), study, **params)):
        # then a refusal without the session's token, and nothing new stored
        assert res.status_code == 403
        body = res.content.decode()
        assert "This MTurk worker ID already has a session in this study" in body
        assert str(participant.token) not in body
    assert same.status_code == 302
    assert same["Location"] == f"/p/{participant.token}/"
    assert list(Participant.objects.values_list("id", flat=True)) == [participant.id]


def _post_answer(client: APIClient, participant: Participant, body: dict[str, Any]) -> Any:
    url = reverse("participant-api:session-responses", kwargs={"token": participant.token})
    return client.post(url, body, format="json")


def test_a_replayed_key_with_the_same_body_returns_the_stored_response(
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
    first = _post_answer(api_client, participant_in_trials, body)
    # when the same body is sent again, its answer's keys in another order
    reordered = {**body, "answer": dict(reversed(list(body["answer"].items())))}
    replay = _post_answer(api_client, participant_in_trials, reordered)
    # then
    assert first.status_code == 201
    assert replay.status_code == 200
    assert replay.json() == first.json()
    assert Response.objects.count() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"answer": categorical_answer(top_class="Dog", second_class="Cat")},
        {"rt_ms": 901},
    ],
)
def test_a_replayed_key_with_another_body_is_a_conflict(
    api_client: APIClient, participant_in_trials: Participant, change: dict[str, Any]
) -> None:
    # given
    trial = participant_in_trials.trials.order_by("position").first()
    body = {
        "trial": trial.id,
        "client_key": str(uuid.uuid4()),
        "rt_ms": 900,
        "answer": categorical_answer(),
    }
    first = _post_answer(api_client, participant_in_trials, body)
    # when
    res = _post_answer(api_client, participant_in_trials, {**body, **change})
    # then
    assert first.status_code == 201
    assert res.status_code == 409
    assert res.json() == {
        "message": "This client_key was already used with a different answer; a new answer "
        "needs a new client_key.",
        "extra": {"response": first.json()["id"]},
    }
    stored = Response.objects.get()
    assert (stored.raw, stored.rt_ms) == (categorical_answer(), 900)
