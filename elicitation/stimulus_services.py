"""Writes for image sets and stimuli: storing base images and generating mixup stimuli.

The pixel work is in `imaging` (pure numpy/Pillow); these functions only do the I/O around it.

Image sets and generated stimuli are written in two phases, so that a worker running them as a
job (elicitation.builder_job_services) can report progress while the slow part runs: first every
image is rendered, encoded and stored through Django's storage (no transaction open, a progress
call after each), then the rows are written in one short transaction. All or nothing: if any
step fails, no row is written and the files stored so far are deleted again.
"""

import io
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models.fields.files import FieldFile
from PIL import Image

from elicitation import imaging, iri_manifest
from elicitation.models import ImageSet, SourceImage, Stimulus, StimulusImage, Study

STANDARD_LAMBDAS = (0.1, 0.25, 0.5, 0.75, 0.9)
# Rows per INSERT when the rendered stimuli are written.
BULK_BATCH = 500

logger = logging.getLogger(__name__)

# Called with (items done, items in all) while images are rendered and stored.
Progress = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    return None


def _discard(files: Iterable[FieldFile]) -> None:
    """Delete stored files whose rows were never written (best effort: a failure is logged)."""
    for stored in files:
        if not stored.name:
            continue
        try:
            stored.storage.delete(stored.name)
        except Exception:  # a storage hiccup must not hide the error that brought us here
            logger.exception("Could not delete the orphaned file %s", stored.name)


def image_set_create(
    *,
    name: str,
    source: str,
    images: Sequence[imaging.BaseImage],
    owner_id: int | None = None,
    progress: Progress | None = None,
) -> ImageSet:
    """A new image set holding `images` as PNGs; all or nothing (see the module docstring).

    Raises ValidationError (nothing stored) for a taken or invalid name, checked both before
    the first image is stored and, against a concurrent upload, when the rows are written.
    """
    progress = progress or _no_progress
    image_set = ImageSet(
        name=name,
        source=source,
        classes=sorted({i.class_name for i in images}),
        owner_id=owner_id,
    )
    image_set.full_clean()
    rows: list[SourceImage] = []
    try:
        for base in images:
            row = SourceImage(image_set=image_set, class_name=base.class_name, ref=base.ref)
            row.image.save(
                f"{base.ref}.png", ContentFile(imaging.encode_png(base.pixels)), save=False
            )
            rows.append(row)
            progress(len(rows), len(images))
        try:
            with transaction.atomic():
                image_set.save()
                for row in rows:
                    row.image_set = image_set  # now saved: sets image_set_id
                SourceImage.objects.bulk_create(rows, batch_size=BULK_BATCH)
        except IntegrityError as exc:
            if ImageSet.objects.filter(name=name).exists():
                raise ValidationError({"name": "Image set with this Name already exists."}) from exc
            raise
    except BaseException:
        _discard(row.image for row in rows)
        raise
    return image_set


def source_image_names(*, image_set: ImageSet) -> list[imaging.ImageName]:
    """The set's images by class and ref, without reading a file (enough to plan stimuli)."""
    return [
        imaging.ImageName(class_name=class_name, ref=ref)
        for class_name, ref in image_set.images.order_by("class_name", "ref").values_list(
            "class_name", "ref"
        )
    ]


def _pixels(row: SourceImage) -> np.ndarray:
    with row.image.open("rb") as fh:
        return np.asarray(Image.open(io.BytesIO(fh.read())).convert("RGB"), dtype=np.uint8)


def source_images_load(*, image_set: ImageSet) -> list[imaging.BaseImage]:
    """The set's images as arrays (a read; kept here beside the writer that encodes them)."""
    return [
        imaging.BaseImage(class_name=row.class_name, ref=row.ref, pixels=_pixels(row))
        for row in image_set.images.order_by("class_name", "ref")
    ]


