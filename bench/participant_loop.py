"""The participant journey under load, against a bare-Django baseline measured in the same run.

Run with `make bench` (or `.venv/bin/python bench/participant_loop.py`). It needs PostgreSQL and
Redis (`make services`) and:

1. creates a fresh PostgreSQL database, migrates, runs `seed_demo` and makes the categorical demo
   study's batches big enough for every participant of the run;
2. starts H-Mix under gunicorn with the production settings, a real Celery worker (concurrency 2)
   and, under the same gunicorn configuration on the same database, the bare-Django baseline of
   bench/baseline_app (one indexed SELECT + one INSERT per request);
3. for each concurrency level runs baseline, H-Mix, baseline, H-Mix (interleaved, so drift on
   this shared machine hits both alike) with the same client code (elicitation.simulation,
   think time 0, one keep-alive connection per client thread). A baseline "participant" sends as
   many requests as an H-Mix journey's nominal 24;
4. during every H-Mix run a poller samples (stimulus, n_annotations) of the study's soft labels
   and the Celery queue length; the freshness of the m-th response (by id) of stimulus s is the
   first sample in which the label of s counts >= m annotations minus the moment the response was
   acknowledged. After the load stops it waits until the queue is empty and every label counts
   every response, and reports how long that took;
5. writes its section of bench/RESULTS.md and exits non-zero if any participant failed, any answer
   was lost or a label never caught up. Every process it started is stopped on the way out.
"""

import argparse
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.results import replace_section  # noqa: E402 (bench scripts run as plain files)
from bench.scratch import fresh_postgres  # noqa: E402

HEADING = "## Participant journey under load (`bench/participant_loop.py`)"
PG_DB = os.environ.get("BENCH_PG_DB", "hmix_bench_loop")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
# The same for H-Mix and the baseline; 4 workers x 4 threads as in the outside tester's run.
GUNICORN = ["-k", "gthread", "-w", "4", "--threads", "4", "--graceful-timeout", "5"]
GUNICORN += ["--log-level", "warning"]
JOURNEY_REQUESTS = 24  # start, consent, instructions, comprehension, 10 x (submit, state), debrief
POLL_S = 0.05
DRAIN_TIMEOUT_S = 300.0


# --- processes -------------------------------------------------------------------------------


