from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from jobs import services
from jobs.models import Job
from jobs.tasks import STALE_AFTER, jobs_fail_stale

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