class SourcePixels:
    """The pixels of an image set's images, read from storage on first use: a plan touches
    only the images it mixes, which for a large set (CIFAR-10) is a small share of them."""

    def __init__(self, image_set: ImageSet) -> None:
        self.image_set = image_set
        self.cache: dict[tuple[str, str], imaging.BaseImage] = {}

    def __call__(self, class_name: str, ref: str) -> imaging.BaseImage:
        key = (class_name, ref)
        if key not in self.cache:
            row = self.image_set.images.get(class_name=class_name, ref=ref)
            self.cache[key] = imaging.BaseImage(class_name=class_name, ref=ref, pixels=_pixels(row))
        return self.cache[key]


@dataclass
class Rendered:
    """An unsaved stimulus and its unsaved frames, whose image files are already stored."""

    stimulus: Stimulus
    frames: list[StimulusImage] = field(default_factory=list)

    def files(self) -> list[FieldFile]:
        return [self.stimulus.image, *(frame.image for frame in self.frames)]


@dataclass(frozen=True)
class Draft:
    """A stimulus to make: its key (to skip existing ones) and how to render it."""

    key: str
    render: Callable[[], Rendered]


def _stimulus_image(stimulus: Stimulus, pixels: np.ndarray) -> Rendered:
    stimulus.image.save(
        f"{stimulus.public_id}.png", ContentFile(imaging.encode_png(pixels)), save=False
    )
    return Rendered(stimulus)


def _frame(
    stimulus: Stimulus, *, role: str, index: int, pixels: np.ndarray, meta: dict[str, Any]
) -> StimulusImage:
    frame = StimulusImage(stimulus=stimulus, role=role, index=index, meta=meta)
    frame.image.save(f"{frame.public_id}.png", ContentFile(imaging.encode_png(pixels)), save=False)
    return frame


def mixup_drafts(
    *,
    study: Study,
    image_set: ImageSet,
    lambdas: Sequence[float],
    n_pairs: int,
    seed: int,
    pixels: Callable[[str, str], imaging.BaseImage] | None = None,
) -> list[Draft]:
    """The mixup stimuli of stimuli_generate_mixup, planned (imaging.plan_mixup raises
    ValueError for too few images) but not rendered."""
    load = pixels or SourcePixels(image_set)
    specs = imaging.plan_mixup(
        source_image_names(image_set=image_set), lambdas=lambdas, n_pairs=n_pairs, seed=seed
    )

    def render(spec: imaging.MixSpec) -> Rendered:
        img1, img2 = load(spec.class1, spec.ref1), load(spec.class2, spec.ref2)
        stimulus = Stimulus(
            study=study,
            key=spec.key,
            kind=Stimulus.Kind.MIXED,
            class1=spec.class1,
            class2=spec.class2,
            lam=spec.lam,
            source1=spec.ref1,
            source2=spec.ref2,
            meta={"image_set": image_set.name, "mixup_label": list(spec.mixup_label)},
        )
        return _stimulus_image(stimulus, imaging.render_mix(spec, img1, img2))

    return [Draft(spec.key, partial(render, spec)) for spec in specs]


def plain_drafts(
    *,
    study: Study,
    image_set: ImageSet,
    per_class: int,
    seed: int,
    pixels: Callable[[str, str], imaging.BaseImage] | None = None,
) -> list[Draft]:
    """The unmixed images of stimuli_add_plain, chosen but not rendered."""
    load = pixels or SourcePixels(image_set)
    rng = np.random.default_rng(seed)
    names = source_image_names(image_set=image_set)
    drafts = []
    for class_name in sorted({i.class_name for i in names}):
        members = [i for i in names if i.class_name == class_name]
        for index in rng.permutation(len(members))[:per_class].tolist():
            base = members[index]

            def render(base: imaging.ImageName) -> Rendered:
                stimulus = Stimulus(
                    study=study,
                    key=f"plain_{base.class_name}_{base.ref}.png",
                    kind=Stimulus.Kind.PLAIN,
                    true_class=base.class_name,
                    source1=base.ref,
                    meta={"image_set": image_set.name},
                )
                return _stimulus_image(stimulus, load(base.class_name, base.ref).pixels)

            drafts.append(Draft(f"plain_{base.class_name}_{base.ref}.png", partial(render, base)))
    return drafts


