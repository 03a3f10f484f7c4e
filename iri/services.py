"""Writes of the `iri` app: networks (uploaded or trained) and IRI generation jobs.

The API, the dashboard and the management commands call these. The `*_job_create` services
check a request at once (ValidationError / ApplicationError, nothing written), store it as a
jobs.Job and queue its task on the `iri` queue once the request commits. The worker runs the
`*_job_run` service: it claims the job, reports progress, stops if the owner cancels, and ends
the job done (with its outputs as the result file), failed (with the reason) or cancelled;
only a done job writes rows.

PyTorch is optional: iri.generation and iri.cnn are imported only here, inside the functions
that need them, after torch_require() has said clearly what is missing if it is absent.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from PIL import Image

from elicitation import builder_services, imaging, selectors
from elicitation.models import ImageSet, SourceImage, Stimulus, StimulusImage, Study
from hmix_site.common.exceptions import ApplicationError
from iri.manifest_rows import manifest_csv
from iri.models import MAX_INPUT_SIZE, MIN_INPUT_SIZE, Network
from iri.tasks import iri_generate_job_run as iri_generate_job_run_task
from iri.tasks import network_train_job_run as network_train_job_run_task
from jobs.models import Job
from jobs.services import (
    job_cancel_requested,
    job_create,
    job_end_cancelled,
    job_fail,
    job_finish,
    job_progress,
    job_start,
)

if TYPE_CHECKING:
    from iri import generation

logger = logging.getLogger(__name__)

TORCH_MISSING: Final = (
    "IRI generation and model training need PyTorch, which is not installed on this server. "
    "Install H-Mix's optional extra with `pip install -e '.[iri]'` (it pins torch==2.13.0) on "
    "the web host and on the workers that serve the `iri` queue, then restart them."
)
MAX_NETWORK_BYTES: Final = 200 * 1024 * 1024
MAX_STEPS: Final = 100_000
MAX_SEEDS: Final = 20
MAX_TARGETS: Final = 1000
MAX_EPOCHS: Final = 500
# The manifest's regulariser column (docs/formats/import.md#iri-manifest) of each of
# generation's regularisers: TV + image norm and transformation robustness are the
# "human-aligned" priors.
MANIFEST_REGULARISER: Final = {
    "none": "none",
    "tv-norm": "human-aligned",
    "transform": "human-aligned",
    "tv-norm+transform": "human-aligned",
}
STARTS: Final = ("noise", "light-noise", "white", "black", "image")
REGULARISERS: Final = tuple(MANIFEST_REGULARISER)
# Progress writes per run at most (one UPDATE and one cancel check each).
PROGRESS_POINTS: Final = 100


def torch_require() -> None:
    """ApplicationError (503) naming what to install when PyTorch is missing here."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise ApplicationError(TORCH_MISSING, {"missing": "torch"}, status=503) from exc


# --- images ------------------------------------------------------------------------------------


def _pixels(image: SourceImage, size: int) -> np.ndarray:
    with image.image.open("rb") as fh:
        pixels = imaging.decode_image(fh.read())
    if pixels.shape[:2] != (size, size):
        # Models take a fixed input size; Lanczos keeps small shapes' edges.
        resized = Image.fromarray(pixels).resize((size, size), Image.Resampling.LANCZOS)
        pixels = np.asarray(resized.convert("RGB"), dtype=np.uint8)
    return pixels


def _image_id(image: SourceImage) -> str:
    return f"{image.class_name}/{image.ref}"


def _targets_select(
    image_set: ImageSet, *, targets: Sequence[str], per_class: int
) -> list[SourceImage]:
    images = list(SourceImage.objects.filter(image_set=image_set).order_by("class_name", "ref"))
    if targets:
        by_id = {_image_id(image): image for image in images}
        unknown = [t for t in targets if t not in by_id]
        if unknown:
            raise ValidationError(
                {
                    "targets": f"Not in the image set {image_set.name!r}: "
                    f"{', '.join(unknown[:10])} (give class/ref, e.g. "
                    f"{_image_id(images[0]) if images else 'Cat/12'})."
                }
            )
        if len(set(targets)) != len(targets):
            raise ValidationError({"targets": "A target is listed twice."})
        return [by_id[t] for t in targets]
    chosen: list[SourceImage] = []
    counts: dict[str, int] = {}
    for image in images:
        if counts.get(image.class_name, 0) < per_class:
            chosen.append(image)
            counts[image.class_name] = counts.get(image.class_name, 0) + 1
    return chosen


