"""Export-memory benchmark: peak RSS of exports of a study with 1,000,000 stored responses.

Run with `.venv/bin/python bench/export_memory.py` (a few minutes). On a scratch PostgreSQL
database (`hmix_bench_export`, dropped and re-created) it makes three categorical studies of
1,000, 100,000 and 1,000,000 responses on the same 10,000 stimuli (100 trials per participant,
every tenth a repeat). The rows are written by INSERT ... SELECT generate_series: a fixture, not
the code under test. Then, for each study, in a fresh child process each:
- `manage.py export --what responses --format csv`;
- `manage.py export --what annotation-soft-labels --format npy` (the array and its index CSV);
- the dataset-bundle job (`analysis.export_services.bundle_job_run`: a zip of every export and
  README.md, written to a temporary file, then stored as the job's result).
Peak memory is the child's own maximum resident set size (`os.wait4` rusage, ru_maxrss), so
one run cannot hide another. The 100,000-response study is the baseline measured in the same
run; the acceptance criterion is a 1M / 100k ratio of about 1. Results replace the "Export
memory" section of bench/RESULTS.md.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.results import replace_section  # noqa: E402 (bench scripts run as plain files)
from bench.scratch import PARTICIPANTS_AND_TRIALS, fresh_postgres  # noqa: E402
from elicitation import legacy  # noqa: E402

HEADING = "## Export memory (`bench/export_memory.py`)"
PG_DB = "hmix_bench_export"
N_STIMULI = 10_000  # as many images as CIFAR-10H's test set
TRIALS_PER_PARTICIPANT = 100
SIZES = (1_000, 100_000, 1_000_000)  # the last is measured against the one before it

SETUP = """
import json, os
from django.contrib.auth import get_user_model
from elicitation import services
from elicitation.models import Batch, Stimulus, Study
from elicitation.legacy import CIFAR10_CLASSES as CLASSES

owner, _ = get_user_model().objects.get_or_create(username="bench")
ids = {}
for size in json.loads(os.environ["BENCH_SIZES"]):
    study = services.study_create(
        slug=f"bench-{size}", title=f"Export benchmark, {size:,} responses",
        trial_type=Study.TrialType.CATEGORICAL, owner_id=owner.id, classes=CLASSES,
        participants_per_batch=size, status=Study.Status.CLOSED,
    )
    Stimulus.objects.bulk_create(
        Stimulus(study=study, key=f"cifar10_test_{i:05d}.png", kind=Stimulus.Kind.PLAIN,
                 true_class=CLASSES[i % len(CLASSES)])
        for i in range(int(os.environ["BENCH_STIMULI"]))
    )
    Batch.objects.create(study=study, number=1, target=size)
    ids[size] = study.id
print(json.dumps(ids))
"""

# One participant per TRIALS_PER_PARTICIPANT responses; trial `pos` of participant p shows
# stimulus (p * 37 + pos) mod N_STIMULI; every tenth trial is a repeat.
FILL = (
    PARTICIPANTS_AND_TRIALS
    + """
INSERT INTO elicitation_response
    (created_at, updated_at, kind, position, client_key, rt_ms, raw, display, top_class,
     p1_pct, second_class, p2_pct, impossible, value, participant_id, stimulus_id, study_id,
     trial_id, source)
SELECT now(), now(), t.kind, t.position, gen_random_uuid(), 1500 + (t.id % 9000),
       jsonb_build_object('top_class', t.stimulus_id % 10, 'p1', 60,
                          'second_class', (t.stimulus_id + 1) % 10, 'p2', 20,
                          'impossible', jsonb_build_array((t.stimulus_id + 5) % 10)),
       t.display, t.stimulus_id % 10, 60, (t.stimulus_id + 1) % 10, 20,
       jsonb_build_array((t.stimulus_id + 5) % 10), '{{}}'::jsonb, t.participant_id, t.stimulus_id,
       {study}, t.id, 'live'
FROM elicitation_trial t JOIN elicitation_participant p ON p.id = t.participant_id
WHERE p.study_id = {study};
"""
)

BUNDLE = """
import json, os
from analysis import export_services
from elicitation.models import Study
from jobs.models import Job
from jobs.services import job_create

study = Study.objects.get(slug=os.environ["BENCH_SLUG"])
job = job_create(owner_id=study.owner_id, kind=Job.Kind.BUNDLE, study_id=study.id,
                 params={"method": {"name": study.label_method, **study.label_params}})
job = export_services.bundle_job_run(job=job)
print(json.dumps({"status": job.status, "error": job.error, "path": job.result.path}))
"""


@dataclass(frozen=True)
class Run:
    size: int
    export: str
    peak_mb: float
    seconds: float
    rows: int
    out_mb: float


def _child(env: dict[str, str], *args: str) -> tuple[str, float, float]:
    """Run `manage.py args` in a child process: (stdout, peak RSS in MB, wall seconds)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=out, stderr=err
        )
        # wait4 gives this child's own rusage; RUSAGE_CHILDREN would be the largest child so far.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{err.read().decode()}")
        # Linux reports ru_maxrss in KiB.
        return out.read().decode(), usage.ru_maxrss / 1024, seconds


def _count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
    return n


def _zip_lines(path: Path, member: str) -> int:
    n = 0
    with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
    return n


