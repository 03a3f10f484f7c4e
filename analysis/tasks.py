from celery import shared_task
from django.db import OperationalError

from elicitation.models import Stimulus, Study


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def soft_label_recompute(stimulus_id: int) -> None:
    """Recompute a stimulus's stored soft labels from its responses (idempotent)."""
    from analysis import services  # local import: elicitation.services imports this module

    stimulus = Stimulus.objects.select_related("study").filter(id=stimulus_id).first()
    if stimulus is not None:
        services.soft_label_recompute(stimulus=stimulus)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def study_aggregate(study_id: int, method_name: str, params: dict[str, object]) -> None:
    from analysis import services
    from analysis.aggregation import Method

    study = Study.objects.filter(id=study_id).first()
    if study is not None:
        services.study_aggregate(study=study, method=Method.from_params(method_name, params))


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def study_analysis_recompute(study_id: int) -> None:
    """Recompute the study's interface analyses (B–F) from its stored responses (idempotent)."""
    from analysis import services

    study = Study.objects.filter(id=study_id).first()
    if study is not None:
        services.study_analysis_recompute(study=study)


# Exports of large studies outlast the default limits (CELERY_TASK_SOFT_TIME_LIMIT, 5 minutes).
# The soft limit raises inside the task, so the job ends as failed instead of staying "running".
EXPORT_SOFT_TIME_LIMIT_S = 60 * 60
EXPORT_TIME_LIMIT_S = EXPORT_SOFT_TIME_LIMIT_S + 5 * 60


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    max_retries=3,
    retry_backoff=True,
    soft_time_limit=EXPORT_SOFT_TIME_LIMIT_S,
    time_limit=EXPORT_TIME_LIMIT_S,
)
def export_job_run(job_id: int) -> None:
    """Run an export job; a second delivery finds it claimed and does nothing (job_start)."""
    from analysis import export_services
    from jobs.models import Job

    job = Job.objects.select_related("study").filter(id=job_id, kind=Job.Kind.EXPORT).first()
    if job is not None:
        export_services.export_job_run(job=job)


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    max_retries=3,
    retry_backoff=True,
    soft_time_limit=EXPORT_SOFT_TIME_LIMIT_S,
    time_limit=EXPORT_TIME_LIMIT_S,
)
def bundle_job_run(job_id: int) -> None:
    """Build a dataset bundle; idempotent like export_job_run."""
    from analysis import export_services
    from jobs.models import Job

    job = Job.objects.select_related("study").filter(id=job_id, kind=Job.Kind.BUNDLE).first()
    if job is not None:
        export_services.bundle_job_run(job=job)