# --- networks ----------------------------------------------------------------------------------


def _check_norm(name: str, values: Sequence[float]) -> list[float]:
    if len(values) != 3 or not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        raise ValidationError({name: f"{name} must be 3 numbers (one per RGB channel)."})
    if name == "std" and any(v <= 0 for v in values):
        raise ValidationError({"std": "std must be positive."})
    return [float(v) for v in values]


def _network_check_fields(
    *, owner_id: int, name: str, input_size: int, regime: str, layer: str
) -> None:
    if not MIN_INPUT_SIZE <= input_size <= MAX_INPUT_SIZE:
        raise ValidationError(
            {"input_size": f"input_size must be from {MIN_INPUT_SIZE} to {MAX_INPUT_SIZE}."}
        )
    Network(
        owner_id=owner_id,
        name=name,
        source=Network.Source.UPLOADED,
        regime=regime,
        input_size=input_size,
        layer=layer,
    ).full_clean(exclude=["file", "mean", "std"], validate_constraints=False)
    if Network.objects.filter(owner_id=owner_id, name=name).exists():
        raise ValidationError({"name": f"You already have a model named {name!r}."})


@transaction.atomic
def network_upload(
    *,
    owner_id: int,
    name: str,
    data: bytes,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    layer: str,
    regime: str = "standard",
    classes: Sequence[str] = (),
) -> Network:
    """Store a researcher's TorchScript model after loading it and running `layer` (a method
    of the module; "forward" for its output) on one image of the input size. ValidationError
    naming the field (and nothing stored) for a file that is too large, not TorchScript, or
    whose layer is missing or fails; 503 if PyTorch is missing here."""
    torch_require()
    from iri import cnn

    _network_check_fields(
        owner_id=owner_id, name=name, input_size=input_size, regime=regime, layer=layer
    )
    mean_values, std_values = _check_norm("mean", mean), _check_norm("std", std)
    if len(data) > MAX_NETWORK_BYTES:
        raise ValidationError({"file": f"The file is over {MAX_NETWORK_BYTES} bytes."})
    try:
        module = cnn.load_torchscript(data)
        shape = cnn.check_layer(module, layer=layer, input_size=input_size)
    except ValueError as exc:
        raise ValidationError({"file": str(exc)}) from exc
    return _network_save(
        owner_id=owner_id,
        name=name,
        source=Network.Source.UPLOADED,
        regime=regime,
        data=data,
        input_size=input_size,
        mean=mean_values,
        std=std_values,
        layer=layer,
        classes=list(classes),
        meta={"output_shape": list(shape)},
    )


def _network_save(*, data: bytes, meta: dict[str, Any], **fields: Any) -> Network:
    network = Network(**fields, meta={**meta, "sha256": hashlib.sha256(data).hexdigest()})
    network.file.save(f"{fields['name']}.pt", ContentFile(data), save=False)
    network.full_clean()
    network.save()
    return network


def network_load(network: Network) -> Any:
    """The network's TorchScript module, normalising its input as recorded (eval mode)."""
    torch_require()
    from iri import cnn

    with network.file.open("rb") as fh:
        return cnn.load_torchscript(fh.read())


@transaction.atomic
def network_train_job_create(
    *,
    owner_id: int,
    name: str,
    image_set: ImageSet,
    regime: str = "standard",
    epochs: int = 25,
    seed: int = 0,
    epsilon: float = 0.5,
) -> Job:
    """Queue training a small CNN (iri.cnn) on an image set, standard or ℓ2-PGD robust."""
    torch_require()
    from iri import cnn

    _network_check_fields(
        owner_id=owner_id, name=name, input_size=32, regime=regime, layer=cnn.DEFAULT_LAYER
    )
    if regime not in cnn.REGIMES:
        raise ValidationError({"regime": f"regime must be one of {', '.join(cnn.REGIMES)}."})
    if not 1 <= epochs <= MAX_EPOCHS:
        raise ValidationError({"epochs": f"epochs must be from 1 to {MAX_EPOCHS}."})
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ValidationError({"epsilon": "epsilon must be a positive number."})
    if len(image_set.classes) < 2:
        raise ValidationError({"image_set": "A classifier needs an image set of 2+ classes."})
    job = job_create(
        owner_id=owner_id,
        kind=Job.Kind.NETWORK_TRAIN,
        params={
            "name": name,
            "image_set": image_set.name,
            "image_set_id": image_set.id,
            "regime": regime,
            "epochs": epochs,
            "seed": seed,
            "epsilon": epsilon,
        },
    )
    transaction.on_commit(lambda: network_train_job_run_task.delay(job.id))
    return job


