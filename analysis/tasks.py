import logging

from celery import Task, shared_task
from django.db import OperationalError

from elicitation.models import Stimulus, Study

logger = logging.getLogger(__name__)

# Retry only what a database restart or failover raises; a bug must fail loudly, not loop.
_RETRY = {"autoretry_for": (OperationalError,), "max_retries": 3, "retry_backoff": True}


def _again(task: Task, *args: object, countdown: float = 0) -> None:
    """Enqueue `task` once more, on the queue this delivery came from (a worker may consume
    queues other than the default one)."""
    queue = (task.request.delivery_info or {}).get("routing_key")
    task.apply_async(args, countdown=countdown, queue=queue)


@shared_task(bind=True, acks_late=True, **_RETRY)
def soft_label_recompute(self: Task, stimulus_id: int) -> None:
    """Bring a stimulus's stored soft labels up to date with its responses (idempotent).

    Answers that arrive while it runs are picked up by its next round (recompute_services);
    a stimulus still busy after a few rounds is handed to a new task at the back of the queue,
    so one hot stimulus cannot hold a worker.
    """
    from analysis import recompute_services, services  # local: services import elicitation

    target = recompute_services.Target.SOFT_LABELS
    stimulus = Stimulus.objects.select_related("study").filter(id=stimulus_id).first()
    if stimulus is None:
        recompute_services.pending_drop(target=target, object_id=stimulus_id)
        return
    busy = recompute_services.pending_refresh(
        target=target,
        object_id=stimulus_id,
        refresh=lambda: services.soft_label_recompute(stimulus=stimulus),
        rounds=recompute_services.SOFT_LABEL_ROUNDS,
    )
    if busy:
        _again(self, stimulus_id)


@shared_task(bind=True, acks_late=True, **_RETRY)
def soft_label_sweep(self: Task) -> None:
    """Refresh the soft labels of every stimulus marked stale, in bulk (recompute_services).

    Idempotent: it recomputes from the stored responses and clears marks at the versions read.
    """
    from analysis import recompute_services

    busy = recompute_services.soft_label_sweep(
        refresh=_refresh_stimuli, passes=recompute_services.SWEEP_PASSES
    )
    if busy:
        _again(self, countdown=recompute_services.SWEEP_INTERVAL_S)


def _refresh_stimuli(stimulus_ids: list[int]) -> None:
    from analysis import services

    by_study: dict[int, list[int]] = {}
    for stimulus_id, study_id in Stimulus.objects.filter(id__in=stimulus_ids).values_list(
        "id", "study_id"
    ):
        by_study.setdefault(study_id, []).append(stimulus_id)
    for study in Study.objects.filter(id__in=by_study):
        try:
            services.soft_labels_refresh(study=study, stimulus_ids=by_study[study.id])
        except ValueError:
            # Stored answers a construction refuses (e.g. an imported value above 100 % under
            # a clean method) must not stall every other study's labels: the sweep clears
            # these marks too, and the error is logged for the researcher to fix the method.
            logger.exception("Soft labels of study %s could not be refreshed", study.id)


@shared_task(acks_late=True, **_RETRY)
def study_aggregate(study_id: int, method_name: str, params: dict[str, object]) -> None:
    from analysis import services
    from analysis.aggregation import Method

    study = Study.objects.filter(id=study_id).first()
    if study is not None:
        services.study_aggregate(study=study, method=Method.from_params(method_name, params))


@shared_task(bind=True, acks_late=True, **_RETRY)
def study_analysis_recompute(self: Task, study_id: int) -> None:
    """Recompute the study's interface analyses (B–F) from its stored responses (idempotent).

    Debounced (recompute_services.STUDY_ANALYSIS_DEBOUNCE_S): answers that arrived during the
    recompute schedule one more, a debounce interval later, instead of one each.
    """
    from analysis import recompute_services, services

    target = recompute_services.Target.STUDY_ANALYSIS
    study = Study.objects.filter(id=study_id).first()
    if study is None:
        recompute_services.pending_drop(target=target, object_id=study_id)
        return
    busy = recompute_services.pending_refresh(
        target=target,
        object_id=study_id,
        refresh=lambda: services.study_analysis_recompute(study=study),
        rounds=1,
    )
    if busy:
        _again(self, study_id, countdown=recompute_services.STUDY_ANALYSIS_DEBOUNCE_S)


@shared_task(acks_late=True, **_RETRY)
def pending_recomputes_reconcile() -> int:
    """Periodic (CELERY_BEAT_SCHEDULE): re-enqueue refreshes lost with a crashed worker."""
    from analysis import recompute_services

    Target = recompute_services.Target
    lost = recompute_services.pending_reconcile()
    if any(target != Target.STUDY_ANALYSIS for target, _ in lost):
        soft_label_sweep.delay()
    for target, object_id in lost:
        if target == Target.STUDY_ANALYSIS:
            study_analysis_recompute.delay(object_id)
    return len(lost)


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
