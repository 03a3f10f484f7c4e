"""Export-speed benchmark: H-Mix's exports against PostgreSQL's own COPY of the same rows.

Run with `.venv/bin/python bench/export_speed.py` (about ten minutes). On a scratch PostgreSQL
database (`hmix_bench_speed`, dropped and re-created) it makes categorical studies of 100,000
and 1,000,000 responses, written by SQL exactly as bench/export_memory.py does (a fixture, not
the code under test). Then, for each study, in the same run:
- the baseline: `COPY (SELECT <the same columns, plainly>) TO STDOUT WITH CSV` read by psycopg2
  into a sink that drops the bytes (responses; for the annotation export its input columns);
- H-Mix's export of responses as CSV and as JSON Lines, and of the per-annotation soft labels as
  .npy (plus its index CSV for the command), through
  (a) `manage.py export` into a file,
  (b) the REST endpoint, served by gunicorn (one sync worker, started fresh for each request)
      and read over HTTP with the researcher's token into a sink,
  (c) an export job (`export_services.export_job_run`: temporary file, then the job's result).
Every export runs in a fresh process; "peak MB" is that process's maximum resident set size
(os.wait4 rusage for (a) and (c), the gunicorn worker's VmHWM for (b)). Rows are counted from
what was written (lines, or the array's rows); the script exits non-zero if any count differs
from the rows expected. Results replace the "Export speed" section of bench/RESULTS.md.
"""

import argparse
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import export_memory  # noqa: E402 (bench scripts run as plain files)
from bench.results import replace_section  # noqa: E402
from bench.scratch import fresh_postgres  # noqa: E402
from elicitation import legacy  # noqa: E402

HEADING = "## Export speed (`bench/export_speed.py`)"
PG_DB = "hmix_bench_speed"
SIZES = (100_000, 1_000_000)

BASELINE_RESPONSES = """
COPY (SELECT r.id, p.token, p.platform, p.external_id, b.number, s.key, r.kind, r.position,
             r.rt_ms, r.top_class, r.p1_pct, r.second_class, r.p2_pct, r.impossible,
             r.display -> 'class_order', r.value, r.raw, r.client_key, r.created_at
      FROM elicitation_response r
      JOIN elicitation_participant p ON p.id = r.participant_id
      LEFT JOIN elicitation_batch b ON b.id = p.batch_id
      JOIN elicitation_stimulus s ON s.id = r.stimulus_id
      WHERE r.study_id = {study} ORDER BY r.id) TO STDOUT WITH CSV HEADER
"""
# What the annotation export reads (its probabilities are computed in Python from these).
BASELINE_ANNOTATIONS = """
COPY (SELECT s.key, p.token, r.kind, r.id, r.top_class, r.p1_pct, r.second_class, r.p2_pct,
             r.impossible
      FROM elicitation_response r
      JOIN elicitation_participant p ON p.id = r.participant_id
      JOIN elicitation_stimulus s ON s.id = r.stimulus_id
      WHERE r.study_id = {study} AND r.top_class IS NOT NULL AND r.kind IN ('main', 'repeat')
      ORDER BY r.stimulus_id, r.id) TO STDOUT WITH CSV HEADER
"""

JOB = """
import json, os
from analysis import export_services
from elicitation.models import Study
from jobs.models import Job
from jobs.services import job_create

study = Study.objects.get(slug=os.environ["BENCH_SLUG"])
job = job_create(owner_id=study.owner_id, kind=Job.Kind.EXPORT, study_id=study.id,
                 params={"what": os.environ["BENCH_WHAT"], "format": os.environ["BENCH_FORMAT"],
                         "method": {"name": study.label_method, **study.label_params}})
job = export_services.export_job_run(job=job)
print(json.dumps({"status": job.status, "error": job.error, "path": job.result.path}))
"""

API_KEY_SCRIPT = """
from rest_framework.authtoken.models import Token
from django.contrib.auth import get_user_model
print(Token.objects.get_or_create(user=get_user_model().objects.get(username="bench"))[0].key)
"""

EXPORTS = (("responses", "csv"), ("responses", "jsonl"), ("annotation-soft-labels", "npy"))