class Processes:
    """The processes this bench starts, each in its own process group, all stopped by `stop`."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append((name, proc))

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        for name, proc in self.started:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")

    def stop(self) -> None:
        for _, proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, proc in self.started:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.started.clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, procs: Processes, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        procs.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=5) as res:  # noqa: S310 (loopback)
                if res.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within {timeout} s")
        time.sleep(0.2)


def _wait_log(procs: Processes, name: str, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in procs.log(name):
        procs.check_alive()
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not log {text!r} within {timeout} s")
        time.sleep(0.2)


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Poll:
    """Soft-label counts and queue length sampled by one thread while H-Mix runs and drains."""

    changes: dict[int, list[tuple[float, int]]] = field(default_factory=dict)  # s -> (t, n)
    queue_peak: int = 0
    intervals: list[float] = field(default_factory=list)
    load_stopped_at: float | None = None
    expected: dict[int, int] | None = None  # per stimulus, set when the load stops
    queue_empty_at: float | None = None
    all_fresh_at: float | None = None
    done: threading.Event = field(default_factory=threading.Event)  # caught up, or failed
    error: BaseException | None = None


@contextmanager
def polling(study_id: int, method: str, redis_url: str) -> Iterator[Poll]:
    import redis
    from django.db import connection

    from analysis.models import SoftLabel

    poll = Poll()
    stop = threading.Event()
    queue = redis.Redis.from_url(redis_url)

    def run() -> None:
        last: dict[int, int] = {}
        previous = time.monotonic()
        try:
            while not stop.is_set():
                rows = SoftLabel.objects.filter(study_id=study_id, method=method).values_list(
                    "stimulus_id", "n_annotations"
                )
                counts: dict[int, int] = {}
                for stimulus_id, n in rows:
                    counts[stimulus_id] = min(n, counts.get(stimulus_id, n))
                length = int(queue.llen("celery"))
                # Taken after both reads: the label was stored at the latest by now.
                now = time.monotonic()
                poll.intervals.append(now - previous)
                previous = now
                for stimulus_id, n in counts.items():
                    if last.get(stimulus_id) != n:
                        poll.changes.setdefault(stimulus_id, []).append((now, n))
                        last[stimulus_id] = n
                poll.queue_peak = max(poll.queue_peak, length)
                if poll.expected is not None:
                    if length == 0 and poll.queue_empty_at is None:
                        poll.queue_empty_at = now
                    fresh = all(counts.get(s, 0) >= n for s, n in poll.expected.items())
                    if fresh and poll.all_fresh_at is None:
                        poll.all_fresh_at = now
                    if poll.queue_empty_at is not None and poll.all_fresh_at is not None:
                        return
                time.sleep(max(0.0, POLL_S - (time.monotonic() - now)))
        except BaseException as exc:
            poll.error = exc
            raise
        finally:
            poll.done.set()
            connection.close()

    thread = threading.Thread(target=run, name="bench-poller", daemon=True)
    thread.start()
    try:
        yield poll
    finally:
        stop.set()
        thread.join()
    if poll.error is not None:
        raise SystemExit(f"the poller failed: {poll.error!r}")


def _label_counts(study_id: int) -> dict[int, int]:
    """Responses per stimulus its label counts (as analysis.selectors.categorical_responses)."""
    from django.db.models import Count

    from elicitation.models import Response, Trial

    rows = (
        Response.objects.filter(
            study_id=study_id,
            top_class__isnull=False,
            kind__in=[Trial.Kind.MAIN, Trial.Kind.REPEAT],
        )
        .values("stimulus_id")
        .annotate(n=Count("id"))
        .values_list("stimulus_id", "n")
    )
    return dict(rows)


def _freshness(study_id: int, acks: dict[int, float], poll: Poll) -> tuple[list[float], int]:
    """Seconds from each acknowledged response to the first label counting it; and how many
    never got there."""
    from elicitation.models import Response, Trial

    rank: dict[int, int] = defaultdict(int)
    seconds, never = [], 0
    rows = (
        Response.objects.filter(
            study_id=study_id,
            top_class__isnull=False,
            kind__in=[Trial.Kind.MAIN, Trial.Kind.REPEAT],
        )
        .order_by("id")
        .values_list("id", "stimulus_id")
    )
    for response_id, stimulus_id in rows:
        rank[stimulus_id] += 1
        if response_id not in acks:
            continue  # an earlier run's
        m = rank[stimulus_id]
        seen = next((t for t, n in poll.changes.get(stimulus_id, []) if n >= m), None)
        if seen is None:
            never += 1
        else:
            seconds.append(seen - acks[response_id])
    return seconds, never


# --- runs ------------------------------------------------------------------------------------


def _baseline_journey(client: Any, index: int) -> Any:
    """As many requests as an H-Mix journey, alternating POST and GET, on one key per client."""
    from elicitation.simulation import HttpError, Outcome

    out = Outcome(index=index, stage="baseline")
    key = index % 1000
    try:
        for i in range(JOURNEY_REQUESTS):
            if i % 2 == 0:
                payload = {"trial": i, "answer": {"top_class": "Cat", "p1": 70, "impossible": []}}
                client.request("hit", "POST", f"/hit/{key}/", payload)
            else:
                client.request("hit", "GET", f"/hit/{key}/")
        out.status = "completed"
    except HttpError as exc:
        out.http_status, out.kind, out.reason = exc.status, "hit", str(exc)
    except Exception as exc:  # every failure is counted, with its reason
        out.kind, out.reason = "hit", f"{type(exc).__name__}: {exc}"
    return out


def run_baseline(
    base_url: str, participants: int, concurrency: int, keepalive: bool
) -> dict[str, Any]:
    from elicitation.simulation import run_load, summarise

    load = run_load(
        journey=_baseline_journey,
        participants=participants,
        concurrency=concurrency,
        base_url=base_url,
        keepalive=keepalive,
    )
    result = summarise(load, lost=[], lost_check="none (no answers)", allow_full=False)
    return {**result, "concurrency": concurrency}


def run_hmix(
    base_url: str,
    study: Any,
    participants: int,
    concurrency: int,
    *,
    redis_url: str,
    seed: int,
    keepalive: bool,
) -> dict[str, Any]:
    from elicitation.simulation import simulate

    acks: dict[int, float] = {}

    def on_ack(response_id: int, at: float) -> None:
        acks[response_id] = at

    with polling(study.id, study.label_method, redis_url) as poll:
        result = simulate(
            study=study,
            participants=participants,
            concurrency=concurrency,
            base_url=base_url,
            seed=seed,
            on_ack=on_ack,
            keepalive=keepalive,
        )
        poll.load_stopped_at = time.monotonic()
        # Every answer is committed once its participant is done: from now on labels must catch
        # up with these counts.
        poll.expected = _label_counts(study.id)
        poll.done.wait(DRAIN_TIMEOUT_S)
    seconds, never = _freshness(study.id, acks, poll)
    stopped = poll.load_stopped_at

    def since_stop(t: float | None) -> float | None:
        return None if t is None else round(max(0.0, t - stopped), 2)

    from elicitation.simulation import percentile

    return {
        **result,
        "fresh_n": len(seconds),
        "fresh_never": never,
        "fresh_p50_s": round(percentile(seconds, 50), 2),
        "fresh_p95_s": round(percentile(seconds, 95), 2),
        "fresh_max_s": round(max(seconds, default=0.0), 2),
        "poll_median_s": round(percentile(poll.intervals, 50), 3),
        "poll_max_s": round(max(poll.intervals, default=0.0), 3),
        "queue_peak": poll.queue_peak,
        "queue_empty_after_s": since_stop(poll.queue_empty_at),
        "labels_fresh_after_s": since_stop(poll.all_fresh_at),
    }


# --- report ----------------------------------------------------------------------------------


def _git(*args: str) -> str:
    res = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return res.stdout.strip()


def _version(module: str) -> str:
    from importlib.metadata import version

    return version(module)


def _ratio(a: float, b: float) -> str:
    return f"×{a / b:.2f}" if b else "–"


def _fmt(v: Any) -> str:
    return "never" if v is None else str(v)


def _commit() -> str:
    """The code measured: HEAD when the bench started, and whether the tree differed from it."""
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain") else ""
    return f"`{_git('rev-parse', '--short', 'HEAD')}`{dirty}"


def report(
    rows: list[dict[str, Any]], args: argparse.Namespace, pg_version: str, commit: str
) -> str:
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit} on "
        f"{platform.machine()} with {os.cpu_count()} cores (shared with the load "
        f"generator and the database), Python {platform.python_version()}, {pg_version}, "
        f"gunicorn {_version('gunicorn')}, Celery {_version('celery')}. "
        f"Command: `make bench` (= `.venv/bin/python bench/participant_loop.py "
        f"--levels {','.join(map(str, args.levels))} --min-participants "
        f"{args.min_participants}{' --no-keepalive' if args.no_keepalive else ''}`).",
        "",
        "Both apps run under gunicorn `" + " ".join(GUNICORN) + "` on the same PostgreSQL "
        "database; H-Mix with `hmix_site.settings.production` and one `celery -A hmix_site worker "
        "-c 2` on Redis, the baseline is bench/baseline_app (one indexed SELECT + one INSERT per "
        "request). Each level runs baseline, H-Mix, baseline, H-Mix; a run is "
        "max(min-participants, concurrency) participants (the same for both apps) through the "
        "client of `elicitation/simulation.py` (think time 0, "
        + ("a new connection per request" if args.no_keepalive else "keep-alive")
        + "). A baseline "
        f"participant sends {JOURNEY_REQUESTS} requests, an H-Mix one "
        "its whole journey (24 requests, more after a misread comprehension check or a retried "
        "submit). req/s = every HTTP request of the run over its wall time. errors = participants "
        "that did not complete; lost = completed ones whose answers are not all stored (one query "
        "against the database). Latency is over all requests of the run.",
        "",
        "| level | app | participants | requests | req/s | errors | lost | p50 ms | p95 ms "
        "| wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lat = r["latency_ms"]["all"]
        lines.append(
            f"| {r['concurrency']} | {r['app']} | {r['participants']} | {r['requests']} | "
            f"{r['requests_per_s']} | {r['errors']} | {r['lost']} | {lat['p50']} | "
            f"{lat['p95']} | {r['wall_s']} |"
        )
    lines += [
        "",
        "Per level (mean of the two runs of each app); target: H-Mix ≥ ×0.50 of the baseline, "
        "0 errors, 0 lost.",
        "",
        "| level | H-Mix req/s | baseline req/s | H-Mix / baseline | errors | lost | target met |",
        "|---|---|---|---|---|---|---|",
    ]
    for level in args.levels:
        h = [r for r in rows if r["concurrency"] == level and r["app"] == "H-Mix"]
        b = [r for r in rows if r["concurrency"] == level and r["app"] == "baseline"]
        if not h or not b:
            continue
        hr = sum(r["requests_per_s"] for r in h) / len(h)
        br = sum(r["requests_per_s"] for r in b) / len(b)
        errors = sum(r["errors"] for r in h + b)
        lost = sum(r["lost"] for r in h)
        met = "yes" if br and hr / br >= 0.5 and not errors and not lost else "no"
        lines.append(
            f"| {level} | {hr:.1f} | {br:.1f} | {_ratio(hr, br)} | {errors} | {lost} | {met} |"
        )
    lines += [
        "",
        "Fresh labels: freshness of the m-th response (by id) of a stimulus = first poll in which "
        "its soft label (study's default method) counts ≥ m annotations, minus the moment the "
        "submit was acknowledged; each poll reads all labels and the Celery queue length (Redis "
        f"LLEN) every {POLL_S * 1000:.0f} ms, so a figure is late by at most one poll interval "
        "(median/max intervals measured below). After the load stops, the run waits for the "
        "queue to empty and every label to count every response. Target at concurrency 50: "
        "p95 ≤ 2 s, drained within 5 s.",
        "",
        "| level | run | responses | fresh p50 s | fresh p95 s | fresh max s | never fresh "
        "| poll median / max s | queue peak | queue empty after stop s "
        "| labels all fresh after stop s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(x for x in rows if x["app"] == "H-Mix"):
        lines.append(
            f"| {r['concurrency']} | {i % 2 + 1} | {r['fresh_n'] + r['fresh_never']} | "
            f"{r['fresh_p50_s']} | {r['fresh_p95_s']} | {r['fresh_max_s']} | "
            f"{r['fresh_never']} | {r['poll_median_s']} / {r['poll_max_s']} | "
            f"{r['queue_peak']} | {_fmt(r['queue_empty_after_s'])} | "
            f"{_fmt(r['labels_fresh_after_s'])} |"
        )
    failures = [
        f"{r['app']} at {r['concurrency']}: {m}"
        for r in rows
        for m in r.get("error_messages", [])[:3] + r.get("lost_messages", [])[:3]
    ]
    if failures:
        lines += ["", "First failures:", "", *[f"- {m}" for m in failures[:20]]]
    return "\n".join(lines) + "\n"


# --- main ------------------------------------------------------------------------------------


def _setup_django(db_url: str, media: Path) -> Any:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="hmix_site.settings.local",
        DJANGO_DEBUG="false",  # DEBUG would keep every query of the run in memory
        DATABASE_URL=db_url,
        CELERY_BROKER_URL=REDIS_URL,
        HMIX_MEDIA_ROOT=str(media),
        DJANGO_LOG_LEVEL="WARNING",
    )
    os.environ.pop("HMIX_CELERY_EAGER", None)
    import django

    django.setup()
    from django.core.management import call_command

    from elicitation.demo import DEMO_SLUG
    from elicitation.models import Batch, Study

    call_command("migrate", "--noinput", verbosity=0)
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    # Room for every participant of the run: the demo's batches take 10 each.
    study = Study.objects.get(slug=DEMO_SLUG)
    Batch.objects.filter(study=study).update(target=1_000_000)
    Study.objects.filter(id=study.id).update(participants_per_batch=1_000_000)
    return Study.objects.get(id=study.id)


def _prepare_baseline(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--run-syncdb", "--noinput", "-v0"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "bench.baseline_app.settings"},
        check=True,
    )
    from django.db import connection

    with connection.cursor() as cur:  # a table that is not tiny: 100,000 rows on 1,000 keys
        cur.execute(
            "INSERT INTO baseline_app_hit (key, n, body, created_at) "
            "SELECT g % 1000, g / 1000 + 1, '{}'::jsonb, now() FROM generate_series(0, 99999) g"
        )
        cur.execute("ANALYZE baseline_app_hit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--levels",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[20, 50, 200],
        help="Concurrency levels (default 20,50,200)",
    )
    parser.add_argument(
        "--min-participants",
        type=int,
        default=125,
        help="Participants per run: this many (about 3,000 requests), or the concurrency if more",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-keepalive",
        action="store_true",
        help="A new TCP connection per request (to see what keep-alive changes)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()

    # SIGTERM ends the run like Ctrl-C does: through the finally that stops every process.
    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    keepalive = not args.no_keepalive
    commit = _commit()
    tmp = Path(tempfile.mkdtemp(prefix="hmix-bench-"))
    procs = Processes(tmp)
    rows: list[dict[str, Any]] = []
    try:
        db_url = fresh_postgres(PG_DB)
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        study = _setup_django(db_url, tmp / "media")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "hmix_site.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
            # No TLS proxy in front here; everything else as in production, except:
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            # every simulated participant arrives from 127.0.0.1, which the per-address arrival
            # limit exists to stop: rate limits off (docs/deployment.md#rate-limits).
            "HMIX_RATE_LIMITS_ENABLED": "false",
            "HMIX_CACHE_URL": REDIS_URL,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
        _prepare_baseline(env)
        hmix_port, base_port = _free_port(), _free_port()
        gunicorn = [sys.executable, "-m", "gunicorn", *GUNICORN]
        procs.start("hmix", [*gunicorn, "-b", f"127.0.0.1:{hmix_port}", "hmix_site.wsgi"], env)
        baseline_env = {**env, "DJANGO_SETTINGS_MODULE": "bench.baseline_app.settings"}
        procs.start(
            "baseline",
            [*gunicorn, "-b", f"127.0.0.1:{base_port}", "bench.baseline_app.wsgi"],
            baseline_env,
        )
        worker = [sys.executable, "-m", "celery", "-A", "hmix_site", "worker", "-c", "2"]
        worker += ["-l", "info", "-n", f"bench-{os.getpid()}@%h", "--without-gossip"]
        worker += ["--without-mingle", "--without-heartbeat"]
        procs.start("worker", worker, env)
        hmix, baseline = f"http://127.0.0.1:{hmix_port}", f"http://127.0.0.1:{base_port}"
        _wait_http(f"{hmix}/health/", procs)
        _wait_http(f"{baseline}/hit/0/", procs)
        _wait_log(procs, "worker", " ready.")
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            pg_version = f"PostgreSQL {cur.fetchone()[0]}"

        runs: list[tuple[str, Callable[[int, int], dict[str, Any]]]] = [
            ("baseline", lambda n, c: run_baseline(baseline, n, c, keepalive)),
            (
                "H-Mix",
                lambda n, c: run_hmix(
                    hmix,
                    study,
                    n,
                    c,
                    redis_url=REDIS_URL,
                    seed=args.seed + len(rows),
                    keepalive=keepalive,
                ),
            ),
        ]
        for level in args.levels:
            for app, run in runs * 2:
                procs.check_alive()
                started = time.monotonic()
                result = {"app": app, **run(max(args.min_participants, level), level)}
                rows.append(result)
                print(
                    f"{app:8} c={level:<4} {result['requests_per_s']:>8} req/s "
                    f"errors={result['errors']} lost={result['lost']} "
                    f"wall={result['wall_s']} s (with drain {time.monotonic() - started:.1f} s)"
                    + (
                        f" fresh p95={result['fresh_p95_s']} s queue peak={result['queue_peak']}"
                        if app == "H-Mix"
                        else ""
                    ),
                    flush=True,
                )
        procs.check_alive()
        body = report(rows, args, pg_version, commit)
        replace_section(args.out, HEADING, body)
        print(body)
    finally:
        procs.stop()
    bad = [
        r
        for r in rows
        if r["errors"]
        or r["lost"]
        or (r["app"] == "H-Mix" and (r["labels_fresh_after_s"] is None or r["fresh_never"]))
    ]
    if bad:
        raise SystemExit(
            f"{len(bad)} runs had errors, lost answers or labels that never caught up "
            f"(logs in {tmp})"
        )


if __name__ == "__main__":
    main()
