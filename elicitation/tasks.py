from celery import shared_task
from django.db import OperationalError


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def participant_leases_reclaim() -> int:
    """Periodic (CELERY_BEAT_SCHEDULE): free batch slots of abandoned sessions. Idempotent."""
    from elicitation import services

    return services.participant_leases_reclaim()


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def stimuli_generate_mixup(
    study_id: int, image_set_id: int, lambdas: list[float], n_pairs: int, seed: int
) -> int:
    """Large λ grids run here; idempotent because existing stimulus keys are skipped."""
    from elicitation import stimulus_services
    from elicitation.models import ImageSet, Study

    study = Study.objects.filter(id=study_id).first()
    image_set = ImageSet.objects.filter(id=image_set_id).first()
    if study is None or image_set is None:
        return 0
    created = stimulus_services.stimuli_generate_mixup(
        study=study, image_set=image_set, lambdas=lambdas, n_pairs=n_pairs, seed=seed
    )
    return len(created)


@shared_task(acks_late=True)
def legacy_import_job_run(job_id: int) -> None:
    """Run an uploaded legacy import (a jobs.Job of kind legacy_import).

    Idempotent by a state guard: the service first claims the job (pending -> running), so a
    redelivered task returns at once. No autoretry: a retry would find the job claimed.
    """
    from elicitation import legacy_job_services
    from jobs.models import Job

    job = Job.objects.filter(id=job_id, kind=Job.Kind.LEGACY_IMPORT).first()
    if job is not None:
        legacy_job_services.legacy_import_job_run(job=job)


# Generation and uploads render and store images one by one; a large CIFAR-10 set or a
# 5,000-stimulus grid outlasts the default limits (CELERY_TASK_SOFT_TIME_LIMIT, 5 minutes) on a
# bucket. The soft limit raises inside the task, so the job ends as failed, not "running".
BUILDER_SOFT_TIME_LIMIT_S = 30 * 60
BUILDER_TIME_LIMIT_S = BUILDER_SOFT_TIME_LIMIT_S + 5 * 60


@shared_task(
    acks_late=True, soft_time_limit=BUILDER_SOFT_TIME_LIMIT_S, time_limit=BUILDER_TIME_LIMIT_S
)
def stimuli_generate_job_run(job_id: int) -> None:
    """Run a stimulus-generation job (jobs.Job of kind generate_stimuli).

    Idempotent by a state guard: the service first claims the job (pending -> running), so a
    redelivered task returns at once. No autoretry: a retry would find the job claimed.
    """
    from elicitation import builder_job_services
    from jobs.models import Job

    job = Job.objects.filter(id=job_id, kind=Job.Kind.GENERATE_STIMULI).first()
    if job is not None:
        builder_job_services.stimuli_generate_job_run(job=job)


@shared_task(
    acks_late=True, soft_time_limit=BUILDER_SOFT_TIME_LIMIT_S, time_limit=BUILDER_TIME_LIMIT_S
)
def image_upload_job_run(job_id: int) -> None:
    """Store an uploaded image set (a jobs.Job of kind image_upload); idempotent like
    stimuli_generate_job_run."""
    from elicitation import builder_job_services
    from jobs.models import Job

    job = Job.objects.filter(id=job_id, kind=Job.Kind.IMAGE_UPLOAD).first()
    if job is not None:
        builder_job_services.image_upload_job_run(job=job)
