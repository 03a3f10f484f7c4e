"""The schemathesis run of tests/test_api_fuzz.py with many more examples per operation.

    .venv/bin/python bench/fuzz_api.py --examples 200

Runs the pytest test (in process, every check on, the owner's token, the seeded world) with
HMIX_FUZZ_EXAMPLES set, and prints the figures bench/RESULTS.md keeps: operations, cases (every
request the run sent, counted by the test itself), cases by status class, failures and wall time.
Needs DATABASE_URL (PostgreSQL), as the test suite does.
"""

import argparse
import collections
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="examples per operation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "cases.tsv"
        env = {
            **os.environ,
            "HMIX_FUZZ_EXAMPLES": str(args.examples),
            "HMIX_FUZZ_REPORT": str(report),
        }
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_api_fuzz.py::test_api_conforms_to_its_schema",
        ]
        started = time.monotonic()
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        lines = report.read_text().splitlines() if report.exists() else []
    cases = [line.split("\t") for line in lines]
    operations = {operation for operation, _ in cases}
    classes = collections.Counter(
        "failed" if status == "failed" else f"{status[0]}xx" for _, status in cases
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else "(no output)"
    print(
        f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"command: {' '.join(command[1:])} with HMIX_FUZZ_EXAMPLES={args.examples}")
    print(f"operations: {len(operations)}")
    print(f"cases: {len(cases)}")
    print("by status: " + ", ".join(f"{k} {v}" for k, v in sorted(classes.items())))
    # A 5xx fails the not_a_server_error check, so it is counted among the failed cases.
    print(f"failed cases (a 5xx or any check, shrinking included): {classes.get('failed', 0)}")
    print(f"pytest: {summary}")
    print(f"wall: {wall:.0f} s")
    return run.returncode


if __name__ == "__main__":
    raise SystemExit(main())