class _Cancelled(Exception):
    pass


def _cancel_check(job: Job, *, start: float, share: float, what: str) -> Any:
    def report(done: int, total: int) -> bool:
        fraction = min(0.99, start + share * done / max(total, 1))
        job_progress(job=job, fraction=fraction, message=f"{what}: {done} of {total}")
        return job_cancel_requested(job=job)

    return report


def network_train_job_run(*, job: Job) -> Job:
    """Train and store the network of a pending training job; the job, done, failed or
    cancelled. Claims the job first, so a redelivered task does nothing twice."""
    if not job_start(job=job):
        job.refresh_from_db()
        return job
    params = job.params
    try:
        torch_require()
        from iri import cnn

        image_set = ImageSet.objects.filter(id=params["image_set_id"]).first()
        if image_set is None:
            raise ApplicationError(f"the image set {params['image_set']!r} no longer exists.")
        images = list(SourceImage.objects.filter(image_set=image_set).order_by("class_name", "ref"))
        classes = sorted({image.class_name for image in images})
        pixels = np.stack([_pixels(image, 32) for image in images])
        labels = np.array([classes.index(image.class_name) for image in images])
        settings = cnn.TrainSettings(
            regime=params["regime"],
            epochs=params["epochs"],
            seed=params["seed"],
            epsilon=params["epsilon"],
        )
        report = _cancel_check(job, start=0.0, share=1.0, what="Epoch")
        result = cnn.train(
            pixels, labels, n_classes=len(classes), settings=settings, progress=report
        )
        if job_cancel_requested(job=job):
            return job_end_cancelled(job=job)
        data = cnn.to_torchscript(result.model)
        network = _network_save(
            owner_id=job.owner_id,
            name=params["name"],
            source=Network.Source.TRAINED,
            regime=params["regime"],
            data=data,
            input_size=32,
            # The CNN normalises its input itself (iri.cnn.SmallCNN).
            mean=[0.0, 0.0, 0.0],
            std=[1.0, 1.0, 1.0],
            layer=cnn.DEFAULT_LAYER,
            classes=classes,
            meta={
                "training": settings.as_dict(),
                "image_set": image_set.name,
                "n_images": len(images),
                "train_accuracy": result.train_accuracy,
                "robust_accuracy": result.robust_accuracy,
                "layers": list(cnn.LAYERS),
            },
        )
    except ValidationError as exc:
        return job_fail(job=job, error=f"No model was stored: {' '.join(exc.messages)}")
    except ApplicationError as exc:
        return job_fail(job=job, error=f"No model was stored: {exc.message}")
    except Exception:  # the worker's last line of defence: the job must not stay "running"
        logger.exception("Network training job %s failed", job.public_id)
        return job_fail(job=job, error="No model was stored: the training stopped on an error.")
    summary = {"network": network.name, "regime": network.regime, **network.meta}
    return job_finish(
        job=job,
        result=ContentFile(json.dumps(summary, indent=2).encode(), name=f"{network.name}.json"),
        message=(
            f"Trained {network.name!r} ({network.regime}): training accuracy "
            f"{result.train_accuracy:.0%}, under ℓ2 PGD (ε={settings.epsilon}) "
            f"{result.robust_accuracy:.0%}."
        ),
    )


# --- IRI generation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationRequest:
    """What a generation job runs (Job.params), checked by iri_generate_job_create."""

    network_id: int
    layer: str
    image_set_id: int
    target_ids: list[str]
    start: str
    start_image: str
    regulariser: str
    lam: float
    steps: int
    eta: float
    seeds: list[int]


def _generation_settings(request: GenerationRequest, seed: int) -> generation.GenerationSettings:
    from iri import generation

    return generation.GenerationSettings(
        steps=request.steps,
        eta=request.eta,
        start=request.start,
        regulariser=request.regulariser,
        lam=request.lam,
        seed=seed,
    )


