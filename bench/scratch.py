"""What every benchmark starts from: a scratch PostgreSQL database, `manage.py` in a child
process, and the SQL that fills a categorical study's participants and trials."""

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")


def fresh_postgres(name: str) -> str:
    """Drop and re-create database `name` (nothing else is touched); returns its URL."""
    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def manage(env: dict[str, str], *args: str) -> tuple[str, float]:
    """Run `manage.py args` in a child process: (stdout, wall seconds); exit on failure."""
    started = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if res.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{res.stderr}")
    return res.stdout, seconds


# A str.format template: {participants} completed participants of study {study}, each with
# {trials} trials; participant p's trial `pos` shows stimulus (p * 37 + pos) mod {stimuli}, every
# tenth trial is a repeat, and {display} is the trials' display (a jsonb SQL expression).
PARTICIPANTS_AND_TRIALS = """
INSERT INTO elicitation_participant
    (created_at, updated_at, token, platform, external_id, platform_study_id,
     platform_session_id, stage, class_order, comprehension_failures, trials_started_at,
     completed_at, debrief, user_agent, batch_id, study_id)
SELECT now(), now(), gen_random_uuid(), 'prolific', 'PID' || n, 'STUDY', 'SESSION' || n,
       'completed', '[0,1,2,3,4,5,6,7,8,9]'::jsonb, 0, now(), now(), '{{}}'::jsonb, 'bench',
       (SELECT id FROM elicitation_batch WHERE study_id = {study}), {study}
FROM generate_series(1, {participants}) AS n;

WITH s AS (
    SELECT id, (row_number() OVER (ORDER BY id)) - 1 AS i
    FROM elicitation_stimulus WHERE study_id = {study}
)
INSERT INTO elicitation_trial (created_at, updated_at, position, kind, display, participant_id,
                               stimulus_id)
SELECT now(), now(), pos, CASE WHEN pos % 10 = 9 THEN 'repeat' ELSE 'main' END,
       {display}, p.id, s.id
FROM elicitation_participant p
CROSS JOIN generate_series(0, {trials} - 1) AS pos
JOIN s ON s.i = (p.id * 37 + pos) % {stimuli}
WHERE p.study_id = {study};
"""