@dataclass(frozen=True)
class Run:
    size: int
    export: str  # e.g. "responses csv"
    via: str  # baseline COPY / command / REST / job
    seconds: float
    rows: int
    expected: int
    peak_mb: float | None
    out_mb: float


class _Sink:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)


def _baseline(url: str, sql: str) -> tuple[float, int, int]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            sink = _Sink()
            started = time.perf_counter()
            cur.copy_expert(sql, sink)
            return time.perf_counter() - started, cur.rowcount, sink.size
    finally:
        conn.close()


def _count(path: Path, fmt: str) -> int:
    if fmt == "npy":
        return int(np.load(path, mmap_mode="r").shape[0])
    lines = export_memory._count_lines(path)
    return lines - 1 if fmt == "csv" else lines


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker_pid(master: int) -> int | None:
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _rest(env: dict[str, str], token: str, slug: str, what: str, fmt: str) -> Run:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "hmix_site.wsgi",
            *("--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "900"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("gunicorn did not start")
        url = f"http://127.0.0.1:{port}/api/studies/{slug}/export/?what={what}&format={fmt}"
        req = urllib.request.Request(url, headers={"Authorization": f"Token {token}"})
        newlines = 0
        size = 0
        started = time.perf_counter()
        with urllib.request.urlopen(req, timeout=900) as res:  # noqa: S310 (http://127.0.0.1)
            if res.status != 200:
                raise SystemExit(f"{url}: HTTP {res.status}")
            head = b""
            while block := res.read(1 << 20):
                if fmt == "npy" and len(head) < 4096:
                    head += block[:4096]
                newlines += block.count(b"\n")
                size += len(block)
        seconds = time.perf_counter() - started
        worker = _worker_pid(server.pid)
        peak = _hwm_mb(worker) if worker else None
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    if fmt == "npy":
        rows = int(np.lib.format.read_array_header_1_0(_npy_fh(head))[0][0])
        # The header's row count is checked against the bytes that followed it.
        data = size - (10 + int.from_bytes(head[8:10], "little"))
        if data != rows * len(legacy.CIFAR10_CLASSES) * 8:
            rows = -1
    else:
        rows = newlines - 1 if fmt == "csv" else newlines
    return Run(0, "", "REST (gunicorn)", seconds, rows, 0, peak, size / 2**20)


def _npy_fh(head: bytes) -> io.BytesIO:
    fh = io.BytesIO(head)
    np.lib.format.read_magic(fh)
    return fh


def measure(
    env: dict[str, str], url: str, token: str, size: int, study: int, tmp: Path
) -> list[Run]:
    slug = f"bench-{size}"
    runs = []
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM elicitation_response WHERE study_id = %s", [study])
        n_responses = cur.fetchone()[0]
        cur.execute(
            "SELECT count(*) FROM elicitation_response WHERE study_id = %s "
            "AND top_class IS NOT NULL AND kind IN ('main', 'repeat')",
            [study],
        )
        n_annotations = cur.fetchone()[0]
    conn.close()
    for what, fmt in EXPORTS:
        label = f"{what} {fmt}"
        expected = n_responses if what == "responses" else n_annotations
        sql = (BASELINE_RESPONSES if what == "responses" else BASELINE_ANNOTATIONS).format(
            study=study
        )
        seconds, rows, nbytes = _baseline(url, sql)
        runs.append(
            Run(size, label, "baseline COPY", seconds, rows, expected, None, nbytes / 2**20)
        )

        out = tmp / f"{slug}-{what}.{fmt}"
        _, peak, seconds = export_memory._child(
            env, "export", "--study", slug, "--what", what, "--format", fmt, "--out", str(out)
        )
        out_mb = out.stat().st_size / 2**20
        runs.append(Run(size, label, "command", seconds, _count(out, fmt), expected, peak, out_mb))
        out.unlink()
        out.with_suffix(".index.csv").unlink(missing_ok=True)

        rest = _rest(env, token, slug, what, fmt)
        runs.append(
            Run(size, label, rest.via, rest.seconds, rest.rows, expected, rest.peak_mb, rest.out_mb)
        )

        job_env = {**env, "BENCH_SLUG": slug, "BENCH_WHAT": what, "BENCH_FORMAT": fmt}
        stdout, peak, seconds = export_memory._child(job_env, "shell", "-c", JOB)
        result = json.loads(stdout.strip().splitlines()[-1])
        if result["status"] != "done":
            raise SystemExit(f"export job {label} of {slug} failed: {result['error']}")
        path = Path(result["path"])
        runs.append(
            Run(
                size,
                label,
                "job",
                seconds,
                _count(path, fmt),
                expected,
                peak,
                path.stat().st_size / 2**20,
            )
        )
        path.unlink()
        for r in runs[-4:]:
            print(r, flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument(
        "--sizes",
        type=lambda v: tuple(int(x) for x in v.split(",")),
        default=SIZES,
        help="Responses per study, ascending, comma-separated (a quick check: 2000,20000)",
    )
    args = parser.parse_args()
    sizes: tuple[int, ...] = args.sizes
    url = fresh_postgres(PG_DB)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "hmix_site.settings.local",
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": url,
            "HMIX_MEDIA_ROOT": str(tmp / "media"),
            "BENCH_SIZES": json.dumps(list(sizes)),
            "BENCH_STIMULI": str(export_memory.N_STIMULI),
        }
        env.pop("CELERY_BROKER_URL", None)
        started = time.perf_counter()
        export_memory._child(env, "migrate", "--noinput", "-v0")
        out, _, _ = export_memory._child(env, "shell", "-c", export_memory.SETUP)
        study_ids = {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}
        export_memory._fill(url, study_ids, list(legacy.CIFAR10_CLASSES))
        token = export_memory._child(env, "shell", "-c", API_KEY_SCRIPT)[0].strip().splitlines()[-1]
        fixture_s = time.perf_counter() - started
        print(f"fixture: {sum(sizes):,} responses in {fixture_s:.0f} s", flush=True)
        runs: list[Run] = []
        for size in sizes:
            runs += measure(env, url, token, size, study_ids[size], tmp)
    body = _report(runs, fixture_s, sizes)
    replace_section(args.out, HEADING, body)
    print(body)
    wrong = [r for r in runs if r.rows != r.expected]
    if wrong:
        for r in wrong:
            print(f"WRONG ROW COUNT: {r}", file=sys.stderr)
        raise SystemExit(1)


def _report(runs: list[Run], fixture_s: float, sizes: tuple[int, ...]) -> str:
    base = {(r.size, r.export): r for r in runs if r.via == "baseline COPY"}
    peaks = {(r.size, r.export, r.via): r.peak_mb for r in runs}
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} with "  # noqa: S608 (Markdown, not SQL)
        f"{os.cpu_count()} cores (shared with other work while measuring), Python "
        f"{platform.python_version()}, PostgreSQL. Command: `.venv/bin/python "
        "bench/export_speed.py`. Categorical studies on "
        f"{export_memory.N_STIMULI:,} stimuli written by SQL ({fixture_s:.0f} s). The baseline "
        "is PostgreSQL's `COPY (SELECT <the same columns>) TO STDOUT WITH CSV` into a sink, "
        "measured in the same run just before each export (for the annotation .npy: the "
        'columns its probabilities are computed from). "× COPY" is the export\'s rows/s over '
        "the baseline's. Peak MB: the exporting process's maximum RSS (the command's and the "
        "job's process, the gunicorn worker). Rows are counted from what was written.",
        "",
        "| export | responses | via | seconds | rows/s | × COPY | peak MB | rows written "
        "| output MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        b = base[(r.size, r.export)]
        ratio = (r.rows / r.seconds) / (b.rows / b.seconds) if r.seconds and b.rows else 0
        peak_text = "" if r.peak_mb is None else f"{r.peak_mb:.0f}"
        lines.append(
            f"| {r.export} | {r.size:,} | {r.via} | {r.seconds:.1f} | {r.rows / r.seconds:,.0f} "
            f"| ×{ratio:.2f} | {peak_text} | {r.rows:,} | {r.out_mb:.0f} |"
        )
    if len(sizes) >= 2:
        small, large = sizes[-2], sizes[-1]
        flat = []
        for (size, export, via), peak in peaks.items():
            before = peaks.get((small, export, via))
            if size == large and peak is not None and before:
                flat.append(f"{export} via {via}: ×{peak / before:.2f}")
        lines += ["", f"Peak memory, {large:,} / {small:,} responses: " + "; ".join(flat) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
