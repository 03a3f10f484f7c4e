from celery import shared_task

# A generation of many targets × 5,000 steps runs for a long time on a CPU. The soft limit
# raises inside the task, so the job ends as failed, not "running"; jobs.tasks.jobs_fail_stale
# only fails jobs silent for 90 minutes, and these report progress every 1 % of their steps.
IRI_SOFT_TIME_LIMIT_S = 6 * 60 * 60
IRI_TIME_LIMIT_S = IRI_SOFT_TIME_LIMIT_S + 5 * 60


@shared_task(acks_late=True, soft_time_limit=IRI_SOFT_TIME_LIMIT_S, time_limit=IRI_TIME_LIMIT_S)
def iri_generate_job_run(job_id: int) -> None:
    """Run an IRI generation job (jobs.Job of kind iri_generate), routed to the `iri` queue.

    Idempotent by a state guard: the service first claims the job (pending -> running), so a
    redelivered task returns at once. No autoretry: a retry would find the job claimed.
    """
    from iri import services
    from jobs.models import Job

    job = Job.objects.filter(id=job_id, kind=Job.Kind.IRI_GENERATE).first()
    if job is not None:
        services.iri_generate_job_run(job=job)


@shared_task(acks_late=True, soft_time_limit=IRI_SOFT_TIME_LIMIT_S, time_limit=IRI_TIME_LIMIT_S)
def network_train_job_run(job_id: int) -> None:
    """Run a model training job (jobs.Job of kind network_train); idempotent like
    iri_generate_job_run."""
    from iri import services
    from jobs.models import Job

    job = Job.objects.filter(id=job_id, kind=Job.Kind.NETWORK_TRAIN).first()
    if job is not None:
        services.network_train_job_run(job=job)
