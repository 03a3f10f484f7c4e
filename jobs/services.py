from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import current_app
from django.core.files.base import File
from django.db import transaction
from django.utils import timezone

from hmix_site.common.exceptions import ApplicationError
from jobs.models import CANCELLABLE_WHILE_RUNNING, Job


@transaction.atomic
def job_create(
    *,
    owner_id: int,
    kind: str,
    study_id: int | None = None,
    params: dict[str, Any] | None = None,
    upload: File | None = None,
) -> Job:
    job = Job(owner_id=owner_id, kind=kind, study_id=study_id, params=params or {})
    if upload is not None:
        job.upload.save(upload.name or "upload", upload, save=False)
    job.full_clean()
    job.save()
    return job


def job_start(*, job: Job) -> bool:
    """Claim a pending job for this worker. False if another run already has it or it ended:
    a redelivered task (acks_late after a worker crash) then does nothing twice."""
    claimed = Job.objects.filter(id=job.id, status__in=[Job.Status.PENDING]).update(
        status=Job.Status.RUNNING, updated_at=timezone.now(), message="Started"
    )
    return claimed == 1


def job_progress(*, job: Job, fraction: float, message: str = "") -> None:
    # A plain UPDATE outside the job's transaction, so pollers see progress as it happens.
    Job.objects.filter(id=job.id).update(
        progress=min(1.0, max(0.0, fraction)), message=message[:500], updated_at=timezone.now()
    )


@transaction.atomic
def job_finish(
    *, job: Job, result: File | None = None, message: str = "Done", study_id: int | None = None
) -> Job:
    job.refresh_from_db()
    if study_id is not None:  # a job that made the study (a legacy import) points at it
        job.study_id = study_id
    if result is not None:
        job.result.save(result.name or "result", result, save=False)
    job.status = Job.Status.DONE
    job.progress = 1.0
    job.message = message[:500]
    job.finished_at = timezone.now()
    job.save()
    return job


@transaction.atomic
def job_fail(*, job: Job, error: str) -> Job:
    job.refresh_from_db()
    job.status = Job.Status.FAILED
    job.error = error
    job.message = "Failed"
    job.finished_at = timezone.now()
    job.save()
    return job


def jobs_fail_stale(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Fail jobs whose worker died without a word (killed after claiming, so a redelivered
    task finds them 'running' and leaves them). Progress updates touch updated_at, so only jobs
    silent for longer than the longest task time limit match. Idempotent: one UPDATE."""
    now = now or timezone.now()
    return Job.objects.filter(status=Job.Status.RUNNING, updated_at__lt=now - older_than).update(
        status=Job.Status.FAILED,
        message="Failed",
        error="The worker running this job stopped without finishing it; please start it again.",
        finished_at=now,
        updated_at=now,
    )


# The task that runs each kind of job (by name: jobs must not import the apps that use it).
JOB_RUN_TASKS = {
    Job.Kind.EXPORT: "analysis.tasks.export_job_run",
    Job.Kind.BUNDLE: "analysis.tasks.bundle_job_run",
    Job.Kind.LEGACY_IMPORT: "elicitation.tasks.legacy_import_job_run",
    Job.Kind.GENERATE_STIMULI: "elicitation.tasks.stimuli_generate_job_run",
    Job.Kind.IMAGE_UPLOAD: "elicitation.tasks.image_upload_job_run",
    Job.Kind.IRI_GENERATE: "iri.tasks.iri_generate_job_run",
    Job.Kind.NETWORK_TRAIN: "iri.tasks.network_train_job_run",
}


def _job_run_enqueue(job_id: int, kind: str) -> None:
    # The registered task object (not send_task), so eager settings are honoured.
    current_app.tasks[JOB_RUN_TASKS[Job.Kind(kind)]].delay(job_id)


@transaction.atomic
def jobs_pending_reconcile(
    *, redispatch_after: timedelta, give_up_after: timedelta, now: datetime | None = None
) -> tuple[int, int]:
    """Jobs still pending long after they were enqueued: their task is gone. It gave up after
    its retries (PostgreSQL refusing connections), or its message was lost with the broker.

    A job pending and silent for `redispatch_after` is enqueued again (its clock restarts, so
    once per interval); one created more than `give_up_after` ago is failed with a message
    saying so. A job that is merely queued behind others is harmless to enqueue twice: the
    second delivery finds it claimed (job_start). Returns (re-enqueued, failed).
    """
    now = now or timezone.now()
    silent = Job.objects.filter(status=Job.Status.PENDING, updated_at__lt=now - redispatch_after)
    failed = silent.filter(created_at__lt=now - give_up_after).update(
        status=Job.Status.FAILED,
        message="Failed",
        error="This job never started (its worker gave up, e.g. while the database was "
        "unreachable); please start it again.",
        finished_at=now,
        updated_at=now,
    )
    again = list(silent.select_for_update(skip_locked=True).values_list("id", "kind"))
    Job.objects.filter(id__in=[job_id for job_id, _ in again]).update(updated_at=now)
    for job_id, kind in again:
        transaction.on_commit(partial(_job_run_enqueue, job_id, kind))
    return len(again), failed


@transaction.atomic
def job_cancel(*, job: Job) -> Job:
    """Cancel a job: a pending one at once (a worker that picks it up later finds it claimed by
    nobody and does nothing); a running one of a cancellable kind by asking its worker, which
    stops at its next step and ends it as cancelled, writing nothing. A finished job, or a
    running one whose kind cannot stop half-way, is refused (409)."""
    locked = Job.objects.select_for_update().get(id=job.id)
    if locked.status == Job.Status.PENDING:
        locked.status = Job.Status.CANCELLED
        locked.message = "Cancelled before it started"
        locked.cancel_requested = True
        locked.finished_at = timezone.now()
    elif locked.status == Job.Status.RUNNING and locked.kind in CANCELLABLE_WHILE_RUNNING:
        locked.cancel_requested = True
        locked.message = "Cancelling…"
    else:
        state = locked.get_status_display().lower()
        if locked.status == Job.Status.RUNNING:
            state = f"running and a {locked.get_kind_display().lower()} cannot stop half-way"
        raise ApplicationError(f"This job cannot be cancelled: it is {state}.", status=409)
    locked.save(
        update_fields=["status", "message", "cancel_requested", "finished_at", "updated_at"]
    )
    return locked


def job_cancel_requested(*, job: Job) -> bool:
    return Job.objects.filter(id=job.id, cancel_requested=True).exists()


@transaction.atomic
def job_end_cancelled(*, job: Job) -> Job:
    job.refresh_from_db()
    job.status = Job.Status.CANCELLED
    job.message = "Cancelled; nothing was written"
    job.finished_at = timezone.now()
    job.save()
    return job
