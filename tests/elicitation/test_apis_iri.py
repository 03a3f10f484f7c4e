"""The responses endpoint for interfaces E and F: good answers are stored, bad ones refused."""

import uuid
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from elicitation.models import Participant, Response, Study, Trial
from tests.iri_fixtures import iri_participant_in_trials

pytestmark = pytest.mark.django_db


def _submit(client: APIClient, participant: Participant, answer: Any) -> Any:
    trial = participant.trials.order_by("position").first()
    return client.post(
        reverse("participant-api:session-responses", kwargs={"token": participant.token}),
        {"trial": trial.id, "client_key": str(uuid.uuid4()), "rt_ms": 1200, "answer": answer},
        format="json",
    )


@pytest.mark.parametrize(
    ("trial_type", "answer", "message"),
    [
        (Study.TrialType.IRI_2AFC, {"choice": "middle"}, "choice must be 'left' or 'right'."),
        (Study.TrialType.IRI_2AFC, {"choice": 0}, "choice must be 'left' or 'right'."),
        (Study.TrialType.IRI_2AFC, {}, "answer: Missing fields: ['choice']."),
        (Study.TrialType.IRI_2AFC, "left", "answer must be an object."),
        (
            Study.TrialType.IRI_CLUSTER,
            {"assignments": [0, 1, 2]},
            "assignments must list one column for each of the 6 rows.",
        ),
        (
            Study.TrialType.IRI_CLUSTER,
            {"assignments": [0, 1, 2, 0, 1, 3]},
            "assignments[5] must be between 0 and 2, got 3.",
        ),
        (
            Study.TrialType.IRI_CLUSTER,
            {"assignments": [0, 1, 2, 0, 1, "2"]},
            "assignments[5] must be a whole number from 0 to 2.",
        ),
        (
            Study.TrialType.IRI_CLUSTER,
            {"assignments": [0, 1, 2, 0, 1, 2], "rows": []},
            "answer: Unexpected fields: ['rows'].",
        ),
    ],
)
def test_bad_iri_answers_are_refused_and_nothing_is_written(
    api_client: APIClient, researcher: Any, trial_type: str, answer: Any, message: str
) -> None:
    # given
    participant = iri_participant_in_trials(owner=researcher, trial_type=trial_type, name="PID-API")

    # when
    res = _submit(api_client, participant, answer)

    # then
    assert res.status_code == 400
    assert res.json()["message"] == message
    assert Response.objects.exists() is False
    participant.refresh_from_db()
    assert participant.stage == Participant.Stage.TRIALS


@pytest.mark.parametrize(
    ("trial_type", "answer"),
    [
        (Study.TrialType.IRI_2AFC, {"choice": "right"}),
        (Study.TrialType.IRI_CLUSTER, {"assignments": [2, 2, 1, 1, 0, 0]}),
    ],
)
def test_good_iri_answer_is_stored_with_its_display(
    api_client: APIClient, researcher: Any, trial_type: str, answer: dict[str, Any]
) -> None:
    # given
    participant = iri_participant_in_trials(owner=researcher, trial_type=trial_type, name="PID-API")
    trial = Trial.objects.filter(participant=participant).order_by("position").first()

    # when
    res = _submit(api_client, participant, answer)

    # then
    assert res.status_code == 201
    response = Response.objects.get()
    assert response.trial == trial
    assert response.raw == answer
    assert response.display == trial.display
    assert response.rt_ms == 1200
