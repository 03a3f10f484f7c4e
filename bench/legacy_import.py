"""Import-speed benchmark: `manage.py import_legacy` on a full-size synthetic CIFAR-10S file.

Run with `.venv/bin/python bench/legacy_import.py`. It writes a made-up file in the published
CIFAR-10S raw format, as large as the real one (about 8,500 rows: 248 participants, about 6,700
responses on 1,000 images, the rest jsPsych rows of other trial types), then on a fresh
PostgreSQL database times, in the same run:
- the baseline: parsing the file only (`elicitation.legacy.parse`, in-process, best of 3);
- `manage.py help import_legacy`: the cost of starting a management command at all;
- `manage.py import_legacy` into a new study (wall clock, and the command's own timing);
- the same with `--replace` over the study just imported.
The machine is shared and absolute numbers drift, hence the baseline. Each run adds a row to
the "Legacy import" section of bench/RESULTS.md.
"""

import argparse
import csv
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import section_span  # noqa: E402 (after the path set-up, as a script)
from bench.scratch import fresh_postgres, manage  # noqa: E402
from elicitation import legacy  # noqa: E402

PG_DB = "hmix_bench_legacy"
SLUG = "bench-cifar10s"
HEADING = "## Legacy import (`bench/legacy_import.py`)"
CLASSES = legacy.CIFAR10_CLASSES
HEADER = list(legacy.CIFAR10S_HEADER)
PREAMBLE = ("pavlovia", "external-html", "instructions", "survey-multi-choice", "instructions")
TYPED = (" 80", "8p", "0", "2550")  # the published quirks, now and then


def _answer(rng: random.Random, true_class: str) -> str:
    top = true_class if rng.random() < 0.8 else rng.choice(CLASSES)
    p1 = rng.choice(TYPED) if rng.random() < 0.03 else str(rng.choice(range(40, 101, 5)))
    form = {"classSelect": f"mostProb{top}", "prob": p1}
    if rng.random() < 0.5:
        second = rng.choice(CLASSES)
        form |= {"classSelect2": f"secondProb{second}", "prob2": str(rng.choice(range(0, 45, 5)))}
    else:
        form |= {"classSelect2": "secondProbNo", "prob2": ""}
    for name in rng.sample(CLASSES, rng.randint(0, 9)):
        form[f"improbClassSelect{name}"] = "1"
    return json.dumps(form, separators=(",", ":"))


def write_file(path: Path, *, participants: int, images: int, per_batch: int, seed: int) -> None:
    rng = random.Random(seed)
    pictures = [(i * 7 + 3, CLASSES[i % len(CLASSES)]) for i in range(images)]
    batches = [pictures[i : i + per_batch] for i in range(0, images, per_batch)]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(HEADER)
        row_number = 0

        def write(**cells: object) -> None:
            nonlocal row_number
            writer.writerow([row_number if c == "" else cells.get(c, "") for c in HEADER])
            row_number += 1

        for p in range(participants):
            subject = f"benchsubj{p:05d}"
            condition = p % len(batches)
            elapsed = 0
            index = 0
            for trial_type in (*PREAMBLE, "preload"):
                elapsed += rng.randint(1000, 60000)
                write(
                    trial_type=trial_type,
                    trial_index=index,
                    time_elapsed=elapsed,
                    subject=subject,
                    condition=condition,
                    rt=f"{rng.uniform(500, 9e4):.1f}",
                )
                index += 1
            shown = list(batches[condition])
            rng.shuffle(shown)
            plan = [(s, "spec_conf") for s in shown]
            plan += [(s, "rerun_spec_conf") for s in rng.sample(shown, 2)]
            for (image, label), task in plan:
                elapsed += rng.randint(5000, 90000)
                write(
                    trial_type="survey-html-form",
                    trial_index=index,
                    time_elapsed=elapsed,
                    subject=subject,
                    condition=condition,
                    rt=f"{rng.uniform(2e3, 9e4):.1f}",
                    response=_answer(rng, label),
                    filename=f"cifar10_train_{image}_{label}.png",
                    task=task,
                    label=label,
                    img_id=f"{image}.0",
                )
                index += 1
            write(
                trial_type="survey-text",
                trial_index=index,
                time_elapsed=elapsed + 5000,
                subject=subject,
                condition=condition,
                response='{"Q0":""}',
            )


