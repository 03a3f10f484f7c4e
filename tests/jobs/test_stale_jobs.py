from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from analysis import export_services
from jobs import services
from jobs.models import Job
from jobs.tasks import PENDING_REDISPATCH_AFTER, STALE_AFTER, jobs_fail_stale

pytestmark = pytest.mark.django_db


def test_silent_running_jobs_fail_and_others_are_left_alone(researcher: Any) -> None:
    # given a job abandoned by a crashed worker, one still reporting progress, one done
    stale, alive, done = (
        services.job_create(owner_id=researcher.id, kind=Job.Kind.EXPORT) for _ in range(3)
    )
    for job in (stale, alive):
        assert services.job_start(job=job) is True
    services.job_finish(job=done)
    long_ago = timezone.now() - STALE_AFTER - timedelta(minutes=1)
    Job.objects.filter(id__in=[stale.id, done.id]).update(updated_at=long_ago)
    # when the periodic task runs twice
    first, second = jobs_fail_stale(), jobs_fail_stale()
    # then only the silent running job failed, once
    statuses = dict(Job.objects.values_list("id", "status"))
    assert (first, second) == (1, 0)
    assert statuses == {stale.id: "failed", alive.id: "running", done.id: "done"}
    assert "stopped without finishing" in Job.objects.get(id=stale.id).error


def test_pending_jobs_whose_task_gave_up_run_again_and_fail_in_the_end(
    make_study: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given: three export jobs whose tasks never ran (enqueued in a transaction whose
    # callbacks are dropped, as when the task used up its retries against a database that
    # refused connections): one silent since the redispatch interval, one pending since
    # before STALE_AFTER, one fresh
    study = make_study(n_stimuli=2, batch_size=2)
    with django_capture_on_commit_callbacks(execute=False) as dropped:
        stuck, hopeless, fresh = (
            export_services.export_job_create(
                study=study, owner_id=study.owner_id, what="responses", fmt="csv"
            )
            for _ in range(3)
        )
    assert len(dropped) == 3
    now = timezone.now()
    Job.objects.filter(id=stuck.id).update(
        updated_at=now - PENDING_REDISPATCH_AFTER - timedelta(seconds=1)
    )
    Job.objects.filter(id=hopeless.id).update(
        created_at=now - STALE_AFTER - timedelta(minutes=1),
        updated_at=now - PENDING_REDISPATCH_AFTER - timedelta(seconds=1),
    )
    # when: the periodic task runs (its enqueues run on commit, eagerly here), then again
    with django_capture_on_commit_callbacks(execute=True) as enqueued:
        first = jobs_fail_stale()
    second = jobs_fail_stale()
    # then: the stuck job was enqueued again and ran to the end, the hopeless one failed with
    # a message, the fresh one is left to its queue; the second run finds nothing
    assert (first, second) == (1, 0)
    assert len(enqueued) == 1
    jobs = {job.id: job for job in Job.objects.all()}
    assert jobs[stuck.id].status == Job.Status.DONE
    assert jobs[stuck.id].result.name.endswith(".csv")
    assert jobs[hopeless.id].status == Job.Status.FAILED
    assert "never started" in jobs[hopeless.id].error
    assert jobs[hopeless.id].result.name == ""
    assert jobs[fresh.id].status == Job.Status.PENDING


def test_a_pending_job_is_enqueued_again_once_per_interval(
    researcher: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given: a pending job silent for longer than the redispatch interval
    job = services.job_create(owner_id=researcher.id, kind=Job.Kind.EXPORT)
    now = timezone.now()
    Job.objects.filter(id=job.id).update(
        updated_at=now - PENDING_REDISPATCH_AFTER - timedelta(seconds=1)
    )
    with (
        mock.patch("analysis.tasks.export_job_run.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        # when: the reconciler looks three times, the last one an interval later
        counts = [
            services.jobs_pending_reconcile(
                redispatch_after=PENDING_REDISPATCH_AFTER, give_up_after=STALE_AFTER, now=t
            )
            for t in (now, now + timedelta(minutes=1))
        ]
        later = services.jobs_pending_reconcile(
            redispatch_after=PENDING_REDISPATCH_AFTER,
            give_up_after=STALE_AFTER,
            now=now + PENDING_REDISPATCH_AFTER + timedelta(seconds=1),
        )
    # then: enqueued again at the first look and the last, not in between; still pending
    assert counts == [(1, 0), (0, 0)]
    assert later == (1, 0)
    assert [c.args for c in delay.call_args_list] == [(job.id,), (job.id,)]
    assert Job.objects.get(id=job.id).status == Job.Status.PENDING
