"""The study builder's writes, shared by the dashboard pages and the REST API: a new study with
the default texts of its interface, stimuli for its interface from an image set or an IRI
manifest, and batches over all of its stimuli. Each one is all or nothing."""

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Final

from django.core.exceptions import ValidationError
from django.db import transaction

from elicitation import imaging, iri_manifest, selectors, services, stimulus_services
from elicitation.defaults import study_texts
from elicitation.models import Batch, ImageSet, Stimulus, Study
from hmix_site.common.exceptions import ApplicationError

# docs/user-guide/running-a-study.md#study-flow, last step: Prolific's completion URL; {code} is
# the study's code.
PROLIFIC_COMPLETION_URL: Final = "https://app.prolific.com/submissions/complete?cc={code}"
# One form post or API call generates at most this many stimuli (one job).
MAX_GENERATED_STIMULI: Final = 5000

MIXUP_TYPES: Final = (Study.TrialType.CATEGORICAL, Study.TrialType.MIXING_FACTOR)
SERIES_TYPES: Final = (Study.TrialType.CONSTRUCT_MIDPOINT, Study.TrialType.SELECT_MIDPOINT)
IRI_TYPES: Final = (Study.TrialType.IRI_2AFC, Study.TrialType.IRI_CLUSTER)


@transaction.atomic
def study_create_draft(
    *,
    owner_id: int,
    slug: str,
    title: str,
    trial_type: str,
    participants_per_batch: int = 5,
    repeats: int = 2,
    classes: Sequence[str] = (),
) -> Study:
    """A draft study with the default consent, instructions, check and debrief of its type,
    sending participants back to Prolific (the code is set later, in the texts).

    Without classes it has none until its first stimuli, which take the classes of their image
    set (see study_stimuli_generate): a default list such as CIFAR-10's would be shown as the
    study's classes after an upload of quite different ones. IRI studies use no classes.
    """
    if trial_type not in Study.TrialType.values:
        raise ValidationError({"trial_type": f"Unknown trial type {trial_type!r}."})
    if not 0 <= repeats <= services.MAX_REPEATS:
        raise ValidationError({"repeats": f"Repeats must be from 0 to {services.MAX_REPEATS}."})
    return services.study_create(
        slug=slug,
        title=title,
        trial_type=trial_type,
        owner_id=owner_id,
        classes=list(classes),
        participants_per_batch=participants_per_batch,
        repeats=repeats,
        prolific_completion_url=PROLIFIC_COMPLETION_URL,
        **study_texts(trial_type),
    )


def _require_draft(study: Study, what: str) -> None:
    if study.status != Study.Status.DRAFT:
        raise ApplicationError(
            f"{what} only while the study is a draft; it is {study.get_status_display().lower()}.",
            {"status": study.status},
            status=409,
        )


def _classes_for(study: Study, image_set: ImageSet) -> list[str]:
    """The study's classes if they cover the image set's; else, while the study has no
    stimuli yet, the image set's classes."""
    if set(image_set.classes) <= set(study.classes):
        return list(study.classes)
    if not study.stimuli.exists():
        return list(image_set.classes)
    extra = sorted(set(image_set.classes) - set(study.classes))
    raise ValidationError(
        {
            "image_set": f"Image set {image_set.name!r} has classes {extra} that are not among "
            f"the study's classes {study.classes}."
        }
    )


def study_stimuli_check(
    *,
    study: Study,
    image_set: ImageSet,
    n_pairs: int,
    lambdas: Sequence[float] = (),
    plain_per_class: int = 0,
    seed: int = 0,
) -> int:
    """Every rule of study_stimuli_generate, checked without writing or reading an image file:
    raises the same errors, else returns how many stimuli the request plans (existing keys
    included). A request runs this before it queues the generation as a job."""
    _require_draft(study, "Stimuli can be generated")
    ttype = study.trial_type
    if ttype in IRI_TYPES:
        raise ValidationError(
            {"image_set": "IRI studies take their stimuli from an IRI set and its manifest."}
        )
    errors: dict[str, str] = {}
    if n_pairs < 1:
        errors["n_pairs"] = "The number of pairs must be at least 1."
    if ttype in MIXUP_TYPES:
        if not lambdas:
            errors["lambdas"] = "Give at least one λ."
        elif any(not 0 <= lam <= 1 for lam in lambdas):
            errors["lambdas"] = "Every λ must be between 0 and 1."
        elif len(set(lambdas)) != len(lambdas):
            errors["lambdas"] = "The λ grid lists the same value twice."
        elif n_pairs * len(lambdas) > MAX_GENERATED_STIMULI:
            errors["n_pairs"] = (
                f"{n_pairs} pairs × {len(lambdas)} λ values is more than "
                f"{MAX_GENERATED_STIMULI} stimuli at once."
            )
    elif lambdas:
        errors["lambdas"] = "Midpoint series always use the 11 steps λ = 0.0, 0.1, …, 1.0."
    if plain_per_class and ttype != Study.TrialType.CATEGORICAL:
        errors["plain_per_class"] = (
            "Plain (unmixed) images only fit categorical studies; the other interfaces ask "
            "about a class pair."
        )
    if plain_per_class < 0:
        errors["plain_per_class"] = "The number of plain images cannot be negative."
    if ttype in SERIES_TYPES and n_pairs > MAX_GENERATED_STIMULI // 11:
        errors["n_pairs"] = f"At most {MAX_GENERATED_STIMULI // 11} series at once."
    if errors:
        raise ValidationError(errors)

    _classes_for(study, image_set)
    names = stimulus_services.source_image_names(image_set=image_set)
    try:  # the plan needs class names and refs only: too few images or classes fail here
        specs = imaging.plan_mixup(
            names,
            lambdas=[0.5] if ttype in SERIES_TYPES else lambdas,
            n_pairs=n_pairs,
            seed=seed,
        )
    except ValueError as exc:
        raise ValidationError({"n_pairs": str(exc)}) from exc
    per_class = Counter(name.class_name for name in names)
    return len(specs) + sum(min(plain_per_class, n) for n in per_class.values())


