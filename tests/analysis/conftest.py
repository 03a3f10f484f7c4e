import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from django.db import connection
from kombu import pools

from hmix_site.celery import app as celery_app
from hmix_site.env import BASE_DIR

# A Redis database of its own, so the flushes below never touch anything else on the server.
# Overridable so that two checkouts can run their worker tests side by side.
WORKER_BROKER_URL = os.environ.get("HMIX_TEST_WORKER_BROKER_URL", "redis://127.0.0.1:6379/13")
WORKER_START_TIMEOUT_S = 60.0
_WORKER_KEY = pytest.StashKey["CeleryWorker"]()


@dataclass
class CeleryWorker:
    queue: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, *, timeout: float = 60.0) -> None:
        """Poll the worker's log until `text` shows up; fail if the worker dies or time runs out."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process.poll() is not None:
                pytest.fail(
                    f"Celery worker exited with {self.process.returncode} waiting for {text!r}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"{text!r} not in the Celery worker log after {timeout:.0f} s")
            time.sleep(0.1)

    def wait_for_task(self, task_id: str, *, timeout: float = 60.0) -> None:
        # Celery's worker logs "Task <name>[<id>] succeeded in ..." at INFO level.
        self.wait_for_log(f"[{task_id}] succeeded", timeout=timeout)


def _test_database_url() -> str:
    """The URL of the database this pytest run uses (test_<name>, with any xdist suffix)."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


def _reset_producer_state() -> None:
    # Celery builds its connection pools and its queue and route tables on first use and caches
    # them; drop them (as Celery's own after-fork hook does) so a changed broker_url and
    # task_default_queue take effect. kombu keeps the pools in a registry of its own.
    pools.reset()
    celery_app._pool = None
    celery_app.__dict__.pop("amqp", None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # A failing test's report gets the worker's log as an extra section (pytest shows it with
    # the captured output); a passing test's log stays quiet.
    report = yield
    worker = item.stash.get(_WORKER_KEY, None)
    if worker is not None and report.failed:
        report.sections.append((f"Celery worker log ({call.when})", worker.log()))
    return report


def _worker_process(
    queue: str, log_path: Path, extra_env: dict[str, str] | None = None, *, name: str = ""
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hmix_site.settings.test",
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": WORKER_BROKER_URL,
        "HMIX_CELERY_EAGER": "false",
        # The tests read "Task ...[id] succeeded" lines, which base.py's LOGGING quietens.
        "CELERY_TRACE_LOG_LEVEL": "INFO",
        **(extra_env or {}),
    }
    command = [
        str(Path(sys.executable).with_name("celery")),
        "-A",
        "hmix_site",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "-Q",
        queue,
        "-n",
        f"{name or queue}-{log_path.stem}@%h",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "info",
    ]
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # warm shutdown: the solo pool finishes its current task first
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def celery_workers(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., CeleryWorker]]:
    """Start real `celery worker` processes on the pytest test database, all consuming one queue
    of their own: `start(**extra_env)` starts one more and waits until it is ready.
    `start(queues=("iri",))` starts one consuming only the named queues instead (a queue that
    tasks are routed to by CELERY_TASK_ROUTES); those queues are emptied afterwards too.

    While the fixture is active, this process sends tasks to that queue instead of running them
    eagerly. Every worker still alive is stopped in the finaliser whatever happened, and a
    failing test's report carries the last worker's log.
    """
    broker = redis.Redis.from_url(WORKER_BROKER_URL)
    broker.flushdb()
    queue = f"hmix-test-{uuid.uuid4().hex}"
    started: list[CeleryWorker] = []
    named_queues: set[str] = set()
    saved: dict[str, Any] = {
        key: celery_app.conf[key]
        for key in ("task_always_eager", "broker_url", "task_default_queue")
    }

    def start(*, queues: Sequence[str] = (), **extra_env: str) -> CeleryWorker:
        log_path = tmp_path / f"celery-worker-{len(started) + 1}.log"
        named_queues.update(queues)
        consumed = ",".join(queues) or queue
        worker = CeleryWorker(
            queue=consumed,
            process=_worker_process(consumed, log_path, extra_env, name=queue),
            log_path=log_path,
        )
        started.append(worker)
        request.node.stash[_WORKER_KEY] = worker
        worker.wait_for_log(" ready.", timeout=WORKER_START_TIMEOUT_S)
        return worker

    try:
        # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
        monkeypatch.setenv("CELERY_BROKER_URL", WORKER_BROKER_URL)
        celery_app.conf.update(
            task_always_eager=False, broker_url=WORKER_BROKER_URL, task_default_queue=queue
        )
        _reset_producer_state()
        yield start
    finally:
        celery_app.conf.update(saved)
        _reset_producer_state()
        for worker in started:
            if worker.process.poll() is None:
                _stop(worker.process)
        # Only these queues: the database was flushed before the first worker started.
        for name in (queue, *named_queues):
            broker.delete(name, f"_kombu.binding.{name}")
        broker.close()


@pytest.fixture
def celery_worker(celery_workers: Callable[..., CeleryWorker]) -> CeleryWorker:
    """A real `celery worker` process on the pytest test database, consuming a queue of its own
    (see celery_workers)."""
    return celery_workers()
