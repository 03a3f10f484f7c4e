"""IRI generation on this machine's CPU: seconds per IRI for the demo model at 32×32, and the
alignment that simulated participants who choose by pixel distance give for the standard and
the ℓ2-robust demo CNN (issue 13, acceptance 5).

Run: `.venv/bin/python bench/iri_generation.py` (needs the `iri` extra). It trains both demo
models on the demo shapes (iri.demo: 8 per class, seed 0) and generates IRIs of each class's
first shape with the method's defaults (5,000 normalised steps of η = 1, shared noise start
per seed, no regulariser), then rewrites its section of bench/RESULTS.md.
"""

import argparse
import itertools
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import torch  # noqa: E402

from bench.results import replace_section  # noqa: E402 (bench scripts run as plain files)
from iri import cnn, demo  # noqa: E402
from iri import generation as g  # noqa: E402

HEADING = "## IRI generation (`bench/iri_generation.py`)"


def _cluster_accuracy(iris: np.ndarray, target_of: np.ndarray, targets: np.ndarray) -> float:
    """Interface F by pixel distance, averaged over every 3-column set holding the IRI's own
    target and two others."""
    scores = []
    n = len(targets)
    for i, iri in enumerate(iris):
        own = int(target_of[i])
        for a, b in itertools.combinations([t for t in range(n) if t != own], 2):
            columns = targets[[own, a, b]]
            scores.append(demo.pixel_cluster_accuracy(iri[None], np.array([0]), columns))
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()

    targets = demo.demo_targets()
    pixels = np.stack([p for _, p in targets]).astype(np.float64)
    budget = demo.DemoBudget(steps=args.steps)
    started = time.perf_counter()
    models = demo.demo_models(budget)
    train_s = time.perf_counter() - started

    rows: list[dict[str, Any]] = []
    for regime, trained in models.items():
        representation = g.layer_representation(trained.model, cnn.DEFAULT_LAYER)
        # One target alone (a batch of one): the cost of a single IRI.
        t0 = time.perf_counter()
        g.generate(
            representation, pixels[:1].astype(np.uint8), g.GenerationSettings(steps=args.steps)
        )
        single_s = time.perf_counter() - t0
        iris, starts, target_of, reductions = [], [], [], []
        t0 = time.perf_counter()
        for seed in args.seeds:
            settings = g.GenerationSettings(steps=args.steps, seed=seed)
            result = g.generate(representation, pixels.astype(np.uint8), settings)
            iris.append(g.to_uint8(result.images).astype(np.float64))
            starts.append(g.to_uint8(result.start).astype(np.float64))
            target_of.append(np.arange(len(targets)))
            reductions.append(result.start_distance / result.distance)
        batch_s = (time.perf_counter() - t0) / (len(args.seeds) * len(targets))
        all_iris = np.concatenate(iris)
        all_targets = np.concatenate([pixels] * len(args.seeds))
        rows.append(
            {
                "regime": regime,
                "train_acc": trained.train_accuracy,
                "robust_acc": trained.robust_accuracy,
                "single_s": single_s,
                "batch_s": batch_s,
                "reduction": float(np.median(np.concatenate(reductions))),
                "afc": demo.pixel_choice_alignment(all_iris, all_targets, np.concatenate(starts)),
                "cluster": _cluster_accuracy(all_iris, np.concatenate(target_of), pixels),
                "n": len(all_iris),
            }
        )

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"Measured {when} UTC on {platform.machine()} with {os.cpu_count()} cores (shared with "
        f"other work while measured), Python {platform.python_version()}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads). Command: `.venv/bin/python "
        f"bench/iri_generation.py`. Both demo CNNs (iri.cnn.SmallCNN, width 16) trained on the "
        f"64 demo shapes for {budget.epochs} epochs ({train_s:.0f} s for both); robust = ℓ2 PGD, "
        f"ε = 0.5, {budget.pgd_steps} steps. IRIs of each of the 8 classes' first shape, layer "
        f"penultimate, {args.steps} steps of η = 1.0 from seed {args.seeds}'s shared noise, no "
        'regulariser. "s / IRI alone" is one target in a batch of one; "s / IRI in a batch '
        'of 8" is a run of all 8 targets divided by 8. Simulated participants choose by pixel '
        "ℓ2 distance: 2AFC = share of IRIs nearer their target than their start (chance 0.5); "
        "clustering = share put under their own target among 3 columns (own + every pair of "
        "the other 7; chance 1/3).",
        "",
        "| model | train acc | acc under PGD | s / IRI alone | s / IRI in a batch of 8 | "
        "distance reduction (median, start / kept) | IRIs | 2AFC pixel alignment | "
        "clustering pixel accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| demo-cnn-{r['regime']} | {r['train_acc']:.2f} | {r['robust_acc']:.2f} | "
            f"{r['single_s']:.1f} | {r['batch_s']:.2f} | ×{r['reduction']:.1f} | {r['n']} | "
            f"{r['afc']:.2f} | {r['cluster']:.2f} |"
        )
    standard, robust = rows
    differ = (robust["afc"] - standard["afc"], robust["cluster"] - standard["cluster"])
    lines += [
        "",
        f"Robust minus standard: 2AFC {differ[0]:+.2f}, clustering {differ[1]:+.2f}.",
    ]
    body = "\n".join(lines)
    replace_section(args.out, HEADING, body)
    print(body)


if __name__ == "__main__":
    main()
