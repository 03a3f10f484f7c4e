"""The demo's IRI set: a standard and an ℓ2-robust SmallCNN trained on the demo shapes, and IRIs
of one shape per class from each (pure, no Django; needs PyTorch).

Used three ways with the same code: `make iri-demo-set` writes the small committed set
(iri/demo_set/: PNGs and manifest.csv) that `seed_demo` imports when PyTorch is absent;
`seed_demo` runs it at seed time when PyTorch is present; bench/iri_generation.py times it.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from elicitation import imaging
from iri import cnn
from iri import generation as g
from iri.demo_files import DEMO_SET_DIR, MANIFEST, DemoSet, read_demo_set
from iri.manifest_rows import manifest_csv

# The models train on 24 generated shapes per class (seed 0; 192 images: on the 64 of seed_demo's
# image set they stayed near 0.5 training accuracy after 30 epochs) and are tested on 8 more
# per class drawn with another seed. The IRI targets are each class's first training image, the
# first image of seed_demo's demo set too (instance k is the same whatever the count).
TRAIN_PER_CLASS: Final = 24
TEST_PER_CLASS: Final = 8
IMAGE_SEED: Final = 0
TEST_SEED: Final = 1
SEEDS: Final = (0, 1)  # two IRIs per target: interface F needs 2 per column


@dataclass(frozen=True)
class DemoBudget:
    """How long the demo models train and the IRIs optimise. The committed set uses the
    method's defaults (5,000 steps, η = 1); seed-time generation a shorter run of the IRIs
    only, from the committed set's models (train=False: training both on the 192 shapes is
    most of the cost and deterministic, so seed time would only repeat it)."""

    epochs: int = 30
    pgd_steps: int = 5
    steps: int = 5000
    eta: float = 1.0
    train: bool = True


COMMITTED: Final = DemoBudget()
SEED_TIME: Final = DemoBudget(steps=300, train=False)


def demo_training_images(
    *, per_class: int = TRAIN_PER_CLASS, seed: int = IMAGE_SEED
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    images = imaging.generate_demo_images(per_class=per_class, seed=seed)
    classes = sorted({image.class_name for image in images})
    pixels = np.stack([image.pixels for image in images])
    labels = np.array([classes.index(image.class_name) for image in images])
    return pixels, labels, classes


def demo_targets() -> list[tuple[str, np.ndarray]]:
    """(class/ref, pixels) of each class's first demo image, by class."""
    firsts: dict[str, imaging.BaseImage] = {}
    for image in imaging.generate_demo_images(per_class=1, seed=IMAGE_SEED):
        firsts.setdefault(image.class_name, image)
    return [(f"{c}/{firsts[c].ref}", firsts[c].pixels) for c in sorted(firsts)]


def demo_models(budget: DemoBudget) -> dict[str, cnn.TrainResult]:
    pixels, labels, classes = demo_training_images()
    return {
        regime: cnn.train(
            pixels,
            labels,
            n_classes=len(classes),
            settings=cnn.TrainSettings(
                regime=regime, epochs=budget.epochs, pgd_steps=budget.pgd_steps, seed=0
            ),
        )
        for regime in cnn.REGIMES
    }


def test_accuracy(trained: cnn.TrainResult) -> float:
    """Accuracy on the held-out shapes (TEST_PER_CLASS per class, TEST_SEED)."""
    pixels, labels, _ = demo_training_images(per_class=TEST_PER_CLASS, seed=TEST_SEED)
    return cnn.accuracy(trained.model, pixels, labels)


def _png(pixels: np.ndarray) -> bytes:
    return imaging.encode_png(pixels)


