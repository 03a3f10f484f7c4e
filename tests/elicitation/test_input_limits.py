"""Every field a participant sends is bounded before any parsing work: a body cap per endpoint
(413), then list and string lengths in the validators (400); nothing is stored either way."""

import json
import uuid
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from elicitation import services
from elicitation.models import ComprehensionAttempt, ImageSet, Participant, Response, Study
from jobs.models import Job
from tests.conftest import advance_to_trials, categorical_answer, token_client
from tests.factories import CLASSES, StudyFactory

pytestmark = pytest.mark.django_db

PARTICIPANT_CAP = 64 * 1024


def _url(name: str, participant: Participant) -> str:
    return reverse(f"participant-api:{name}", kwargs={"token": participant.token})


def _answer_body(participant: Participant, answer: Any) -> dict[str, Any]:
    trial = participant.trials.order_by("position").first()
    assert trial is not None
    return {"trial": trial.id, "client_key": str(uuid.uuid4()), "rt_ms": 900, "answer": answer}


def test_a_participant_body_over_the_cap_is_413_before_it_is_read(
    participant_in_trials: Participant,
) -> None:
    # given an answer padded past 64 KB (a well-formed body: only its size is wrong)
    body = _answer_body(participant_in_trials, categorical_answer(note="x" * PARTICIPANT_CAP))
    raw = json.dumps(body)
    # when
    res = APIClient().post(
        _url("session-responses", participant_in_trials), raw, content_type="application/json"
    )
    # then
    assert res.status_code == 413
    assert res.json() == {
        "message": f"The request body is {len(raw)} bytes; this endpoint accepts at most "
        f"{PARTICIPANT_CAP}.",
        "extra": {"max_bytes": PARTICIPANT_CAP, "bytes": len(raw)},
    }
    assert Response.objects.exists() is False


@pytest.mark.parametrize(
    "name",
    [
        "session-start",
        "session-detail",
        "session-consent",
        "session-instructions",
        "session-comprehension",
        "session-debrief",
    ],
)
def test_every_participant_endpoint_has_the_cap(
    participant_in_trials: Participant, name: str
) -> None:
    # given a 10 MB JSON list, as the comprehension answer that used to hold a worker for 20 s
    raw = json.dumps({"answers": [0] * (5 * 1024 * 1024)})
    url = (
        reverse("participant-api:session-start")
        if name == "session-start"
        else _url(name, participant_in_trials)
    )
    stage = participant_in_trials.stage
    # when
    res = APIClient().generic("POST", url, raw, content_type="application/json")
    # then
    assert res.status_code == 413
    assert res.json()["extra"] == {"max_bytes": PARTICIPANT_CAP, "bytes": len(raw)}
    assert Participant.objects.count() == 1
    participant_in_trials.refresh_from_db()
    assert participant_in_trials.stage == stage
    assert ComprehensionAttempt.objects.filter(participant=participant_in_trials).count() == 1


def test_a_multipart_upload_over_the_request_cap_is_413(researcher: Any, settings: Any) -> None:
    # given
    settings.HMIX_MAX_UPLOAD_REQUEST_BYTES = 2000
    upload = SimpleUploadedFile("images.zip", bytes(5000), content_type="application/zip")
    # when
    res = token_client(researcher).post(
        reverse("api:image-set-list"),
        {"name": "big", "source": "zip", "zip_file": upload},
        format="multipart",
    )
    # then
    assert res.status_code == 413
    assert res.json()["extra"]["max_bytes"] == 2000
    assert ImageSet.objects.exists() is False
    assert Job.objects.exists() is False


def test_the_participant_cap_is_a_setting(
    participant_in_trials: Participant, settings: Any
) -> None:
    # given
    settings.HMIX_MAX_PARTICIPANT_BODY_BYTES = 100
    body = _answer_body(participant_in_trials, categorical_answer())
    # when
    res = APIClient().post(_url("session-responses", participant_in_trials), body, format="json")
    # then
    assert res.status_code == 413
    assert res.json()["extra"]["max_bytes"] == 100
    assert Response.objects.exists() is False