def _fill(url: str, study_ids: dict[int, int], classes: list[str]) -> None:
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        for size, study in study_ids.items():
            cur.execute(
                FILL.format(
                    study=study,
                    participants=size // TRIALS_PER_PARTICIPANT,
                    trials=TRIALS_PER_PARTICIPANT,
                    stimuli=N_STIMULI,
                    display=f"'{json.dumps({'class_order': classes})}'::jsonb",
                )
            )
        cur.execute("ANALYZE")
    conn.close()


def measure(env: dict[str, str], size: int, tmp: Path) -> list[Run]:
    slug = f"bench-{size}"
    runs = []
    csv_out = tmp / f"{slug}-responses.csv"
    _, peak, seconds = _child(
        env,
        *("export", "--study", slug, "--what", "responses", "--format", "csv"),
        *("--out", str(csv_out)),
    )
    mb = csv_out.stat().st_size / 2**20
    runs.append(Run(size, "responses csv", peak, seconds, _count_lines(csv_out) - 1, mb))
    csv_out.unlink()

    npy_out = tmp / f"{slug}-annotations.npy"
    _, peak, seconds = _child(
        env,
        "export",
        *("--study", slug, "--what", "annotation-soft-labels", "--format", "npy"),
        *("--out", str(npy_out)),
    )
    rows = int(np.load(npy_out, mmap_mode="r").shape[0])
    index_rows = _count_lines(npy_out.with_suffix(".index.csv")) - 1
    if index_rows != rows:
        raise SystemExit(f"{npy_out}: {rows} array rows but {index_rows} index rows")
    mb = (npy_out.stat().st_size + npy_out.with_suffix(".index.csv").stat().st_size) / 2**20
    runs.append(Run(size, "annotation soft labels npy + index", peak, seconds, rows, mb))
    npy_out.unlink()
    npy_out.with_suffix(".index.csv").unlink()

    out, peak, seconds = _child({**env, "BENCH_SLUG": slug}, "shell", "-c", BUNDLE)
    result = json.loads(out.strip().splitlines()[-1])
    if result["status"] != "done":
        raise SystemExit(f"bundle job of {slug} failed: {result['error']}")
    zip_path = Path(result["path"])
    rows = _zip_lines(zip_path, f"{slug}-dataset/responses.csv") - 1
    runs.append(
        Run(size, "dataset bundle job (zip)", peak, seconds, rows, zip_path.stat().st_size / 2**20)
    )
    zip_path.unlink()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument(
        "--sizes",
        type=lambda v: tuple(int(x) for x in v.split(",")),
        default=SIZES,
        help="Responses per study, ascending, comma-separated (a quick check: 1000,5000,20000)",
    )
    args = parser.parse_args()
    sizes: tuple[int, ...] = args.sizes
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "hmix_site.settings.local",
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": fresh_postgres(PG_DB),
            "HMIX_MEDIA_ROOT": str(tmp / "media"),
            "BENCH_SIZES": json.dumps(list(sizes)),
            "BENCH_STIMULI": str(N_STIMULI),
        }
        env.pop("CELERY_BROKER_URL", None)
        started = time.perf_counter()
        _child(env, "migrate", "--noinput", "-v0")
        out, _, _ = _child(env, "shell", "-c", SETUP)
        study_ids = {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}
        _fill(env["DATABASE_URL"], study_ids, list(legacy.CIFAR10_CLASSES))
        fixture_s = time.perf_counter() - started
        print(f"fixture: {sum(sizes):,} responses in {fixture_s:.0f} s", flush=True)
        runs: list[Run] = []
        for size in sizes:
            runs += measure(env, size, tmp)
            for r in runs[-3:]:
                print(r, flush=True)
    body = _report(runs, fixture_s, baseline=sizes[-2], largest=sizes[-1])
    replace_section(args.out, HEADING, body)
    print(body)


def _report(runs: list[Run], fixture_s: float, *, baseline: int, largest: int) -> str:
    by = {(r.size, r.export): r for r in runs}
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} with "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL. Command: "
        "`.venv/bin/python bench/export_memory.py`. Three categorical studies on the same "
        f"{N_STIMULI:,} stimuli, {TRIALS_PER_PARTICIPANT} responses per participant (every "
        f"tenth a repeat), written by SQL over generate_series ({fixture_s:.0f} s for "
        'all three). Each export runs in a fresh child process; "peak MB" is that process\'s '
        "maximum resident set size (os.wait4 rusage), Python and Django included. The "
        f'{baseline:,}-response study is the baseline measured in the same run; "× baseline" '
        'is peak MB over the baseline\'s peak MB for the same export. "rows" are read back '
        "from the files written (CSV lines, array rows, the bundle's responses.csv lines).",
        "",
        "| export | responses | peak MB | × baseline | rows written | output MB | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        base = by[(baseline, r.export)]
        lines.append(
            f"| {r.export} | {r.size:,} | {r.peak_mb:.1f} | ×{r.peak_mb / base.peak_mb:.2f} | "
            f"{r.rows:,} | {r.out_mb:.1f} | {r.seconds:.1f} |"
        )
    ratios = ", ".join(
        f"{e}: ×{by[(largest, e)].peak_mb / by[(baseline, e)].peak_mb:.2f}"
        for e in dict.fromkeys(r.export for r in runs)
    )
    lines += ["", f"Peak memory, {largest:,} / {baseline:,} responses: {ratios}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
