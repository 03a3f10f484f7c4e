"""Simulated participants who go through the real HTTP journey (pilots, load tests, benchmarks).

Each simulated worker uses only the participant JSON API, like a browser would, over one
keep-alive HTTP connection per client thread. Every participant ends in an `Outcome`; one that
does not reach `completed` is an error with its reason (only "full" may be allowed explicitly).
A completed participant whose answers are not all stored is `lost`.

Database use is bounded whatever the concurrency (the tester's run at concurrency 200 exhausted
PostgreSQL's connections because every client thread opened its own):
- client threads never touch the database;
- the plausible-answer oracle reads it from ONE dedicated thread (`AnswerOracle`): the study's
  stimuli once, then one query per participant for its trials;
- the caller's thread runs the final `lost` check, one aggregate query;
- the local server the command may start runs requests on a pool of LOCAL_SERVER_MAX_IN_FLIGHT
  threads, one connection each.
So the simulator holds at most 2 connections, plus LOCAL_SERVER_MAX_IN_FLIGHT for its own server.
With a `str` study (no oracle) the simulator itself makes no database query at all.
"""

import http.client
import json
import random
import statistics
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.db import connections
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.test import override_settings

from elicitation.models import Participant, Response, Stimulus, StimulusImage, Study, Trial

# Threads of the command's own server that run requests; each holds one database connection.
LOCAL_SERVER_MAX_IN_FLIGHT = 8


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _PooledApp:
    """The WSGI app run by a fixed pool of `size` threads, each with its own DB connection.

    The threaded server starts one thread per client connection, and Django keeps a database
    connection per thread, so served directly a --concurrency of 200 would mean 200 connections.
    Handing each request to this pool bounds them to `size`.
    """

    def __init__(self, app: Any, size: int):
        self._app = app
        self._size = size
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="sim-server")

    def _call(self, environ: dict[str, Any], start_response: Any) -> bytes:
        result = self._app(environ, start_response)
        try:
            return b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()  # sends request_finished, as the server would

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return [self._pool.submit(self._call, environ, start_response).result()]

    def close(self) -> None:
        # One task per pool thread (the barrier holds each until all have one), so every
        # thread closes its own connection.
        barrier = threading.Barrier(self._size)

        def close_own() -> None:
            connections.close_all()
            barrier.wait()

        for future in [self._pool.submit(close_own) for _ in range(self._size)]:
            future.result()
        self._pool.shutdown()


@contextmanager
def local_server() -> Iterator[str]:
    """Serve this project on a free loopback port in background threads; yields the base URL.

    Rate limits are off on this server: every simulated participant arrives from 127.0.0.1,
    which is exactly what the per-address arrival limit exists to stop. (A deployed site given
    by --base-url keeps its own: raise HMIX_ARRIVAL_RATE_PER_IP there for a large pilot.)
    """
    with override_settings(HMIX_RATE_LIMITS_ENABLED=False, RATELIMIT_ENABLE=False):
        yield from _serve()


def _serve() -> Iterator[str]:
    server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
    app = _PooledApp(get_wsgi_application(), LOCAL_SERVER_MAX_IN_FLIGHT)
    server.set_app(app)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        app.close()
        connections.close_all()


# --- HTTP ------------------------------------------------------------------------------------


class HttpError(Exception):
    def __init__(self, status: int, body: str, kind: str = ""):
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status
        self.kind = kind
        self.body = body

    @property
    def study_full(self) -> bool:
        """A start refused because every place is taken (409, extra.reason "full")."""
        if self.status != 409:
            return False
        try:
            extra = json.loads(self.body).get("extra") or {}
        except (ValueError, AttributeError):
            return False
        return isinstance(extra, dict) and extra.get("reason") == "full"


