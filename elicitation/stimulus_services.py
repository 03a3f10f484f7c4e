"""Writes for image sets and stimuli: storing base images and generating mixup stimuli.

The pixel work is in `imaging` (pure numpy/Pillow); these functions only do the I/O around it.
"""

import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from PIL import Image

from elicitation import imaging, iri_manifest
from elicitation.models import ImageSet, SourceImage, Stimulus, StimulusImage, Study

STANDARD_LAMBDAS = (0.1, 0.25, 0.5, 0.75, 0.9)

logger = logging.getLogger(__name__)


@transaction.atomic
def image_set_create(
    *, name: str, source: str, images: Sequence[imaging.BaseImage], owner_id: int | None = None
) -> ImageSet:
    image_set = ImageSet(
        name=name,
        source=source,
        classes=sorted({i.class_name for i in images}),
        owner_id=owner_id,
    )
    image_set.full_clean()
    image_set.save()
    for base in images:
        row = SourceImage(image_set=image_set, class_name=base.class_name, ref=base.ref)
        row.image.save(f"{base.ref}.png", ContentFile(imaging.encode_png(base.pixels)), save=False)
        row.save()
    return image_set


def source_images_load(*, image_set: ImageSet) -> list[imaging.BaseImage]:
    """The set's images as arrays (a read; kept here beside the writer that encodes them)."""
    images = []
    for row in image_set.images.order_by("class_name", "ref"):
        with row.image.open("rb") as fh:
            pixels = np.asarray(Image.open(io.BytesIO(fh.read())).convert("RGB"), dtype=np.uint8)
        images.append(imaging.BaseImage(class_name=row.class_name, ref=row.ref, pixels=pixels))
    return images


def _stimulus_save(stimulus: Stimulus, pixels: np.ndarray) -> Stimulus:
    stimulus.image.save(
        f"{stimulus.public_id}.png", ContentFile(imaging.encode_png(pixels)), save=False
    )
    stimulus.full_clean()
    stimulus.save()
    return stimulus


@transaction.atomic
def stimuli_generate_mixup(
    *,
    study: Study,
    image_set: ImageSet,
    lambdas: Sequence[float] = STANDARD_LAMBDAS,
    n_pairs: int,
    seed: int = 0,
) -> list[Stimulus]:
    """Mixed images round(λ·img1 + (1−λ)·img2) for n_pairs class pairs × every λ.

    Deterministic in (image set, lambdas, n_pairs, seed). Idempotent: stimuli whose key already
    exists in the study are left as they are, so a retried task does not duplicate anything.
    """
    images = source_images_load(image_set=image_set)
    by_ref = {(i.class_name, i.ref): i for i in images}
    specs = imaging.plan_mixup(images, lambdas=lambdas, n_pairs=n_pairs, seed=seed)
    existing = set(Stimulus.objects.filter(study=study).values_list("key", flat=True))
    created = []
    for spec in specs:
        if spec.key in existing:
            continue
        img1, img2 = by_ref[(spec.class1, spec.ref1)], by_ref[(spec.class2, spec.ref2)]
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
        created.append(_stimulus_save(stimulus, imaging.render_mix(spec, img1, img2)))
        existing.add(spec.key)
    return created


@transaction.atomic
def stimuli_add_plain(
    *, study: Study, image_set: ImageSet, per_class: int = 1, seed: int = 0
) -> list[Stimulus]:
    """Unmixed images (per_class of each class), keyed `plain_<Class>_<ref>.png`."""
    rng = np.random.default_rng(seed)
    images = source_images_load(image_set=image_set)
    existing = set(Stimulus.objects.filter(study=study).values_list("key", flat=True))
    created = []
    for class_name in sorted({i.class_name for i in images}):
        members = [i for i in images if i.class_name == class_name]
        for index in rng.permutation(len(members))[:per_class].tolist():
            base = members[index]
            key = f"plain_{base.class_name}_{base.ref}.png"
            if key in existing:
                continue
            stimulus = Stimulus(
                study=study,
                key=key,
                kind=Stimulus.Kind.PLAIN,
                true_class=base.class_name,
                source1=base.ref,
                meta={"image_set": image_set.name},
            )
            created.append(_stimulus_save(stimulus, base.pixels))
    return created


@transaction.atomic
def stimuli_generate_series(
    *, study: Study, image_set: ImageSet, n_pairs: int, seed: int = 0
) -> list[Stimulus]:
    """Midpoint series (interfaces C, D): for each image pair, the 11 mixes λ = step/10.

    The stimulus key is the published class-pair form `<Class1>_<ref1>_<Class2>_<ref2>`; frames
    are role "step", index 0..10. Idempotent like the mixup generator.
    """
    images = source_images_load(image_set=image_set)
    by_ref = {(i.class_name, i.ref): i for i in images}
    # One λ is enough to choose the pairs; the plan's pair choice is what is reused here.
    specs = imaging.plan_mixup(images, lambdas=[0.5], n_pairs=n_pairs, seed=seed)
    existing = set(Stimulus.objects.filter(study=study).values_list("key", flat=True))
    created = []
    for spec in specs:
        key = f"{spec.class1}_{spec.ref1}_{spec.class2}_{spec.ref2}"
        if key in existing:
            continue
        img1, img2 = by_ref[(spec.class1, spec.ref1)], by_ref[(spec.class2, spec.ref2)]
        stimulus = Stimulus(
            study=study,
            key=key,
            kind=Stimulus.Kind.SERIES,
            class1=spec.class1,
            class2=spec.class2,
            source1=spec.ref1,
            source2=spec.ref2,
            meta={"image_set": image_set.name, "steps": 11},
        )
        stimulus.full_clean()
        stimulus.save()
        for step, pixels in enumerate(imaging.midpoint_series(img1.pixels, img2.pixels)):
            frame_save(
                stimulus=stimulus,
                role="step",
                index=step,
                pixels=pixels,
                meta={"lam": imaging.midpoint_lambda(step)},
            )
        created.append(stimulus)
        existing.add(key)
    return created


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