def _command_time(out: str) -> float:
    match = re.search(r"^Time: ([0-9.]+) s", out, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no timing in the command's output:\n{out}")
    return float(match.group(1))


def _parse_seconds(path: Path, repeat: int) -> tuple[float, legacy.LegacyFile]:
    best = float("inf")
    parsed = None
    for _ in range(repeat):
        started = time.perf_counter()
        with path.open(newline="", encoding="utf-8") as fh:
            parsed = legacy.parse(legacy.CIFAR10S, fh)
        best = min(best, time.perf_counter() - started)
    assert parsed is not None
    return best, parsed


def _append(out: Path, row: str, description: str) -> None:
    text = out.read_text() if out.exists() else "# Benchmark results\n"
    if HEADING not in text:
        table = (
            "| measured (UTC) | rows | responses | participants | stimuli | parse only s "
            "(baseline) | import s (in command) | × baseline | import wall s | command start s "
            "| --replace s (in command) |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
        )
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{description}\n\n{table}"
    span = section_span(text, HEADING)
    assert span is not None
    start, end = span
    section = text[start:end].rstrip("\n") + "\n" + row + "\n"
    text = text[:start] + section + ("\n" + text[end:] if end < len(text) else "")
    out.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=248)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--per-batch", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hmix_site.settings.local",
        "DJANGO_DEBUG": "false",
        "DJANGO_SUPERUSER_PASSWORD": "bench-only",
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "raw_human_data.csv"
        write_file(
            path,
            participants=args.participants,
            images=args.images,
            per_batch=args.per_batch,
            seed=args.seed,
        )
        parse_s, parsed = _parse_seconds(path, repeat=3)
        env["HMIX_MEDIA_ROOT"] = str(Path(tmp) / "media")
        env["DATABASE_URL"] = fresh_postgres(PG_DB)
        manage(env, "migrate", "--noinput", "-v0")
        manage(
            env,
            "createsuperuser",
            "--noinput",
            "--username",
            "bench",
            "--email",
            "bench@example.com",
        )
        _, start_s = manage(env, "help", "import_legacy")
        command = ["import_legacy", "--format", "cifar10s", "--study", SLUG, str(path)]
        out, wall_s = manage(env, *command)
        import_s = _command_time(out)
        replace_out, _ = manage(env, *command, "--replace")
        replace_s = _command_time(replace_out)
    figures = {
        "rows": parsed.n_rows,
        "responses": len(parsed.responses),
        "participants": len({r.subject for r in parsed.responses}),
        "stimuli": len(parsed.stimuli),
        "parse_s": round(parse_s, 3),
        "import_s": import_s,
        "import_wall_s": round(wall_s, 2),
        "command_start_s": round(start_s, 2),
        "replace_s": replace_s,
    }
    description = (
        f"Command: `.venv/bin/python bench/legacy_import.py` (defaults: {args.participants} "
        f"participants, {args.images} images in batches of {args.per_batch}, seed {args.seed}). "
        "A made-up file in the published CIFAR-10S raw format, as large as the real one, is "
        "imported with `manage.py import_legacy --format cifar10s` into a fresh PostgreSQL "
        "database. Baseline, measured in the same run: parsing the file only (in-process, best "
        'of 3). "import s" is the command\'s own total (parse + one-transaction write); "import '
        'wall s" adds interpreter and Django start-up, shown alone as "command start s" '
        '(`manage.py help import_legacy`); "--replace s" re-imports over the same study.'
    )
    row = (
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} ({platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}) | {figures['rows']} | {figures['responses']} | "
        f"{figures['participants']} | {figures['stimuli']} | {figures['parse_s']} | "
        f"{figures['import_s']} | ×{import_s / parse_s:.1f} | {figures['import_wall_s']} | "
        f"{figures['command_start_s']} | {figures['replace_s']} |"
    )
    _append(args.out, row, description)
    print(json.dumps(figures))
    print(row)


if __name__ == "__main__":
    main()