def series_drafts(
    *,
    study: Study,
    image_set: ImageSet,
    n_pairs: int,
    seed: int,
    pixels: Callable[[str, str], imaging.BaseImage] | None = None,
) -> list[Draft]:
    """The midpoint series of stimuli_generate_series, planned but not rendered."""
    load = pixels or SourcePixels(image_set)
    # One λ is enough to choose the pairs; the plan's pair choice is what is reused here.
    specs = imaging.plan_mixup(
        source_image_names(image_set=image_set), lambdas=[0.5], n_pairs=n_pairs, seed=seed
    )

    def render(spec: imaging.MixSpec) -> Rendered:
        img1, img2 = load(spec.class1, spec.ref1), load(spec.class2, spec.ref2)
        stimulus = Stimulus(
            study=study,
            key=f"{spec.class1}_{spec.ref1}_{spec.class2}_{spec.ref2}",
            kind=Stimulus.Kind.SERIES,
            class1=spec.class1,
            class2=spec.class2,
            source1=spec.ref1,
            source2=spec.ref2,
            meta={"image_set": image_set.name, "steps": 11},
        )
        frames = [
            _frame(
                stimulus,
                role="step",
                index=step,
                pixels=pixels,
                meta={"lam": imaging.midpoint_lambda(step)},
            )
            for step, pixels in enumerate(imaging.midpoint_series(img1.pixels, img2.pixels))
        ]
        return Rendered(stimulus, frames)

    return [
        Draft(f"{spec.class1}_{spec.ref1}_{spec.class2}_{spec.ref2}", partial(render, spec))
        for spec in specs
    ]


def stimuli_create(
    *,
    study: Study,
    drafts: Sequence[Draft],
    progress: Progress | None = None,
    before_write: Callable[[], None] | None = None,
) -> list[Stimulus]:
    """Render and store the drafts whose key the study does not have yet, then write them.

    Idempotent: existing keys are skipped, checked again under a lock of the study row when
    the rows are written, so a retried or concurrent run adds nothing twice. `before_write` runs
    first inside that transaction (a last check, a change of the study's classes). All or
    nothing; a failure deletes the files stored so far.
    """
    progress = progress or _no_progress
    existing = set(Stimulus.objects.filter(study=study).values_list("key", flat=True))
    todo: list[Draft] = []
    for draft in drafts:
        if draft.key not in existing:
            todo.append(draft)
            existing.add(draft.key)
    rendered: list[Rendered] = []
    try:
        for draft in todo:
            rendered.append(draft.render())
            progress(len(rendered), len(todo))
        with transaction.atomic():
            return _stimuli_write(study, rendered, before_write)
    except BaseException:
        _discard(f for item in rendered for f in item.files())
        raise


def _stimuli_write(
    study: Study, rendered: list[Rendered], before_write: Callable[[], None] | None
) -> list[Stimulus]:
    # The row lock serialises writers of one study, so the key check below stays true.
    Study.objects.select_for_update().filter(id=study.id).exists()
    if before_write is not None:
        before_write()
    existing = set(Stimulus.objects.filter(study=study).values_list("key", flat=True))
    new = [item for item in rendered if item.stimulus.key not in existing]
    stale = [item for item in rendered if item.stimulus.key in existing]
    # Field checks only: the study was just locked, and the database enforces uniqueness.
    checks: dict[str, Any] = {"validate_unique": False, "validate_constraints": False}
    for item in new:
        item.stimulus.full_clean(exclude=["study"], **checks)
    created = Stimulus.objects.bulk_create([item.stimulus for item in new], batch_size=BULK_BATCH)
    frames = []
    for item in new:
        for frame in item.frames:
            frame.stimulus = item.stimulus  # now saved: sets stimulus_id
            frame.full_clean(exclude=["stimulus"], **checks)
            frames.append(frame)
    StimulusImage.objects.bulk_create(frames, batch_size=BULK_BATCH)
    if stale:  # a concurrent run wrote these keys while this one rendered them
        transaction.on_commit(lambda: _discard(f for item in stale for f in item.files()))
    return created