def test_a_participant_form_post_over_the_cap_is_413(make_study: Any) -> None:
    # given a participant at the debrief page
    study = make_study(n_stimuli=2, batch_size=2, debrief_questions=["Anything else?"])
    participant = advance_to_trials(
        services.participant_start(study=study, platform="prolific", external_id="P")[0]
    )
    for trial in participant.trials.order_by("position"):
        services.response_record(
            participant=participant,
            trial_id=trial.id,
            client_key=uuid.uuid4(),
            rt_ms=5,
            answer=categorical_answer(),
        )
    # when
    res = Client().post(
        reverse("elicitation:debrief", kwargs={"token": participant.token}),
        {"a0": "x" * (PARTICIPANT_CAP + 1)},
    )
    # then
    assert res.status_code == 413
    assert res["Content-Type"] == "text/plain; charset=utf-8"
    assert res.content.decode().endswith(f"this endpoint accepts at most {PARTICIPANT_CAP}.")
    participant.refresh_from_db()
    assert participant.stage == Participant.Stage.DEBRIEF
    assert participant.debrief == {}


def test_researcher_json_is_capped_at_the_request_body_setting(researcher: Any) -> None:
    # given a draft study, and consent texts of 100 KB (over the participant cap) and 2 MB
    study = StudyFactory(owner=researcher, status=Study.Status.DRAFT)
    url = reverse("api:study-detail", kwargs={"slug": study.slug})
    client = token_client(researcher)
    # when
    fits = client.patch(url, {"consent_html": "<p>" + "a" * 100_000 + "</p>"}, format="json")
    too_big = client.patch(url, {"consent_html": "b" * 2 * 1024 * 1024}, format="json")
    # then
    assert fits.status_code == 200
    assert too_big.status_code == 413
    assert too_big.json()["extra"]["max_bytes"] == 1024 * 1024
    study.refresh_from_db()
    assert study.consent_html == "<p>" + "a" * 100_000 + "</p>"


def test_impossible_lists_at_most_the_studys_classes(participant_in_trials: Participant) -> None:
    # given every class of the study plus one more entry (a repeat, which used to be folded)
    classes = participant_in_trials.study.classes
    impossible = [c for c in classes if c not in ("Cat", "Dog")] * 2
    assert len(impossible) > len(classes)
    body = _answer_body(participant_in_trials, categorical_answer(impossible=impossible))
    # when
    res = APIClient().post(_url("session-responses", participant_in_trials), body, format="json")
    # then
    assert res.status_code == 400
    assert res.json()["message"] == (
        f"impossible lists {len(impossible)} classes; the study has {len(classes)}."
    )
    assert Response.objects.exists() is False


def test_an_error_repeats_at_most_40_characters_of_the_input(
    participant_in_trials: Participant,
) -> None:
    # given
    body = _answer_body(participant_in_trials, categorical_answer(top_class="Z" * 20_000))
    # when
    res = APIClient().post(_url("session-responses", participant_in_trials), body, format="json")
    # then
    assert res.status_code == 400
    assert res.json()["message"] == (
        f"top_class: Unknown class '{'Z' * 38}…; expected one of {CLASSES}."
    )
    assert Response.objects.exists() is False


def test_comprehension_answers_are_bounded(make_study: Any) -> None:
    # given a participant at the comprehension check
    participant = services.participant_start(
        study=make_study(), platform="prolific", external_id="P"
    )[0]
    services.participant_consent(participant=participant, agreed=True)
    services.participant_instructions_complete(participant=participant)
    # when
    res = APIClient().post(
        _url("session-comprehension", participant), {"answers": [0] * 51}, format="json"
    )
    # then
    assert res.status_code == 400
    assert res.json()["message"] == "answers: Ensure this field has no more than 50 elements."
    assert ComprehensionAttempt.objects.exists() is False


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"0": "x" * 5001}, "answers: 0: Ensure this field has no more than 5000 characters."),
        (
            {str(i): "" for i in range(51)},
            "answers: At most 50 answers, one per debrief question.",
        ),
        ({"q" * 1000: "hi"}, "answers: Answers are keyed by question number."),
    ],
)
def test_debrief_answers_are_bounded(
    participant_in_trials: Participant, answers: dict[str, str], message: str
) -> None:
    # given
    Participant.objects.filter(id=participant_in_trials.id).update(stage=Participant.Stage.DEBRIEF)
    # when
    res = APIClient().post(
        _url("session-debrief", participant_in_trials), {"answers": answers}, format="json"
    )
    # then
    assert res.status_code == 400
    assert res.json()["message"] == message
    participant_in_trials.refresh_from_db()
    assert participant_in_trials.stage == Participant.Stage.DEBRIEF
    assert participant_in_trials.debrief == {}