def percentile(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass
class Recorder:
    """Every HTTP request of a run: latencies per request kind, and reconnects."""

    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    reconnects: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, elapsed_ms: float) -> None:
        with self.lock:
            self.latencies_ms.setdefault(kind, []).append(elapsed_ms)

    def reconnected(self) -> None:
        with self.lock:
            self.reconnects += 1

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies_ms.values())

    def summary(self) -> dict[str, dict[str, float]]:
        """n, p50/p95/p99/max in ms per kind, and over all requests as "all"."""
        kinds = {**self.latencies_ms, "all": [x for v in self.latencies_ms.values() for x in v]}
        return {
            kind: {
                "n": len(values),
                "p50": round(percentile(values, 50), 1),
                "p95": round(percentile(values, 95), 1),
                "p99": round(percentile(values, 99), 1),
                "max": round(max(values, default=0.0), 1),
            }
            for kind, values in sorted(kinds.items())
        }


class Client:
    """One client thread's HTTP/1.1 connection, kept alive between requests (stdlib only).

    Keep-alive matters for a fair load test: a new TCP connection per request costs the server
    an accept and the client a handshake that a browser would not pay.
    """

    def __init__(self, base_url: str, recorder: Recorder, *, timeout: float, keepalive: bool):
        parts = urllib.parse.urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._recorder = recorder
        self._timeout = timeout
        self._keepalive = keepalive
        self._conn: http.client.HTTPConnection | None = None
        self._reused = False

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._reused = False

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def request(self, kind: str, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        """Send one request; returns (status, JSON body). Raises HttpError unless 2xx."""
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if not self._keepalive:
            headers["Connection"] = "close"
        for attempt in (1, 2):
            conn, reused = self._connection(), self._reused
            started = time.perf_counter()
            try:
                conn.request(method, self._prefix + path, body=body, headers=headers)
                res = conn.getresponse()
                data = res.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                # A kept-alive connection the server closed while idle: the request never got
                # there. Sent again once on a new connection (and counted); any other failure
                # ends the participant.
                if attempt == 1 and reused:
                    self._recorder.reconnected()
                    continue
                raise
            except (OSError, http.client.HTTPException):
                self.close()
                raise
            self._recorder.record(kind, (time.perf_counter() - started) * 1000)
            if res.will_close or not self._keepalive:
                self.close()
            else:
                self._reused = True
            if not 200 <= res.status < 300:
                raise HttpError(res.status, data.decode(errors="replace"), kind)
            return res.status, json.loads(data or b"null")
        raise AssertionError("unreachable")  # pragma: no cover


# --- answers ---------------------------------------------------------------------------------


def _categorical(rng: random.Random, s: Stimulus | None, class_order: list[str]) -> dict[str, Any]:
    if s is not None and s.lam is not None and s.class1 in class_order and s.class2 in class_order:
        seen = min(1.0, max(0.0, rng.gauss(s.lam, 0.15)))
        first, second = (s.class1, s.class2) if seen >= 0.5 else (s.class2, s.class1)
        p1 = round(100 * max(seen, 1 - seen))
    else:
        truth = s.true_class if s is not None else ""
        first = truth if truth in class_order else rng.choice(class_order)
        second = rng.choice([c for c in class_order if c != first])
        p1 = rng.randint(60, 100)
    p2 = min(p1, 100 - p1)
    others = [c for c in class_order if c not in (first, second)]
    answer: dict[str, Any] = {"top_class": first, "p1": p1, "second_class": None, "p2": None}
    if p2 > 0:
        answer["second_class"], answer["p2"] = second, p2
    answer["impossible"] = rng.sample(others, k=rng.randint(0, len(others)))
    return answer


def _walk(start: int, target: int) -> list[dict[str, Any]]:
    """Interface C's visits from `start` to `target`, one step at a time. A walk that ends where
    it began still looks one step away first: the start step alone is no answer."""
    step, t, visits = start, 0.0, [{"step": start, "t_ms": 0.0}]
    if start == target:
        step = start + 1 if start < 10 else start - 1
        t += 400.0
        visits.append({"step": step, "t_ms": t})
    while step != target:
        step += 1 if target > step else -1
        t += 400.0
        visits.append({"step": step, "t_ms": t})
    return visits


def plausible_answer(
    rng: random.Random,
    view: dict[str, Any],
    *,
    stimulus: Stimulus | None = None,
    display: dict[str, Any] | None = None,
    iri_targets: list[int] | None = None,
) -> dict[str, Any]:
    """An answer a person might give: a noisy version of what the stimulus really is.

    Without the stimulus and display (no oracle: a remote site on another database) it is a
    random but valid answer. Pure: the caller fetched what it needs.
    """
    s, display, targets = stimulus, display or {}, iri_targets or []
    if "class_order" in view:
        return _categorical(rng, s, view["class_order"])
    if "step_urls" in view:  # C: walk from the start step to where the mix looks 50/50
        target = min(10, max(0, round(rng.gauss(5, 1.2))))
        visits = _walk(view["start_step"], target)
        return {"final_step": target, "visits": visits}
    if "option_urls" in view:  # D
        order = display.get("order") or list(range(len(view["option_urls"])))
        target = min(10, max(0, round(rng.gauss(5, 1.2))))
        return {"chosen_position": order.index(target) if target in order else 0}
    if "query_url" in view:  # E
        placement, query = display.get("placement", ["target", "start"]), display.get("query")
        if query in ("target", "start") and rng.random() < 0.95:
            wanted = query
        else:
            wanted = "target" if rng.random() < 0.3 else "start"
        return {"choice": "left" if placement[0] == wanted else "right"}
    if "row_urls" in view:  # F
        n_columns = len(view.get("column_urls", [])) or 3
        columns, rows = display.get("columns", list(range(n_columns))), display.get("rows", [])
        picks = []
        for i in range(len(view["row_urls"])):
            row = rows[i] if i < len(rows) else {"kind": "iri", "index": i}
            true = (
                row["column"]
                if row["kind"] == "catch"
                else (targets[row["index"]] if row["index"] < len(targets) else 0)
            )
            good = rng.random() < (0.95 if row["kind"] == "catch" else 0.5)
            picks.append(
                columns.index(true) if good and true in columns else rng.randrange(len(columns))
            )
        return {"assignments": picks}
    # B: the mixing slider, λ̂ = 1 − value/100 around the true λ, and a confidence.
    lam = s.lam if s is not None and s.lam is not None else 0.5
    seen = min(1.0, max(0.0, rng.gauss(lam, 0.2)))
    return {
        "mixing": round(100 * (1 - seen)),
        "confidence": rng.randint(30, 100),
        "moved_mixing": True,
        "moved_confidence": True,
    }


@dataclass(frozen=True)
class TrialInfo:
    stimulus: Stimulus | None
    display: dict[str, Any]
    iri_targets: list[int]


class AnswerOracle:
    """What each trial really shows, read from the database by ONE dedicated thread.

    Client threads ask it through a single-worker executor, so however many client threads run,
    the oracle holds exactly one database connection (closed by `close`). The study's stimuli
    and IRI row targets are read once; a participant's trials in one query when it reaches them.
    """

    def __init__(self, study: Study):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim-oracle")
        self._study_id = study.id
        self._stimuli, self._targets = self._pool.submit(self._load_study).result()

    def _load_study(self) -> tuple[dict[int, Stimulus], dict[int, list[int]]]:
        stimuli = {
            s.id: s
            for s in Stimulus.objects.filter(study_id=self._study_id).only(
                "id", "lam", "class1", "class2", "true_class"
            )
        }
        targets: dict[int, list[int]] = {}
        rows = StimulusImage.objects.filter(stimulus__study_id=self._study_id, role="row")
        for stimulus_id, meta in rows.order_by("stimulus_id", "index").values_list(
            "stimulus_id", "meta"
        ):
            targets.setdefault(stimulus_id, []).append(int(meta["target"]))
        return stimuli, targets

    def _load_trials(self, token: str) -> dict[int, TrialInfo]:
        rows = Trial.objects.filter(participant__token=token).values_list(
            "id", "stimulus_id", "display"
        )
        return {
            trial_id: TrialInfo(
                stimulus=self._stimuli.get(stimulus_id),
                display=display or {},
                iri_targets=self._targets.get(stimulus_id, []),
            )
            for trial_id, stimulus_id, display in rows
        }

    def trials(self, token: str) -> dict[int, TrialInfo]:
        return self._pool.submit(self._load_trials, token).result()

    def close(self) -> None:
        self._pool.submit(connections.close_all).result()
        self._pool.shutdown()


# --- one participant -------------------------------------------------------------------------


@dataclass
class Outcome:
    """How one simulated participant ended. status: completed, full or error."""

    index: int
    status: str = "error"
    stage: str = "not started"
    token: str = ""
    acked: int = 0  # new responses the server acknowledged with 201
    answered: int | None = None  # progress the server reported at completion
    total: int | None = None
    reason: str = ""
    http_status: int | None = None
    kind: str = ""  # the request that failed


AckHook = Callable[[int, float], None]


@dataclass
class _Journey:
    slug: str
    run_id: str
    seed: int
    comprehension_answers: list[int] | None
    oracle: AnswerOracle | None
    on_ack: AckHook | None
    max_steps: int = 1000


class JourneyError(Exception):
    pass


def _participant_journey(ctx: _Journey, client: Client, index: int) -> Outcome:
    rng = random.Random(ctx.seed * 100_003 + index)  # noqa: S311 (simulation, not security)
    api = "/api/participant/sessions"
    out = Outcome(index=index)
    kind = "start"
    try:
        _, state = client.request(
            kind,
            "POST",
            f"{api}/",
            {
                "study": ctx.slug,
                "platform": "prolific",
                "external_id": f"sim-{ctx.run_id}-{index}",
                "platform_study_id": "simulated",
                "platform_session_id": uuid.uuid4().hex,
            },
        )
        token = out.token = state["token"]
        trials: dict[int, TrialInfo] | None = None
        misread = False
        for _ in range(ctx.max_steps):
            out.stage = stage = state["stage"]
            if stage == "consent":
                kind, path = "consent", f"{api}/{token}/consent/"
                _, state = client.request(
                    kind, "POST", path, {"adult": True, "understood": True, "agree": True}
                )
            elif stage == "instructions":
                kind = "instructions"
                _, state = client.request(kind, "POST", f"{api}/{token}/instructions/", {})
            elif stage == "comprehension":
                kind = "comprehension"
                answers = ctx.comprehension_answers
                if answers is None:
                    raise JourneyError("comprehension answers unknown (--comprehension-answers)")
                if not misread and rng.random() < 0.1:
                    # Some people misread once and go round the loop again.
                    misread = True
                    options = [len(q["options"]) for q in state["comprehension"]]
                    answers = [(a + 1) % n for a, n in zip(answers, options, strict=True)]
                _, state = client.request(
                    kind, "POST", f"{api}/{token}/comprehension/", {"answers": answers}
                )
            elif stage == "trials":
                if trials is None and ctx.oracle is not None:
                    trials = ctx.oracle.trials(token)
                trial = state["trial"]
                if trial is None:
                    raise JourneyError("stage trials without a current trial")
                info = (trials or {}).get(trial["id"])
                body = {
                    "trial": trial["id"],
                    "client_key": str(uuid.uuid4()),
                    "rt_ms": rng.randint(2000, 15000),
                    "answer": plausible_answer(
                        rng,
                        trial["view"],
                        stimulus=info.stimulus if info else None,
                        display=info.display if info else None,
                        iri_targets=info.iri_targets if info else None,
                    ),
                }
                kind = "submit"
                status, stored = client.request(kind, "POST", f"{api}/{token}/responses/", body)
                if status != 201:
                    raise HttpError(status, "expected 201 for a new response", kind)
                out.acked += 1
                if ctx.on_ack is not None:
                    ctx.on_ack(int(stored["id"]), time.monotonic())
                if rng.random() < 0.05:  # a retried submit must be recognised, not stored twice
                    kind = "resubmit"
                    status, again = client.request(kind, "POST", f"{api}/{token}/responses/", body)
                    if status != 200 or again["id"] != stored["id"]:
                        raise HttpError(status, "expected 200 and the same response", kind)
                kind = "state"
                _, state = client.request(kind, "GET", f"{api}/{token}/")
            elif stage == "debrief":
                kind = "debrief"
                _, state = client.request(
                    kind, "POST", f"{api}/{token}/debrief/", {"answers": {"0": "simulated"}}
                )
            elif stage == "completed":
                out.status = "completed"
                out.answered = state["progress"]["answered"]
                out.total = state["progress"]["total"]
                return out
            elif stage == "full":
                out.status, out.kind = "full", kind
                out.reason = "ended at stage full (no batch slot)"
                return out
            else:
                raise JourneyError(f"ended at stage {stage}")
        raise JourneyError(f"no end after {ctx.max_steps} requests")
    except HttpError as exc:
        if exc.study_full and kind == "start":
            # Refused on arrival, before a session existed: the same outcome as a session that
            # found no slot after the check.
            out.status, out.stage, out.kind = "full", "full", kind
            out.reason = "refused on arrival: the study is full"
            return out
        out.http_status, out.kind = exc.status, exc.kind or kind
        out.reason = str(exc)
    except Exception as exc:  # every failure is counted, with its reason
        out.kind = kind
        out.reason = f"{type(exc).__name__}: {exc}"
    return out


# --- a run -----------------------------------------------------------------------------------


Journey = Callable[[Client, int], Outcome]


@dataclass
class LoadResult:
    outcomes: list[Outcome]
    recorder: Recorder
    wall_s: float


def run_load(
    *,
    journey: Journey,
    participants: int,
    concurrency: int,
    base_url: str,
    keepalive: bool = True,
    timeout: float = 120.0,
) -> LoadResult:
    """Run `participants` journeys on `concurrency` client threads; every future is checked."""
    recorder = Recorder()
    local = threading.local()
    clients: list[Client] = []
    lock = threading.Lock()

    def one(index: int) -> Outcome:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = Client(base_url, recorder, timeout=timeout, keepalive=keepalive)
            with lock:
                clients.append(client)
        return journey(client, index)

    started = time.perf_counter()
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sim-client") as pool:
        futures = [pool.submit(one, i) for i in range(participants)]
        for i, future in enumerate(futures):
            try:
                outcomes.append(future.result())
            except Exception as exc:  # a crashed journey is an error too
                outcomes.append(Outcome(index=i, reason=f"crashed: {type(exc).__name__}: {exc}"))
    wall = time.perf_counter() - started
    for client in clients:
        client.close()
    return LoadResult(outcomes=outcomes, recorder=recorder, wall_s=wall)


def lost_in_database(outcomes: Iterable[Outcome]) -> dict[int, str]:
    """Completed participants whose stored responses are not one per trial, each acknowledged.

    One aggregate query, whatever the number of participants.
    """
    completed = {o.token: o for o in outcomes if o.status == "completed"}
    if not completed:
        return {}

    def count(model: type[Trial] | type[Response]) -> Any:
        rows = model.objects.filter(participant=OuterRef("pk")).order_by()
        counted = rows.values("participant").annotate(n=Count("id")).values("n")
        return Coalesce(Subquery(counted, output_field=IntegerField()), 0)

    rows = Participant.objects.filter(token__in=list(completed)).annotate(
        n_trials=count(Trial), n_stored=count(Response)
    )
    found = {
        str(token): (stage, n_trials, n_stored)
        for token, stage, n_trials, n_stored in rows.values_list(
            "token", "stage", "n_trials", "n_stored"
        )
    }
    lost = {}
    for token, o in completed.items():
        stage, n_trials, n_stored = found.get(token, ("missing", 0, 0))
        if stage != Participant.Stage.COMPLETED or n_trials == 0 or n_trials != n_stored:
            lost[o.index] = (
                f"participant {o.index}: stage {stage}, {n_stored} of {n_trials} answers stored"
            )
        elif n_stored != o.acked:
            lost[o.index] = f"participant {o.index}: {n_stored} stored, {o.acked} acknowledged"
    return lost


def lost_over_http(outcomes: Iterable[Outcome]) -> dict[int, str]:
    """Without the database: the server's own progress at completion must match what was sent."""
    return {
        o.index: f"participant {o.index}: server reports {o.answered} of {o.total} answered, "
        f"{o.acked} acknowledged"
        for o in outcomes
        if o.status == "completed" and not (o.total and o.answered == o.total == o.acked)
    }


def error_message(o: Outcome) -> str:
    status = f" HTTP {o.http_status}" if o.http_status is not None else ""
    return f"participant {o.index} at stage {o.stage} ({o.kind or '-'}{status}): {o.reason}"


def summarise(
    load: LoadResult, *, lost: list[str], lost_check: str, allow_full: bool
) -> dict[str, Any]:
    outcomes = load.outcomes
    completed = [o for o in outcomes if o.status == "completed"]
    full = [o for o in outcomes if o.status == "full"]
    failed = [o for o in outcomes if o.status == "error" or (o.status == "full" and not allow_full)]
    latency = load.recorder.summary()
    submits = latency.get("submit", {"p50": 0.0, "p95": 0.0, "p99": 0.0})
    responses = sum(o.acked for o in outcomes)
    requests = load.recorder.requests
    wall = load.wall_s
    return {
        "participants": len(outcomes),
        "completed": len(completed),
        "errors": len(failed),
        "lost": len(lost),
        "full": len(full),
        "full_allowed": allow_full,
        "responses": responses,
        "requests": requests,
        "requests_per_s": round(requests / wall, 2) if wall else 0.0,
        "trials_per_s": round(responses / wall, 2) if wall else 0.0,
        # Of response submissions, as before; every request kind is in latency_ms.
        "p50_ms": submits["p50"],
        "p95_ms": submits["p95"],
        "p99_ms": submits["p99"],
        "latency_ms": latency,
        "reconnects": load.recorder.reconnects,
        "wall_s": round(wall, 2),
        "lost_check": lost_check,
        "all_completed_stored": not lost,
        "error_reasons": dict(
            Counter(
                f"{o.stage}/{o.kind or '-'}"
                + (f"/HTTP {o.http_status}" if o.http_status is not None else "")
                for o in failed
            )
        ),
        "error_messages": [error_message(o) for o in failed],
        "lost_messages": lost,
    }


def simulate(
    *,
    study: Study | str,
    participants: int,
    concurrency: int,
    base_url: str,
    seed: int = 0,
    oracle: bool = True,
    allow_full: bool = False,
    comprehension_answers: list[int] | None = None,
    keepalive: bool = True,
    on_ack: AckHook | None = None,
) -> dict[str, Any]:
    """Pilot `study` with simulated participants over HTTP and count what went wrong.

    `study` as a slug (str) uses no database at all: random answers, `comprehension_answers`
    given by the caller, lost checked against the server's reported progress. As a Study, the
    comprehension answers come from it, answers are plausible unless `oracle` is False, and lost
    is checked in the database (which must be the one behind `base_url`).
    """
    run_id = uuid.uuid4().hex[:8]
    if isinstance(study, Study):
        slug = study.slug
        if comprehension_answers is None:
            comprehension_answers = [q["answer"] for q in study.comprehension]
    else:
        slug = study
    answer_oracle = AnswerOracle(study) if isinstance(study, Study) and oracle else None
    ctx = _Journey(
        slug=slug,
        run_id=run_id,
        seed=seed,
        comprehension_answers=comprehension_answers,
        oracle=answer_oracle,
        on_ack=on_ack,
    )
    try:
        load = run_load(
            journey=lambda client, index: _participant_journey(ctx, client, index),
            participants=participants,
            concurrency=concurrency,
            base_url=base_url.rstrip("/"),
            keepalive=keepalive,
        )
    finally:
        if answer_oracle is not None:
            answer_oracle.close()
    # Both checks where the database is at hand; a participant lost in either counts once.
    lost = lost_over_http(load.outcomes)
    check = "http"
    if isinstance(study, Study):
        lost = {**lost, **lost_in_database(load.outcomes)}
        check = "database"
    result = summarise(
        load, lost=[lost[i] for i in sorted(lost)], lost_check=check, allow_full=allow_full
    )
    return {**result, "concurrency": concurrency, "run_id": run_id}
