"""IRI generation through real Celery worker processes (tests/analysis/conftest.py): the job is
routed to the `iri` queue, so a worker of the default queue leaves it pending and a worker
consuming only `iri` runs it and stores the IRIs in the study."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from rest_framework.test import APIClient

from analysis import tasks as analysis_tasks
from elicitation.models import Stimulus
from jobs.models import Job
from tests.analysis.conftest import WORKER_BROKER_URL, CeleryWorker
from tests.conftest import token_client

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

POLL_TIMEOUT_S = 120.0


@pytest.fixture
def shared_media(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The workers (started after this fixture, with this environment) read the model file and
    store the IRIs in this test's media folder too."""
    monkeypatch.setenv("HMIX_MEDIA_ROOT", str(settings.MEDIA_ROOT))
    return Path(settings.MEDIA_ROOT)


def _finished(client: APIClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}/").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {POLL_TIMEOUT_S:.0f} s waiting for job {job_id}: {job}")
        time.sleep(0.2)


def test_only_a_worker_of_the_iri_queue_runs_a_generation(
    researcher: Any,
    shapes: Any,
    make_network: Callable[..., Any],
    shared_media: Path,
    celery_workers: Callable[..., CeleryWorker],
) -> None:
    # given a tiny model, and a worker consuming only the default queue
    make_network(name="tiny")
    default_worker = celery_workers()
    client = token_client(researcher)

    # when a small generation (2 targets, 2 seeds, 4 steps at 32×32) is asked for
    response = client.post(
        "/api/iris/generate/",
        {
            "model": "tiny",
            "image_set": "iri-shapes",
            "new_study": {"slug": "worker-iris", "title": "Closer?", "trial_type": "iri_2afc"},
            "targets": ["Circle/0", "Square/0"],
            "steps": 4,
            "seeds": [0, 1],
        },
        format="json",
    )
    assert response.status_code == 202, response.json()
    job_id = response.json()["id"]
    # and the default worker has since run a task sent after it (it is consuming)
    barrier = analysis_tasks.soft_label_recompute.delay(10**9)
    default_worker.wait_for_task(barrier.id, timeout=POLL_TIMEOUT_S)

    # then the job is still pending, its task waiting in the `iri` queue
    assert client.get(f"/api/jobs/{job_id}/").json()["status"] == "pending"
    broker = redis.Redis.from_url(WORKER_BROKER_URL)
    try:
        assert broker.llen("iri") == 1
    finally:
        broker.close()
    assert Stimulus.objects.filter(study__slug="worker-iris").exists() is False

    # when a worker consuming only `iri` starts
    iri_worker = celery_workers(queues=("iri",))

    # then it runs the job, and the IRIs are stored in the study with their files
    job = _finished(client, job_id)
    assert (job["status"], job["progress"]) == ("done", 1.0), job
    assert job["message"].startswith("Generated 4 IRIs (4 new stimuli, 4 in the study)")
    stimuli = Stimulus.objects.filter(study__slug="worker-iris", kind=Stimulus.Kind.IRI)
    assert stimuli.count() == 4
    assert sorted(s.meta["seed"] for s in stimuli) == [0, 0, 1, 1]
    assert all(s.meta["model"] == "tiny" for s in stimuli)
    assert all(s.meta["generation"]["settings"]["steps"] == 4 for s in stimuli)
    frames = [frame for s in stimuli for frame in s.frames.all()]
    assert frames
    assert all((shared_media / frame.image.name).is_file() for frame in frames)
    assert Job.objects.get(public_id=job_id).result.name.endswith("worker-iris-iris.zip")
    received = "Task iri.tasks.iri_generate_job_run["  # the log line of a received task
    iri_worker.wait_for_log(received)
    assert received not in default_worker.log()
