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