@transaction.atomic
def iri_generate_job_create(
    *,
    owner_id: int,
    network: Network,
    image_set: ImageSet,
    study: Study | None = None,
    new_study: dict[str, Any] | None = None,
    layer: str = "",
    targets: Sequence[str] = (),
    per_class: int = 2,
    start: str = "noise",
    start_image: str = "",
    regulariser: str = "none",
    lam: float = 0.05,
    steps: int = 5000,
    eta: float = 1.0,
    seeds: Sequence[int] = (0,),
) -> Job:
    """Check an IRI generation request and queue it as a job of the study.

    The study is an existing draft E or F study of the owner's, or new_study (slug, title,
    trial_type) creates one now. Raises ValidationError keyed by the field (and writes nothing,
    the new study included) for a bad setting, an unknown target or start image, a clustering
    study without the 3 targets × 2 seeds a set needs; ApplicationError (409) for a study that
    is not a draft; 503 if PyTorch is missing.
    """
    torch_require()
    if (study is None) == (new_study is None):
        raise ValidationError({"study": "Give either an existing study or a new one."})
    if study is None:
        assert new_study is not None
        study = builder_services.study_create_draft(owner_id=owner_id, **new_study)
    if study.trial_type not in builder_services.IRI_TYPES:
        raise ValidationError(
            {
                "study": f"Study {study.slug!r} has trial type {study.trial_type!r}; IRIs go "
                f"into {Study.TrialType.IRI_2AFC.value!r} or "
                f"{Study.TrialType.IRI_CLUSTER.value!r} studies."
            }
        )
    builder_services._require_draft(study, "IRIs can be generated")
    problems: dict[str, str] = {}
    if start not in STARTS:
        problems["start"] = f"Unknown start {start!r}; expected one of {', '.join(STARTS)}."
    if regulariser not in REGULARISERS:
        problems["regulariser"] = (
            f"Unknown regulariser {regulariser!r}; expected one of {', '.join(REGULARISERS)}."
        )
    if not 1 <= steps <= MAX_STEPS:
        problems["steps"] = f"steps must be from 1 to {MAX_STEPS}."
    if not (math.isfinite(eta) and eta > 0):
        problems["eta"] = "eta must be a positive number."
    if not (math.isfinite(lam) and lam >= 0):
        problems["lam"] = "lam (λ) must be a number ≥ 0."
    if not 1 <= len(seeds) <= MAX_SEEDS or len(set(seeds)) != len(seeds):
        problems["seeds"] = f"Give 1 to {MAX_SEEDS} different seeds."
    if not targets and per_class < 1:
        problems["per_class"] = "per_class must be at least 1 (or list the targets)."
    if problems:
        raise ValidationError(problems)
    layer = layer or network.layer
    chosen = _targets_select(image_set, targets=targets, per_class=per_class)
    if not chosen or len(chosen) > MAX_TARGETS:
        raise ValidationError({"targets": f"Choose 1 to {MAX_TARGETS} target images."})
    target_ids = [_image_id(image) for image in chosen]
    if start == "image":
        if not SourceImage.objects.filter(
            image_set=image_set,
            class_name=start_image.partition("/")[0],
            ref=start_image.partition("/")[2],
        ).exists():
            raise ValidationError(
                {"start_image": f"Give a start image of {image_set.name!r} as class/ref."}
            )
        if start_image in target_ids:
            raise ValidationError({"start_image": "The start image is also a target."})
    if study.trial_type == Study.TrialType.IRI_CLUSTER and (len(chosen) < 3 or len(seeds) < 2):
        raise ValidationError(
            {
                "seeds": "A clustering set needs 3 targets with 2 IRIs each: choose 3 or more "
                "targets and 2 or more seeds."
            }
        )
    job = job_create(
        owner_id=owner_id,
        kind=Job.Kind.IRI_GENERATE,
        study_id=study.id,
        params={
            "network_id": network.id,
            "network": network.name,
            "layer": layer,
            "image_set_id": image_set.id,
            "image_set": image_set.name,
            "target_ids": target_ids,
            "start": start,
            "start_image": start_image if start == "image" else "",
            "regulariser": regulariser,
            "lam": lam,
            "steps": steps,
            "eta": eta,
            "seeds": list(seeds),
        },
    )
    transaction.on_commit(lambda: iri_generate_job_run_task.delay(job.id))
    return job


