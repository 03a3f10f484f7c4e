"""A worker killed (SIGKILL) while it holds reserved tasks: a second worker brings every label up
to date within the bound the broker settings give.

Two participants answer through the API while the first stimulus's row is held locked from
another connection, so the first worker's sweep cannot finish and it holds its messages
unacknowledged (acks_late). Later answers only mark their stimulus stale: the sweep flag is up,
so no new sweep is enqueued, and the killed worker's unacknowledged messages are all that is
left to refresh the labels. No beat runs here, so nothing but the broker's visibility timeout
brings them back (analysis.tasks.pending_recomputes_reconcile is the second line of defence,
tested in tests/analysis/services/test_recompute_services.py).
"""

import signal
import time
from collections.abc import Callable

import psycopg2
import pytest
import redis
from rest_framework.test import APIClient

from analysis.models import PendingRecompute, SoftLabel
from analysis.tasks import soft_label_recompute
from elicitation.models import Study
from tests.analysis.conftest import WORKER_BROKER_URL, CeleryWorker, _test_database_url
from tests.analysis.test_celery_worker import (
    PLAN,
    _answer_every_trial,
    _expected_probs,
    _labels_complete,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# Shortened for the test through the same environment variables production reads
# (hmix_site/settings/base.py CELERY_BROKER_TRANSPORT_OPTIONS; defaults 600 s and 30 s).
VISIBILITY_TIMEOUT_S = 5
RESTORE_INTERVAL_S = 1
WORKER_ENV = {
    "HMIX_CELERY_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
    "HMIX_CELERY_RESTORE_INTERVAL_S": str(RESTORE_INTERVAL_S),
}
# The bound, counted from the moment the second worker is ready: a message unacked for the
# visibility timeout is restored at the worker's next look (every restore interval), then the
# refresh itself runs. The last term is a generous allowance for that run (two stimuli, on a
# shared test machine), not a measured figure.
RUN_ALLOWANCE_S = 45
BOUND_S = VISIBILITY_TIMEOUT_S + RESTORE_INTERVAL_S + RUN_ALLOWANCE_S
SWEEP = "analysis.tasks.soft_label_sweep"
RECOMPUTE = "analysis.tasks.soft_label_recompute"


def _received_ids(worker: CeleryWorker, task: str) -> set[str]:
    prefix = f"Task {task}["
    return {
        line.split(prefix, 1)[1].split("]", 1)[0]
        for line in worker.log().splitlines()
        if prefix in line and "] received" in line
    }


def _wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


def test_a_killed_workers_reserved_tasks_run_on_another_worker_within_the_bound(
    make_study: Callable[..., Study], celery_workers: Callable[..., CeleryWorker]
) -> None:
    # given: a worker holding two reserved messages, neither of which can finish: a recompute
    # due in a few seconds (held in its timer) and the sweep it is running, blocked on the row
    # lock; the answers that arrived after the sweep left only their marks
    study = make_study(n_stimuli=2, batch_size=2)
    first = celery_workers(**WORKER_ENV)
    stimulus_ids = list(study.stimuli.order_by("id").values_list("id", flat=True))
    holder = psycopg2.connect(_test_database_url())
    broker = redis.Redis.from_url(WORKER_BROKER_URL)
    try:
        with holder.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM elicitation_stimulus WHERE id = ANY(%s) FOR NO KEY UPDATE",
                [stimulus_ids],
            )
        delayed = soft_label_recompute.apply_async((stimulus_ids[0],), countdown=3)
        _wait_for(lambda: delayed.id in _received_ids(first, RECOMPUTE), "recompute received", 60)
        client = APIClient()
        answers = sum(_answer_every_trial(client, study, pid) for pid in ("PID-1", "PID-2"))
        _wait_for(lambda: len(_received_ids(first, SWEEP)) == 1, "sweep received", 60)
        # a sweep reaches the lock within moments; the recompute is due 3 s after it was sent
        time.sleep(4)
        assert answers == len(PLAN)
        assert broker.llen(first.queue) == 0
        assert broker.hlen("unacked") == 2
        assert SoftLabel.objects.exists() is False
        # when: it is killed without a chance to give them back, the lock is released, and a
        # second worker starts
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    finally:
        holder.rollback()
        holder.close()
    assert first.process.returncode == -signal.SIGKILL
    assert PendingRecompute.objects.filter(target="soft_labels").count() == 2
    second = celery_workers(**WORKER_ENV)
    # then: within the bound both labels count every answer, and the messages the second
    # worker ran were the first one's, redelivered (no beat runs to reconcile)
    _wait_for(
        lambda: _labels_complete(study, n_annotations=4) and not PendingRecompute.objects.exists(),
        "every label up to date after the kill",
        BOUND_S,
    )
    assert _received_ids(first, SWEEP) <= _received_ids(second, SWEEP)
    assert delayed.id in _received_ids(second, RECOMPUTE)
    labels = {label.stimulus_id: label for label in SoftLabel.objects.filter(study=study)}
    for index, stimulus_id in enumerate(stimulus_ids):
        assert labels[stimulus_id].probs == pytest.approx(_expected_probs(index), abs=1e-12)
        assert labels[stimulus_id].n_annotators == 2
    broker.close()
