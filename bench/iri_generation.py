"""IRI generation on this machine's CPU: seconds per IRI for the demo model at 32×32, and the
alignment that simulated participants who choose by pixel distance give for the standard and
the ℓ2-robust demo CNN (issue 13, acceptance 5).

Run: `.venv/bin/python bench/iri_generation.py` (needs the `iri` extra). It reads the committed
demo set (iri/demo_set/, made by `make iri-demo-set` with the method's defaults: 5,000 steps
of η = 1 from each seed's shared noise, no regulariser), times generation with its models, and
scores its IRIs with pixel-distance participants; then rewrites its section of RESULTS.md.
"""

import argparse
import io
import itertools
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import torch  # noqa: E402

from bench.results import replace_section  # noqa: E402 (bench scripts run as plain files)
from iri import cnn, demo  # noqa: E402
from iri import generation as g  # noqa: E402
from iri.demo_files import read_demo_set  # noqa: E402

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


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200, help="steps of each timed run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    made = read_demo_set()
    targets = demo.demo_targets()
    pixels = np.stack([p for _, p in targets])
    rows: list[dict[str, Any]] = []
    for name in sorted(made.model_files):
        model = cnn.load_torchscript(made.model_files[name])
        representation = g.layer_representation(model, cnn.DEFAULT_LAYER)
        timings = {}
        for label, batch in (("single", pixels[:1]), ("batch", pixels)):
            # Best of 3: the machine is shared, and the fastest run is the least disturbed.
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                g.generate(representation, batch, g.GenerationSettings(steps=args.steps))
                runs.append((time.perf_counter() - t0) / len(batch))
            timings[label] = min(runs)
        mine = [row for row in made.rows if row["model"] == name]
        iris = np.stack([_decode(made.files[row["iri"]]) for row in mine])
        own = np.stack([_decode(made.files[row["target"]]) for row in mine])
        starts = np.stack([_decode(made.files[row["start"]]) for row in mine])
        target_paths = sorted({row["target"] for row in mine})
        columns = np.stack([_decode(made.files[path]) for path in target_paths])
        target_of = np.array([target_paths.index(row["target"]) for row in mine])
        reduction = [float(row["start_distance"]) / float(row["distance"]) for row in mine]
        rows.append(
            {
                "name": name,
                "train_acc": made.models[name]["train_accuracy"],
                "robust_acc": made.models[name]["robust_accuracy"],
                "test_acc": made.models[name]["test_accuracy"],
                "single_s": timings["single"] * 5000 / args.steps,
                "batch_s": timings["batch"] * 5000 / args.steps,
                "reduction": float(np.median(reduction)),
                "afc": demo.pixel_choice_alignment(iris, own, starts),
                "cluster": _cluster_accuracy(iris, target_of, columns),
                "n": len(mine),
            }
        )

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    training = made.models["demo-cnn-standard"]["training"]
    n_classes = len(made.models["demo-cnn-standard"]["classes"])
    lines = [
        f"Measured {when} UTC on {platform.machine()} with {os.cpu_count()} cores (shared with "
        f"other work: 1-minute load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after), Python "
        f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} "
        "threads). Command: `.venv/bin/python bench/iri_generation.py`. The IRIs are the "
        "committed demo set (`make iri-demo-set`, iri/demo.py): both demo CNNs "
        f"(iri.cnn.SmallCNN, width {training['width']}) trained on "
        f"{demo.TRAIN_PER_CLASS * n_classes} generated demo shapes ({demo.TRAIN_PER_CLASS} per "
        f"class) for {training['epochs']} epochs (robust = ℓ2 PGD, ε = {training['epsilon']}, "
        f"{training['pgd_steps']} steps); 'test acc' is on {demo.TEST_PER_CLASS * n_classes} "
        "held-out shapes drawn with another seed, 'acc under PGD' on the training shapes. "
        "IRIs of each of the 8 classes' first shape, layer "
        "penultimate, 5,000 steps of η = 1.0 from the shared noise of seeds 0 and 1, no "
        f"regulariser. Seconds per IRI: the best of 3 runs of {args.steps} steps timed here "
        "on the committed model, scaled to 5,000 steps (steps cost the same); 'alone' is one "
        "target in a batch of one, 'in a batch of 8' a run of all 8 targets divided by 8. "
        "Simulated participants choose by pixel ℓ2 distance: 2AFC = share of IRIs nearer "
        "their target than their start (chance 0.5); clustering = share put under their own "
        "target among 3 columns (their own and every pair of the other 7; chance 1/3).",
        "",
        "| model | train acc | test acc | acc under PGD | s / IRI alone | "
        "s / IRI in a batch of 8 | distance reduction (median, start / kept) | IRIs | "
        "2AFC pixel alignment | clustering pixel accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['train_acc']:.2f} | {r['test_acc']:.2f} | "
            f"{r['robust_acc']:.2f} | "
            f"{r['single_s']:.1f} | {r['batch_s']:.2f} | ×{r['reduction']:.1f} | {r['n']} | "
            f"{r['afc']:.2f} | {r['cluster']:.2f} |"
        )
    by_name = {r["name"]: r for r in rows}
    robust, standard = by_name["demo-cnn-robust"], by_name["demo-cnn-standard"]
    lines += [
        "",
        f"Robust minus standard: 2AFC {robust['afc'] - standard['afc']:+.2f}, clustering "
        f"{robust['cluster'] - standard['cluster']:+.2f}.",
    ]
    body = "\n".join(lines)
    replace_section(args.out, HEADING, body)
    print(body)


if __name__ == "__main__":
    main()