def study_stimuli_generate(
    *,
    study: Study,
    image_set: ImageSet,
    n_pairs: int,
    lambdas: Sequence[float] = (),
    plain_per_class: int = 0,
    seed: int = 0,
    progress: stimulus_services.Progress | None = None,
) -> list[Stimulus]:
    """The stimuli of the study's interface from an image set: mixup images (A, B) for n_pairs
    image pairs × every λ, plus plain images per class (A only); or midpoint series (C, D) for
    n_pairs pairs. The study's classes must cover the image set's, or (no stimuli yet) become
    the image set's.

    Idempotent like the generators (existing keys are skipped). Only while a draft. All or
    nothing: the images are rendered and stored first (`progress` is called after each), then
    the classes and the stimuli are written in one transaction, which checks the draft and
    the classes again (they may have changed while the images were rendered).
    """
    study_stimuli_check(
        study=study,
        image_set=image_set,
        n_pairs=n_pairs,
        lambdas=lambdas,
        plain_per_class=plain_per_class,
        seed=seed,
    )
    pixels = stimulus_services.SourcePixels(image_set)
    if study.trial_type in SERIES_TYPES:
        drafts = stimulus_services.series_drafts(
            study=study, image_set=image_set, n_pairs=n_pairs, seed=seed, pixels=pixels
        )
    else:
        drafts = stimulus_services.mixup_drafts(
            study=study,
            image_set=image_set,
            lambdas=lambdas,
            n_pairs=n_pairs,
            seed=seed,
            pixels=pixels,
        )
        if plain_per_class:
            drafts += stimulus_services.plain_drafts(
                study=study,
                image_set=image_set,
                per_class=plain_per_class,
                seed=seed,
                pixels=pixels,
            )

    def classes_update() -> None:
        study.refresh_from_db()
        _require_draft(study, "Stimuli can be generated")
        classes = _classes_for(study, image_set)
        if classes != study.classes:
            services.study_update(study=study, classes=classes)

    return stimulus_services.stimuli_create(
        study=study, drafts=drafts, progress=progress, before_write=classes_update
    )


@transaction.atomic
def study_iri_import(
    *,
    study: Study,
    files: Mapping[str, bytes],
    manifest: bytes,
    manifest_format: iri_manifest.ManifestFormat,
    max_pixels: int,
    seed: int = 0,
) -> list[Stimulus]:
    """An IRI set into an IRI study (stimulus_services.iri_import), only while a draft."""
    _require_draft(study, "IRI sets can be imported")
    return stimulus_services.iri_import(
        study=study,
        files=files,
        manifest=manifest,
        manifest_format=manifest_format,
        max_pixels=max_pixels,
        seed=seed,
    )


@transaction.atomic
def study_batches_build(
    *,
    study: Study,
    batch_size: int,
    participants_per_batch: int | None = None,
    seed: int = 0,
) -> list[Batch]:
    """Batches of batch_size over all of the study's stimuli, each for participants_per_batch
    participants (stored on the study). Refused once participants hold batches."""
    if participants_per_batch is not None and participants_per_batch != (
        study.participants_per_batch
    ):
        services.study_update(study=study, participants_per_batch=participants_per_batch)
    stimuli = list(selectors.stimulus_list(study=study))
    if not stimuli:
        raise ValidationError({"batch_size": "The study has no stimuli yet: generate them first."})
    return services.batches_build(study=study, stimuli=stimuli, batch_size=batch_size, seed=seed)
