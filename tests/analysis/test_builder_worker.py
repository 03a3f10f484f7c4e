"""The study builder's jobs through a real Celery worker process (tests/analysis/conftest.py):
the request answers 202 before anything is made, and the worker, sharing the media folder and
the test database, uploads the image set and generates the stimuli while the job reports
progress."""

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from elicitation.models import ImageSet, Stimulus, Study
from tests.analysis.conftest import CeleryWorker
from tests.conftest import token_client
from tests.factories import StudyFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

POLL_TIMEOUT_S = 60.0


@pytest.fixture
def shared_media(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The worker process stores and reads files in this test's media folder too (it is
    started after this fixture, with this environment)."""
    monkeypatch.setenv("HMIX_MEDIA_ROOT", str(settings.MEDIA_ROOT))
    return Path(settings.MEDIA_ROOT)


def _zip() -> SimpleUploadedFile:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for j, name in enumerate(("Circle", "Square", "Triangle")):
            for i in range(2):
                png = io.BytesIO()
                Image.new("RGB", (16, 16), (80 * j, 100 * i, 200)).save(png, format="PNG")
                archive.writestr(f"{name}/{i}.png", png.getvalue())
    return SimpleUploadedFile("shapes.zip", out.getvalue(), content_type="application/zip")


def _finished(client: APIClient, job_id: str) -> dict[str, Any]:
    """Poll the job as a client would until it is done or failed; every state seen is kept."""
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}/").json()
        if job["status"] in ("done", "failed"):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {POLL_TIMEOUT_S:.0f} s waiting for job {job_id}: {job}")
        time.sleep(0.2)


def test_a_worker_uploads_the_images_and_generates_the_stimuli(
    researcher: Any, shared_media: Path, celery_worker: CeleryWorker
) -> None:
    # given
    client = token_client(researcher)
    study = StudyFactory(owner=researcher, trial_type=Study.TrialType.CATEGORICAL)
    # when the zip is uploaded
    upload = client.post(
        "/api/image-sets/",
        {"name": "shapes", "source": "zip", "zip_file": _zip()},
        format="multipart",
    )
    # then the request returned with a pending job, which the worker then ran
    assert (upload.status_code, upload.json()["status"]) == (202, "pending")
    uploaded = _finished(client, upload.json()["id"])
    assert (uploaded["status"], uploaded["progress"], uploaded["message"]) == (
        "done",
        1.0,
        "Imported 6 images of 3 classes into 'shapes': Circle, Square, Triangle.",
    )
    assert ImageSet.objects.get(name="shapes").images.count() == 6

    # when stimuli are generated from it
    generate = client.post(
        f"/api/studies/{study.slug}/stimuli/generate/",
        {"image_set": "shapes", "lambdas": [0.25, 0.75], "n_pairs": 3, "plain_per_class": 1},
        format="json",
    )
    # then likewise
    assert (generate.status_code, generate.json()["status"]) == (202, "pending")
    generated = _finished(client, generate.json()["id"])
    assert (generated["status"], generated["message"]) == (
        "done",
        "Generated 9 new stimuli (9 in total).",
    )
    stimuli = Stimulus.objects.filter(study=study)
    assert stimuli.count() == 9
    assert all((shared_media / s.image.name).is_file() for s in stimuli)
    # and both ran in the worker process, not in the request
    for task in ("image_upload_job_run", "stimuli_generate_job_run"):
        celery_worker.wait_for_log(f"Task elicitation.tasks.{task}[")