def stimuli_generate_mixup(
    *,
    study: Study,
    image_set: ImageSet,
    lambdas: Sequence[float] = STANDARD_LAMBDAS,
    n_pairs: int,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Stimulus]:
    """Mixed images round(λ·img1 + (1−λ)·img2) for n_pairs class pairs × every λ.

    Deterministic in (image set, lambdas, n_pairs, seed). Idempotent: stimuli whose key already
    exists in the study are left as they are, so a retried task does not duplicate anything.
    """
    drafts = mixup_drafts(
        study=study, image_set=image_set, lambdas=lambdas, n_pairs=n_pairs, seed=seed
    )
    return stimuli_create(study=study, drafts=drafts, progress=progress)


def stimuli_add_plain(
    *,
    study: Study,
    image_set: ImageSet,
    per_class: int = 1,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Stimulus]:
    """Unmixed images (per_class of each class), keyed `plain_<Class>_<ref>.png`."""
    drafts = plain_drafts(study=study, image_set=image_set, per_class=per_class, seed=seed)
    return stimuli_create(study=study, drafts=drafts, progress=progress)


def stimuli_generate_series(
    *,
    study: Study,
    image_set: ImageSet,
    n_pairs: int,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Stimulus]:
    """Midpoint series (interfaces C, D): for each image pair, the 11 mixes λ = step/10.

    The stimulus key is the published class-pair form `<Class1>_<ref1>_<Class2>_<ref2>`; frames
    are role "step", index 0..10. Idempotent like the mixup generator.
    """
    drafts = series_drafts(study=study, image_set=image_set, n_pairs=n_pairs, seed=seed)
    return stimuli_create(study=study, drafts=drafts, progress=progress)


def frame_save(
    *, stimulus: Stimulus, role: str, index: int, pixels: np.ndarray, meta: dict[str, Any]
) -> StimulusImage:
    frame = StimulusImage(stimulus=stimulus, role=role, index=index, meta=meta)
    frame.image.save(f"{frame.public_id}.png", ContentFile(imaging.encode_png(pixels)), save=False)
    frame.full_clean()
    frame.save()
    return frame


# --- IRI sets (interfaces E and F) ------------------------------------------------------------


def _iri_set_key(number: int, group: iri_manifest.ClusterGroup) -> str:
    readable = f"set_{number}_{group.model}_{group.layer}_{group.regime}_{group.regulariser}"
    # "set_<n>_" comes first, so cutting to the column width keeps keys unique.
    return readable[: Stimulus._meta.get_field("key").max_length]


