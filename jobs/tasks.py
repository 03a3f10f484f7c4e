from datetime import timedelta

from celery import shared_task
from django.db import OperationalError

# Longer than the longest job's hard time limit (65 min, analysis.tasks), so a job that is
# still legitimately running is never failed.
STALE_AFTER = timedelta(minutes=90)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def jobs_fail_stale() -> int:
    """Periodic (CELERY_BEAT_SCHEDULE): fail jobs abandoned by a crashed worker. Idempotent."""
    from jobs import services

    return services.jobs_fail_stale(older_than=STALE_AFTER)
