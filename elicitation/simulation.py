"""Simulated participants who go through the real HTTP journey (pilots, load tests, benchmarks).

Each simulated worker uses only the participant JSON API, like a browser would. To answer
plausibly it looks the trial's stimulus up in the database (a noisy version of the mixup label),
falling back to a random answer when the server is not backed by this database.
"""

import json
import random
import statistics
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, connections

from elicitation import selectors
from elicitation.models import Participant, Response, Stimulus, Study, Trial


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def local_server() -> Iterator[str]:
    """Serve this project on a free loopback port in background threads; yields the base URL."""
    server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
    server.set_app(get_wsgi_application())
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        connections.close_all()


class HttpError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status


def _request(
    url: str, payload: dict[str, Any] | None = None, timeout: float = 60
) -> tuple[int, Any]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(  # noqa: S310 (URL built from a base the operator gave)
        url,
        data=data,
        method="GET" if data is None else "POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:  # noqa: S310
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise HttpError(exc.code, exc.read().decode(errors="replace")) from exc


@dataclass
class RunStats:
    completed: int = 0
    responses: int = 0
    errors: int = 0
    full: int = 0
    retries: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error_messages: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


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
    step, t, visits = start, 0.0, [{"step": start, "t_ms": 0.0}]
    while step != target:
        step += 1 if target > step else -1
        t += 400.0
        visits.append({"step": step, "t_ms": t})
    return visits


def plausible_answer(rng: random.Random, trial_id: int, view: dict[str, Any]) -> dict[str, Any]:
    """An answer a person might give: a noisy version of what the stimulus really is.

    The simulator reads the trial from the database to know that; without it (a remote site on
    another database) it falls back to a random but valid answer.
    """
    trial = Trial.objects.select_related("stimulus__study").filter(id=trial_id).first()
    close_old_connections()
    s = trial.stimulus if trial is not None else None
    display = trial.display if trial is not None else {}
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
        columns, rows = display.get("columns", [0, 1, 2]), display.get("rows", [])
        targets = selectors.iri_row_targets(stimulus_id=s.id) if s is not None else []
        picks = []
        for i in range(len(view["row_urls"])):
            row = rows[i] if i < len(rows) else {"kind": "iri", "index": i}
            true = (
                row["column"]
                if row["kind"] == "catch"
                else (targets[row["index"]] if row["index"] < len(targets) else 0)
            )
            good = rng.random() < (0.95 if row["kind"] == "catch" else 0.5)
            picks.append(columns.index(true) if good else rng.randrange(len(columns)))
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


def _one_participant(
    base: str, study: Study, index: int, run_id: str, seed: int, stats: RunStats
) -> None:
    rng = random.Random(seed * 100_003 + index)  # noqa: S311 (simulation, not security)
    api = f"{base}/api/participant/sessions"
    try:
        _, state = _request(
            f"{api}/",
            {
                "study": study.slug,
                "platform": "prolific",
                "external_id": f"sim-{run_id}-{index}",
                "platform_study_id": "simulated",
                "platform_session_id": uuid.uuid4().hex,
            },
        )
        token = state["token"]
        _request(f"{api}/{token}/consent/", {"adult": True, "understood": True, "agree": True})
        _, state = _request(f"{api}/{token}/instructions/", {})
        if state["stage"] == "comprehension":
            answers = [q["answer"] for q in study.comprehension]
            if rng.random() < 0.1:  # some people misread once and go round the loop again
                wrong = [
                    (a + 1) % len(q["options"])
                    for a, q in zip(answers, study.comprehension, strict=True)
                ]
                _request(f"{api}/{token}/comprehension/", {"answers": wrong})
                _request(f"{api}/{token}/instructions/", {})
            _, state = _request(f"{api}/{token}/comprehension/", {"answers": answers})
        if state["stage"] == "full":
            with stats.lock:
                stats.full += 1
            return
        while state["stage"] == "trials":
            trial = state["trial"]
            body = {
                "trial": trial["id"],
                "client_key": str(uuid.uuid4()),
                "rt_ms": rng.randint(2000, 15000),
                "answer": plausible_answer(rng, trial["id"], trial["view"]),
            }
            started = time.perf_counter()
            status, _ = _request(f"{api}/{token}/responses/", body)
            elapsed = (time.perf_counter() - started) * 1000
            if status != 201:
                raise HttpError(status, "expected 201 for a new response")
            if rng.random() < 0.05:  # a retried submit must be recognised, not stored twice
                status, _ = _request(f"{api}/{token}/responses/", body)
                if status != 200:
                    raise HttpError(status, "expected 200 for a repeated submit")
                with stats.lock:
                    stats.retries += 1
            with stats.lock:
                stats.responses += 1
                stats.latencies_ms.append(elapsed)
            _, state = _request(f"{api}/{token}/")
        _, state = _request(f"{api}/{token}/debrief/", {"answers": {"0": "simulated"}})
        if state["stage"] != "completed":
            raise HttpError(200, f"ended at stage {state['stage']}")
        with stats.lock:
            stats.completed += 1
    except (HttpError, OSError, KeyError, ValueError) as exc:
        with stats.lock:
            stats.errors += 1
            stats.error_messages.append(f"participant {index}: {exc}")
    finally:
        close_old_connections()


def _percentile(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def verify_stored(*, study: Study, run_id: str) -> bool:
    """Every completed simulated participant has exactly one response per trial."""
    completed = Participant.objects.filter(
        study=study, external_id__startswith=f"sim-{run_id}-", stage=Participant.Stage.COMPLETED
    )
    for p in completed:
        trials = Trial.objects.filter(participant=p).count()
        stored = Response.objects.filter(participant=p).count()
        if trials == 0 or trials != stored:
            return False
    return True


def simulate(
    *, study: Study, participants: int, concurrency: int, base_url: str, seed: int = 0
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    stats = RunStats()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for i in range(participants):
            pool.submit(_one_participant, base_url.rstrip("/"), study, i, run_id, seed, stats)
    wall = time.perf_counter() - started
    return {
        "completed": stats.completed,
        "responses": stats.responses,
        "errors": stats.errors,
        "trials_per_s": round(stats.responses / wall, 2) if wall else 0.0,
        "p50_ms": round(_percentile(stats.latencies_ms, 50), 1),
        "p95_ms": round(_percentile(stats.latencies_ms, 95), 1),
        "p99_ms": round(_percentile(stats.latencies_ms, 99), 1),
        "full": stats.full,
        "retries": stats.retries,
        "wall_s": round(wall, 2),
        "all_completed_stored": verify_stored(study=study, run_id=run_id),
        "run_id": run_id,
        "error_messages": stats.error_messages[:10],
    }