def iri_import(
    *,
    study: Study,
    files: Mapping[str, bytes],
    manifest: bytes,
    manifest_format: iri_manifest.ManifestFormat,
    max_pixels: int = imaging.DEFAULT_MAX_PIXELS,
    seed: int = 0,
) -> list[Stimulus]:
    """Import an IRI set: one IRI stimulus per manifest row (iri_2afc studies) or one
    clustering set per 3 targets × 2 IRIs (iri_cluster studies; see iri_manifest.cluster_sets,
    deterministic in seed).

    All or nothing: the manifest, every referenced image (decoded within max_pixels) and the
    stimulus keys are checked first, and every problem is raised at once in one ValidationError
    (its __cause__ is the ManifestError with the structured row errors); only then are the
    stimuli written, in one transaction.
    """
    if study.trial_type not in (Study.TrialType.IRI_2AFC, Study.TrialType.IRI_CLUSTER):
        raise ValidationError(
            f"Study {study.slug!r} has trial type {str(study.trial_type)!r}; IRI sets are "
            f"imported into {Study.TrialType.IRI_2AFC.value!r} or "
            f"{Study.TrialType.IRI_CLUSTER.value!r} studies."
        )
    file_map = iri_manifest.files_normalised(files)
    try:
        checked = iri_manifest.check_manifest(
            manifest, manifest_format=manifest_format, files=file_map.keys()
        )
    except iri_manifest.ManifestError as exc:
        raise ValidationError([str(error) for error in exc.errors]) from exc

    errors = list(checked.errors)
    pixels: dict[str, np.ndarray] = {}
    broken: dict[str, str] = {}
    for ref in checked.references:
        if ref.path not in pixels and ref.path not in broken:
            try:
                pixels[ref.path] = imaging.decode_image(file_map[ref.path], max_pixels=max_pixels)
            except imaging.ImageImportError as exc:
                broken[ref.path] = str(exc)
        if ref.path in broken:
            errors.append(
                iri_manifest.RowError(ref.row, ref.column, f"{ref.path!r}: {broken[ref.path]}")
            )

    existing = set(Stimulus.objects.filter(study=study).values_list("key", flat=True))
    sets: list[iri_manifest.ClusterSet] = []
    if study.trial_type == Study.TrialType.IRI_2AFC:
        errors.extend(
            iri_manifest.RowError(entry.row, "iri", f"study already has a stimulus {entry.iri!r}")
            for entry in checked.entries
            if entry.iri in existing
        )
    elif not errors:
        sets = iri_manifest.cluster_sets(checked.entries, seed=seed)
        if not sets:
            errors.append(
                iri_manifest.RowError(
                    None,
                    None,
                    "no clustering set can be formed: a set needs 3 targets with 2 IRIs each "
                    "sharing model, layer, regime and regulariser",
                )
            )
    if errors:
        errors.sort(key=iri_manifest.error_sort_key)
        raise ValidationError([str(error) for error in errors]) from iri_manifest.ManifestError(
            errors
        )

    with transaction.atomic():
        if study.trial_type == Study.TrialType.IRI_2AFC:
            return [_iri_stimulus_create(study, entry, pixels) for entry in checked.entries]
        leftover = iri_manifest.cluster_leftover(checked.entries, sets)
        if leftover:
            logger.info("IRI import into %s: %d IRIs in no set", study.slug, len(leftover))
        number = Stimulus.objects.filter(study=study, kind=Stimulus.Kind.IRI_SET).count()
        created = []
        for cluster in sets:
            number += 1
            key = _iri_set_key(number, cluster.group)
            while key in existing:  # an earlier import's set of the same number
                number += 1
                key = _iri_set_key(number, cluster.group)
            created.append(_iri_set_create(study, key, cluster, pixels))
            existing.add(key)
        return created


def _iri_stimulus_create(
    study: Study, entry: iri_manifest.IriEntry, pixels: Mapping[str, np.ndarray]
) -> Stimulus:
    stimulus = Stimulus(study=study, key=entry.iri, kind=Stimulus.Kind.IRI, meta=entry.meta)
    stimulus.full_clean()
    stimulus.save()
    for role, path in (("query", entry.iri), ("target", entry.target), ("start", entry.start)):
        frame_save(stimulus=stimulus, role=role, index=0, pixels=pixels[path], meta={"path": path})
    return stimulus


def _iri_set_create(
    study: Study, key: str, cluster: iri_manifest.ClusterSet, pixels: Mapping[str, np.ndarray]
) -> Stimulus:
    group = cluster.group
    stimulus = Stimulus(
        study=study,
        key=key,
        kind=Stimulus.Kind.IRI_SET,
        meta={
            "model": group.model,
            "layer": group.layer,
            "regime": group.regime,
            "regulariser": group.regulariser,
            "targets": list(cluster.targets),
            "iris": list(cluster.iris),
        },
    )
    stimulus.full_clean()
    stimulus.save()
    for column, target in enumerate(cluster.targets):
        frame_save(
            stimulus=stimulus,
            role="column",
            index=column,
            pixels=pixels[target],
            meta={"path": target},
        )
    for index, row in enumerate(cluster.rows):
        frame_save(
            stimulus=stimulus,
            role="row",
            index=index,
            pixels=pixels[row.entry.iri],
            meta={
                "target": row.column,
                "iri": row.entry.iri,
                "start": row.entry.start,
                "seed": row.entry.seed,
            },
        )
    return stimulus


def iri_files_load(*, folder: Path | None = None, zip_file: Path | None = None) -> dict[str, bytes]:
    """The files of an IRI set's folder or zip, keyed by relative path (see iri_manifest)."""
    if folder is not None and zip_file is None:
        return iri_manifest.read_folder(folder)
    if zip_file is not None and folder is None:
        return iri_manifest.read_zip(zip_file)
    raise ValueError("give exactly one of folder and zip_file")
