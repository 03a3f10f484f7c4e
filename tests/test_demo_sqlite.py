"""`make demo` runs on an embedded SQLite file, the rest of the suite on PostgreSQL.

The participant's hot path is written partly in SQL (hmix_site/common/rawsql.py), so this test
runs the demo as a newcomer gets it: a fresh SQLite database, `migrate`, `seed_demo`, then
simulated participants through the real HTTP journey of every demo interface, with tasks run
in-process. It caught the hot path's row-locking clause and UUID parameters being PostgreSQL's
only.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hmix_site.env import BASE_DIR


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("demo")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hmix_site.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "HMIX_MEDIA_ROOT": str(tmp / "media"),
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    # In-process tasks, as in `make demo`.
    for name in ("CELERY_BROKER_URL", "HMIX_CELERY_EAGER"):
        env.pop(name, None)
    # The committed IRI set: generating at seed time is tested in tests/iri/test_demo_seed.py.
    for args in (("migrate", "--noinput", "-v0"), ("seed_demo", "--iris", "committed")):
        done = _manage(env, *args)
        assert done.returncode == 0, done.stderr
    return env


@pytest.mark.parametrize(
    "slug",
    [
        "demo-soft-labels",
        "demo-mixing-factor",
        "demo-construct-midpoint",
        "demo-select-midpoint",
        "demo-iri-2afc",
    ],
)
def test_every_demo_interface_completes_on_sqlite(demo_env: dict[str, str], slug: str) -> None:
    # when: three simulated participants, two at a time, through the HTTP journey
    done = _manage(
        demo_env, "simulate_participants", "--study", slug, "--participants", "3",
        "--concurrency", "2",
    )  # fmt: skip
    # then: all complete, nothing lost (the command exits non-zero otherwise)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["completed"], result["errors"], result["lost"]) == (3, 0, 0)
    assert result["responses"] >= 3 * 8


def test_demo_labels_count_every_answer_and_nothing_stays_stale(
    demo_env: dict[str, str],
) -> None:
    # given: the categorical demo answered (the test above, or here if run alone)
    _manage(demo_env, "simulate_participants", "--study", "demo-soft-labels", "--participants", "2")
    # when
    script = (
        "from analysis.models import PendingRecompute, SoftLabel\n"
        "from elicitation.models import Response, Study\n"
        "s = Study.objects.get(slug='demo-soft-labels')\n"
        "labels = SoftLabel.objects.filter(study=s, method=s.label_method)\n"
        "print(sum(labels.values_list('n_annotations', flat=True)),"
        " Response.objects.filter(study=s).count(), PendingRecompute.objects.count())\n"
    )
    done = _manage(demo_env, "shell", "-c", script)
    # then
    assert done.returncode == 0, done.stderr
    annotations, responses, pending = map(int, done.stdout.split()[-3:])
    assert responses > 0
    assert (annotations, pending) == (responses, 0)
    assert Path(demo_env["HMIX_MEDIA_ROOT"]).is_dir()