def _png(pixels: np.ndarray) -> bytes:
    return imaging.encode_png(pixels)


@dataclass
class _Outputs:
    files: dict[str, bytes]
    rows: list[dict[str, Any]]
    extras: dict[str, bytes]


def iri_generate(
    *,
    network: Network,
    layer: str,
    targets: Sequence[tuple[str, np.ndarray]],
    request: GenerationRequest,
    prefix: str,
    start_pixels: np.ndarray | None = None,
    progress: Any = None,
) -> _Outputs | None:
    """Generate the IRIs of every target for every seed (pure work, no rows written): the
    files of an IRI set and its manifest rows. None if progress asked to stop."""
    torch_require()
    import torch

    from iri import generation

    module = network_load(network)
    mean = torch.tensor(network.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(network.std, dtype=torch.float32).view(1, 3, 1, 1)
    inner = generation.layer_representation(module, layer)

    def representation(x: torch.Tensor) -> torch.Tensor:
        return inner((x - mean) / std)

    pixels = np.stack([p for _, p in targets])
    files: dict[str, bytes] = {}
    rows: list[dict[str, Any]] = []
    extras: dict[str, bytes] = {}
    target_paths = []
    for target_id, target_pixels in targets:
        path = f"{prefix}/targets/{target_id.replace('/', '_')}.png"
        files[path] = _png(target_pixels)
        target_paths.append(path)
    regulariser = MANIFEST_REGULARISER[request.regulariser]
    for index, seed in enumerate(request.seeds):
        settings = _generation_settings(request, seed)

        def tick(done: int, total: int, index: int = index) -> bool:
            if progress is None:
                return False
            return bool(progress(index * total + done, len(request.seeds) * total))

        result = generation.generate(
            representation,
            pixels,
            settings,
            start_image=start_pixels,
            progress=tick,
            progress_every=max(1, request.steps // PROGRESS_POINTS),
        )
        if result.steps_run < request.steps:
            return None
        if request.start == "noise":
            noise = generation.shared_noise(seed=seed, size=pixels.shape[1]).numpy()
            buffer = io.BytesIO()
            np.save(buffer, noise)
            extras[f"{prefix}/starts/noise-seed{seed}.npy"] = buffer.getvalue()
        starts = generation.to_uint8(result.start)
        iris = generation.to_uint8(result.images)
        for i, (target_id, _) in enumerate(targets):
            name = target_id.replace("/", "_")
            if request.start in ("noise", "white", "black"):
                start_path = f"{prefix}/starts/{request.start}-seed{seed}.png"
            elif request.start == "image":
                start_path = f"{prefix}/starts/image-{request.start_image.replace('/', '_')}.png"
            else:
                start_path = f"{prefix}/starts/light-noise-seed{seed}-{name}.png"
            files.setdefault(start_path, _png(starts[i]))
            iri_path = f"{prefix}/{network.name}/{name}-seed{seed}.png"
            files[iri_path] = _png(iris[i])
            rows.append(
                {
                    "iri": iri_path,
                    "target": target_paths[i],
                    "start": start_path,
                    "model": network.name,
                    "layer": layer,
                    "regime": network.regime,
                    "regulariser": regulariser,
                    "seed": seed,
                    "final_loss": float(result.loss[i]),
                    "distance": float(result.distance[i]),
                    "start_distance": float(result.start_distance[i]),
                    "best_step": int(result.best_step[i]),
                    "settings": json.dumps(settings.as_dict(), sort_keys=True),
                }
            )
    return _Outputs(files=files, rows=rows, extras=extras)


@transaction.atomic
def iri_set_store(*, study: Study, outputs: _Outputs, job_id: str = "") -> list[Stimulus]:
    """Import generated IRIs into the study (builder_services.study_iri_import: draft only, all
    or nothing) and record each one's generation (loss, distances, settings) in its metadata."""
    created = builder_services.study_iri_import(
        study=study,
        files=outputs.files,
        manifest=manifest_csv(outputs.rows),
        manifest_format="csv",
        max_pixels=imaging.DEFAULT_MAX_PIXELS,
        seed=0,
    )
    by_iri = {row["iri"]: row for row in outputs.rows}

    def generation_meta(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "final_loss": row["final_loss"],
            "distance": row["distance"],
            "start_distance": row["start_distance"],
            "best_step": row["best_step"],
            "settings": json.loads(row["settings"]),
            "job": job_id,
        }

    for stimulus in created:
        if stimulus.kind == Stimulus.Kind.IRI:
            stimulus.meta = {**stimulus.meta, "generation": generation_meta(by_iri[stimulus.key])}
            stimulus.save(update_fields=["meta", "updated_at"])
    frames = StimulusImage.objects.filter(stimulus__in=created, role="row")
    for frame in frames:
        row = by_iri.get(str(frame.meta.get("iri", "")))
        if row is not None:
            frame.meta = {**frame.meta, "generation": generation_meta(row)}
            frame.save(update_fields=["meta", "updated_at"])
    return created


def _result_zip(outputs: _Outputs, request: GenerationRequest) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.csv", manifest_csv(outputs.rows))
        archive.writestr("request.json", json.dumps(request.__dict__, indent=2))
        for path, data in {**outputs.files, **outputs.extras}.items():
            archive.writestr(path, data)
    return buffer.getvalue()


def _request_from(params: dict[str, Any]) -> GenerationRequest:
    return GenerationRequest(
        **{name: params[name] for name in GenerationRequest.__dataclass_fields__}
    )


def iri_generate_job_run(*, job: Job) -> Job:
    """Generate a pending generation job's IRIs and import them into its study; returns the job,
    done, failed or cancelled. Claims the job first (a redelivered task does nothing twice).
    The result is a zip of the IRIs, targets and starts, the manifest (with every IRI's final
    loss and settings) and each run's shared noise image as saved .npy."""
    if not job_start(job=job):
        job.refresh_from_db()
        return job
    params = job.params
    request = _request_from(params)
    try:
        torch_require()
        study = Study.objects.filter(id=job.study_id).first() if job.study_id else None
        network = Network.objects.filter(id=request.network_id).first()
        image_set = ImageSet.objects.filter(id=request.image_set_id).first()
        if study is None:
            raise ApplicationError("the study no longer exists.")
        if network is None:
            raise ApplicationError(f"the model {params['network']!r} no longer exists.")
        if image_set is None:
            raise ApplicationError(f"the image set {params['image_set']!r} no longer exists.")
        builder_services._require_draft(study, "IRIs can be generated")
        images = _targets_select(image_set, targets=request.target_ids, per_class=0)
        targets = [(_image_id(image), _pixels(image, network.input_size)) for image in images]
        start_pixels = None
        if request.start == "image":
            (start_source,) = _targets_select(image_set, targets=[request.start_image], per_class=0)
            start_pixels = _pixels(start_source, network.input_size)
        outputs = iri_generate(
            network=network,
            layer=request.layer,
            targets=targets,
            request=request,
            prefix=f"gen-{job.public_id.hex[:8]}",
            start_pixels=start_pixels,
            progress=_cancel_check(job, start=0.0, share=0.95, what="Optimisation steps"),
        )
        if outputs is None or job_cancel_requested(job=job):
            return job_end_cancelled(job=job)
        job_progress(job=job, fraction=0.96, message="Storing the IRIs in the study")
        created = iri_set_store(study=study, outputs=outputs, job_id=str(job.public_id))
    except ValidationError as exc:
        return job_fail(job=job, error=f"No IRIs were stored: {' '.join(exc.messages)}")
    except ApplicationError as exc:
        return job_fail(job=job, error=f"No IRIs were stored: {exc.message}")
    except Exception:  # the worker's last line of defence: the job must not stay "running"
        logger.exception("IRI generation job %s failed", job.public_id)
        return job_fail(job=job, error="No IRIs were stored: the generation stopped on an error.")
    total = selectors.stimulus_list(study=study).count()
    distances = [row["distance"] for row in outputs.rows]
    starts = [row["start_distance"] for row in outputs.rows]
    return job_finish(
        job=job,
        result=ContentFile(_result_zip(outputs, request), name=f"{study.slug}-iris.zip"),
        message=(
            f"Generated {len(outputs.rows)} IRIs ({len(created)} new stimuli, {total} in the "
            f"study); representation distance {np.median(starts):.3f} at the start → "
            f"{np.median(distances):.3f} (medians)."
        ),
    )
