"""How many SQL statements the participant's hot path costs.

The limits are the budget of one answer: a new response, a repeated one (retry, double click)
and the session read the browser makes between two trials. A regression (a lazy load, a
re-validating full_clean, a nested savepoint) fails here. The statements are counted as the
test database sees them; under the test's transaction the service's own transaction shows as a
SAVEPOINT / RELEASE pair, so the counts include those two.
"""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from elicitation import selectors
from elicitation.models import Participant, Response, Study
from tests.conftest import categorical_answer, start_in_trials
from tests.iri_fixtures import iri_participant_in_trials

pytestmark = pytest.mark.django_db

NEW_RESPONSE_MAX = 8
REPEATED_RESPONSE_MAX = 4
SESSION_GET_MAX = 5


def _url(participant: Participant, suffix: str = "") -> str:
    return f"/api/participant/sessions/{participant.token}/{suffix}"


def _body(participant: Participant, answer: Any) -> dict[str, Any]:
    trial = selectors.trial_get_next(participant=participant)
    assert trial is not None
    return {"trial": trial.id, "client_key": str(uuid.uuid4()), "rt_ms": 1200, "answer": answer}


def _categorical_in_trials(make_study: Callable[..., Study]) -> Participant:
    study = make_study(classes=["Cat", "Dog", "Ship", "Airplane"], repeats=0)
    return start_in_trials(study, "Q1")


def _iri_answer(participant: Participant) -> dict[str, Any]:
    if participant.study.trial_type == Study.TrialType.IRI_2AFC:
        return {"choice": "left"}
    return {"assignments": [0, 1, 2, 0, 1, 2]}


def test_a_new_categorical_answer_costs_at_most_eight_statements(
    api_client: APIClient, make_study: Callable[..., Study], django_assert_max_num_queries: Any
) -> None:
    # given
    participant = _categorical_in_trials(make_study)
    body = _body(participant, categorical_answer(impossible=["Ship"]))
    # when
    with django_assert_max_num_queries(NEW_RESPONSE_MAX):
        res = api_client.post(_url(participant, "responses/"), body, format="json")
    # then
    assert res.status_code == 201
    assert Response.objects.filter(participant=participant).count() == 1


def test_a_repeated_answer_costs_at_most_four_statements_and_writes_nothing(
    api_client: APIClient, make_study: Callable[..., Study], django_assert_max_num_queries: Any
) -> None:
    # given
    participant = _categorical_in_trials(make_study)
    body = _body(participant, categorical_answer(impossible=["Ship"]))
    first = api_client.post(_url(participant, "responses/"), body, format="json")
    # when
    with django_assert_max_num_queries(REPEATED_RESPONSE_MAX):
        again = api_client.post(_url(participant, "responses/"), body, format="json")
    # then
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Response.objects.filter(participant=participant).count() == 1


def test_the_session_read_between_trials_costs_at_most_five_statements(
    api_client: APIClient, make_study: Callable[..., Study], django_assert_max_num_queries: Any
) -> None:
    # given
    participant = _categorical_in_trials(make_study)
    api_client.post(
        _url(participant, "responses/"),
        _body(participant, categorical_answer(impossible=["Ship"])),
        format="json",
    )
    # when
    with django_assert_max_num_queries(SESSION_GET_MAX):
        res = api_client.get(_url(participant))
    # then
    state = res.json()
    assert res.status_code == 200
    assert state["progress"] == {"answered": 1, "total": 2, "percent": 50}
    assert state["trial"]["position"] == 1


@pytest.mark.parametrize("trial_type", [Study.TrialType.IRI_2AFC, Study.TrialType.IRI_CLUSTER])
def test_image_interfaces_stay_within_the_same_budget(
    api_client: APIClient, researcher: Any, trial_type: str, django_assert_max_num_queries: Any
) -> None:
    # given: the interfaces whose trials have several frames and the heaviest answer checks
    participant = iri_participant_in_trials(owner=researcher, trial_type=trial_type, name="Q-IRI")
    body = _body(participant, _iri_answer(participant))
    # when
    with django_assert_max_num_queries(NEW_RESPONSE_MAX):
        created = api_client.post(_url(participant, "responses/"), body, format="json")
    with django_assert_max_num_queries(SESSION_GET_MAX):
        state = api_client.get(_url(participant))
    # then
    assert created.status_code == 201, created.json()
    assert state.status_code == 200
    assert state.json()["progress"]["answered"] == 1


def test_the_last_answer_moves_the_session_to_the_debrief(
    api_client: APIClient, make_study: Callable[..., Study]
) -> None:
    # given: a session with two trials, one already answered
    participant = _categorical_in_trials(make_study)
    api_client.post(
        _url(participant, "responses/"),
        _body(participant, categorical_answer(impossible=[])),
        format="json",
    )
    # when
    last = api_client.post(
        _url(participant, "responses/"),
        _body(participant, categorical_answer(impossible=[])),
        format="json",
    )
    # then
    participant.refresh_from_db()
    assert last.status_code == 201
    assert participant.stage == Participant.Stage.DEBRIEF
    assert api_client.get(_url(participant)).json()["progress"] == {
        "answered": 2,
        "total": 2,
        "percent": 100,
    }
