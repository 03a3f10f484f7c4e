from datetime import timedelta

from celery import shared_task
from django.db import OperationalError

# Longer than the longest job's hard time limit (65 min, analysis.tasks), so a job that is
# still legitimately running is never failed.
STALE_AFTER = timedelta(minutes=90)
# A job still pending this long after it was (re-)enqueued has lost its task: enqueued again.
# Far longer than a task spends on its own retries (3, with backoffs of seconds), and one job
# merely queued behind a backlog for longer is only delivered twice (harmless, job_start).
PENDING_REDISPATCH_AFTER = timedelta(minutes=10)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def jobs_fail_stale() -> int:
    """Periodic (CELERY_BEAT_SCHEDULE): fail jobs abandoned by a crashed worker, and enqueue
    again (in the end fail) jobs left pending by a task that gave up. Idempotent."""
    from jobs import services

    _, failed_pending = services.jobs_pending_reconcile(
        redispatch_after=PENDING_REDISPATCH_AFTER, give_up_after=STALE_AFTER
    )
    return services.jobs_fail_stale(older_than=STALE_AFTER) + failed_pending