def demo_set(budget: DemoBudget, *, seeds: Sequence[int] = SEEDS) -> DemoSet:
    """Train both demo models and generate their IRIs (noise starts, no regulariser: the
    recommended setting for comparing models), as an IRI set with its manifest rows."""
    import time

    targets = demo_targets()
    pixels = np.stack([p for _, p in targets])
    files: dict[str, bytes] = {}
    rows: list[dict[str, Any]] = []
    out = DemoSet(files=files, rows=rows)
    for target_id, target_pixels in targets:
        files[f"targets/{target_id.replace('/', '_')}.png"] = _png(target_pixels)
    if budget.train:
        for regime, trained in demo_models(budget).items():
            name = f"demo-cnn-{regime}"
            out.models[name] = {
                "regime": regime,
                "train_accuracy": trained.train_accuracy,
                "robust_accuracy": trained.robust_accuracy,
                "test_accuracy": test_accuracy(trained),
                "training": trained.settings.as_dict(),
                "classes": demo_training_images()[2],
            }
            out.model_files[name] = cnn.to_torchscript(trained.model)
    else:
        committed = read_demo_set()
        out.models.update(committed.models)
        out.model_files.update(committed.model_files)
    for name, info in sorted(out.models.items()):
        regime = info["regime"]
        model = cnn.load_torchscript(out.model_files[name])
        representation = g.layer_representation(model, cnn.DEFAULT_LAYER)
        started = time.perf_counter()
        for seed in seeds:
            settings = g.GenerationSettings(steps=budget.steps, eta=budget.eta, seed=seed)
            result = g.generate(representation, pixels, settings)
            start_path = f"starts/noise-seed{seed}.png"
            files[start_path] = _png(g.to_uint8(result.start[0]))
            iris = g.to_uint8(result.images)
            for i, (target_id, _) in enumerate(targets):
                iri_path = f"{name}/{target_id.replace('/', '_')}-seed{seed}.png"
                files[iri_path] = _png(iris[i])
                rows.append(
                    {
                        "iri": iri_path,
                        "target": f"targets/{target_id.replace('/', '_')}.png",
                        "start": start_path,
                        "model": name,
                        "layer": cnn.DEFAULT_LAYER,
                        "regime": regime,
                        "regulariser": "none",
                        "seed": seed,
                        "final_loss": round(float(result.loss[i]), 6),
                        "distance": round(float(result.distance[i]), 6),
                        "start_distance": round(float(result.start_distance[i]), 6),
                        "best_step": int(result.best_step[i]),
                        "settings": json.dumps(settings.as_dict(), sort_keys=True),
                    }
                )
        elapsed = time.perf_counter() - started
        out.seconds_per_iri[name] = elapsed / (len(seeds) * len(targets))
    return out


def write_demo_set(demo: DemoSet, directory: Path = DEMO_SET_DIR) -> None:
    for path, data in demo.files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for name, data in demo.model_files.items():
        (directory / "models").mkdir(parents=True, exist_ok=True)
        (directory / "models" / f"{name}.pt").write_bytes(data)
    (directory / MANIFEST).write_bytes(manifest_csv(demo.rows))
    (directory / "models.json").write_text(json.dumps(demo.models, indent=2, sort_keys=True))


# --- simulated participants -------------------------------------------------------------------


def pixel_choice_alignment(iris: np.ndarray, targets: np.ndarray, starts: np.ndarray) -> float:
    """2AFC (interface E) by a simulated participant who picks the option nearer the IRI in
    pixel ℓ2 distance: the share of IRIs for which that is the target."""
    d_target = np.linalg.norm((iris.astype(float) - targets).reshape(len(iris), -1), axis=1)
    d_start = np.linalg.norm((iris.astype(float) - starts).reshape(len(iris), -1), axis=1)
    return float(np.mean(d_target < d_start))


def pixel_cluster_accuracy(iris: np.ndarray, true_index: np.ndarray, columns: np.ndarray) -> float:
    """Clustering (interface F) by the same participant: each IRI goes to the column image
    nearest in pixel ℓ2 distance; the share put under its own target (chance: 1 / columns)."""
    diff = iris.astype(float)[:, None] - columns.astype(float)[None]
    distances = np.sqrt((diff**2).sum(axis=(2, 3, 4)))
    return float(np.mean(distances.argmin(axis=1) == true_index))
