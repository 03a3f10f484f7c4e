"""Pilot-load benchmark: `manage.py simulate_participants` on a fresh demo study.

Run with `make bench` (or `.venv/bin/python bench/simulate.py`). Each configuration gets a fresh
database (PostgreSQL: a scratch database that is dropped and re-created; SQLite: a temporary
file), `migrate` + `seed_demo`, then one simulation run through the real HTTP journey. The
baseline is the same workload at concurrency 1, measured in the same run, because this machine
is shared and absolute numbers drift between runs. Results go to bench/RESULTS.md.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.results import replace_section  # noqa: E402 (bench scripts run as plain files)

HEADING = "## Simulated participants (`bench/simulate.py`)"
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")
PG_DB = "hmix_bench"


def _manage(env: dict[str, str], *args: str) -> str:
    res = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{res.stderr}")
    return res.stdout


def _fresh_postgres() -> str:
    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {PG_DB}")
    conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_DB}"


def run_config(database: str, participants: int, concurrency: int) -> dict[str, object]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hmix_site.settings.local",
        "DJANGO_DEBUG": "false",
    }
    env.pop("CELERY_BROKER_URL", None)  # tasks in-process, as in `make demo`
    with tempfile.TemporaryDirectory() as tmp:
        env["HMIX_MEDIA_ROOT"] = str(Path(tmp) / "media")
        env["DATABASE_URL"] = (
            _fresh_postgres()
            if database == "postgresql"
            else f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        )
        _manage(env, "migrate", "--noinput", "-v0")
        _manage(env, "seed_demo")
        out = _manage(
            env,
            "simulate_participants",
            "--study",
            "demo-soft-labels",
            "--participants",
            str(participants),
            "--concurrency",
            str(concurrency),
        )
    result = json.loads(out.strip().splitlines()[-1])
    return {
        "database": database,
        "participants": participants,
        "concurrency": concurrency,
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    rows = [
        run_config("postgresql", args.participants, 1),
        run_config("postgresql", args.participants, args.concurrency),
        run_config("sqlite", args.participants, 1),
        run_config("sqlite", args.participants, args.concurrency),
    ]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit}` on "
        f"{platform.machine()} with {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Command: `make bench` (= `.venv/bin/python bench/simulate.py --participants "
        f"{args.participants} --concurrency {args.concurrency}`). Each row: fresh database, "
        "`seed_demo`, then `manage.py simulate_participants --study demo-soft-labels` through "
        "the real HTTP journey (the command's own threaded server, tasks in-process). "
        "Latencies are of response submissions (POST .../responses/), which include the soft-label "
        "recompute. Concurrency 1 is the baseline measured in the same run.",
        "",
        "| database | participants | concurrency | completed | responses | errors | stored ok "
        "| trials/s | vs baseline | p50 ms | p95 ms | p99 ms | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    baselines = {r["database"]: r for r in rows if r["concurrency"] == 1}
    for r in rows:
        base = baselines[str(r["database"])]
        speedup = float(r["trials_per_s"]) / float(base["trials_per_s"])  # type: ignore[arg-type]
        lines.append(
            f"| {r['database']} | {r['participants']} | {r['concurrency']} | {r['completed']} | "
            f"{r['responses']} | {r['errors']} | {r['all_completed_stored']} | "
            f"{r['trials_per_s']} | ×{speedup:.2f} | {r['p50_ms']} | {r['p95_ms']} | "
            f"{r['p99_ms']} | {r['wall_s']} |"
        )
    body = "\n".join(lines) + "\n"
    replace_section(args.out, HEADING, body)
    print(body)


if __name__ == "__main__":
    main()
