import uuid
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from analysis.models import SoftLabel
from elicitation.models import ComprehensionAttempt, Participant, Response, Study
from tests.conftest import categorical_answer

pytestmark = pytest.mark.django_db


def _url(name: str, token: str) -> str:
    return reverse(f"participant-api:{name}", kwargs={"token": token})


def _start(client: APIClient, study: Study, pid: str = "PID-1") -> dict[str, Any]:
    res = client.post(
        reverse("participant-api:session-start"),
        {"study": study.slug, "platform": "prolific", "external_id": pid},
        format="json",
    )
    assert res.status_code in (200, 201), res.content
    return res.json()


def test_full_journey_over_the_api_stores_every_answer_once(
    api_client: APIClient, make_study: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    study = make_study(n_stimuli=4, batch_size=2)
    state = _start(api_client, study)
    token = state["token"]
    # when
    assert (
        api_client.post(
            _url("session-consent", token),
            {"adult": True, "understood": True, "agree": True},
            format="json",
        ).status_code
        == 200
    )
    assert api_client.post(_url("session-instructions", token)).json()["stage"] == "comprehension"
    wrong = api_client.post(_url("session-comprehension", token), {"answers": [0]}, format="json")
    assert wrong.json()["passed"] is False
    assert wrong.json()["stage"] == "instructions"
    api_client.post(_url("session-instructions", token))
    right = api_client.post(_url("session-comprehension", token), {"answers": [1]}, format="json")
    assert right.json()["stage"] == "trials"
    answered = 0
    with django_capture_on_commit_callbacks(execute=True):
        while True:
            state = api_client.get(_url("session-detail", token)).json()
            if state["stage"] != "trials":
                break
            res = api_client.post(
                _url("session-responses", token),
                {
                    "trial": state["trial"]["id"],
                    "client_key": str(uuid.uuid4()),
                    "rt_ms": 1200,
                    "answer": categorical_answer(),
                },
                format="json",
            )
            assert res.status_code == 201, res.content
            answered += 1
    done = api_client.post(
        _url("session-debrief", token), {"answers": {"0": "fine"}}, format="json"
    )
    # then
    assert answered == 2 + study.repeats
    assert done.json()["stage"] == "completed"
    assert done.json()["completion"] == {
        "code": "CODE123",
        "method": "redirect",
        "url": "https://app.prolific.com/submissions/complete?cc=CODE123",
        "fields": {},
    }
    assert done.json()["screen_out"] is None
    participant = Participant.objects.get(token=token)
    assert Response.objects.filter(participant=participant).count() == 4
    assert ComprehensionAttempt.objects.filter(participant=participant).count() == 2
    assert SoftLabel.objects.filter(study=study).count() == 2
