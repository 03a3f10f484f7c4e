"""Import a published CIFAR-10S / H-Mix raw file as an ordinary (closed) study.

The parsing is in `legacy` (pure); this module does the writes, in one transaction and with
bulk inserts, so a full published file (about 8,500 rows) imports in seconds and a file with any
problem imports nothing.
"""

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from analysis.aggregation import CIFAR10S_TOP2_CLAMP, DEFAULT_GAMMA, HMIX_2023
from elicitation import imaging, legacy, privacy_services
from elicitation.defaults import study_texts
from elicitation.models import (
    Batch,
    BatchItem,
    Participant,
    Response,
    Stimulus,
    StimulusImage,
    Study,
    Trial,
)
from elicitation.services import study_create
from hmix_site.common.exceptions import ApplicationError

logger = logging.getLogger(__name__)

TRIAL_TYPES: Final = {
    legacy.CIFAR10S: Study.TrialType.CATEGORICAL,
    legacy.HMIX_CATEGORICAL: Study.TrialType.CATEGORICAL,
    legacy.HMIX_MIXING_FACTOR: Study.TrialType.MIXING_FACTOR,
    legacy.HMIX_CONSTRUCT: Study.TrialType.CONSTRUCT_MIDPOINT,
    legacy.HMIX_SELECT_SHUFFLED: Study.TrialType.SELECT_MIDPOINT,
}
# docs/methods/soft-labels.md#cifar10s-top2-clamp and #hmix-2023: the published labels were made
# with these constructions, γ = 0.1, repeats counted as extra annotations.
LABEL_METHODS: Final = {
    legacy.CIFAR10S: CIFAR10S_TOP2_CLAMP,
    legacy.HMIX_CATEGORICAL: HMIX_2023,
}
TITLES: Final = {
    legacy.CIFAR10S: "CIFAR-10S (published raw data)",
    legacy.HMIX_CATEGORICAL: "H-Mix categorical soft labels (published raw data)",
    legacy.HMIX_MIXING_FACTOR: "H-Mix infer the mixing factor (published raw data)",
    legacy.HMIX_CONSTRUCT: "H-Mix construct the midpoint (published raw data)",
    legacy.HMIX_SELECT_SHUFFLED: "H-Mix select the shuffled midpoint (published raw data)",
}
# client_key of an imported response: uuid5 of (study slug, participant, trial_index), so the
# same file imported under the same slug gets the same keys. The participant is the subject, or
# `<subject>#<n>` for a subject's n-th session (legacy.session_key).
CLIENT_KEY_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "hmix:legacy-import")
BULK_BATCH: Final = 2000


@dataclass(frozen=True)
class LegacyImportResult:
    study: Study
    n_rows: int
    n_skipped: int
    n_stimuli: int
    n_images: int  # stimuli with an image (plain/mixed) or with all 11 frames (series)
    n_participants: int
    n_batches: int
    n_responses: int
    n_repeats: int
    # Subjects of the file who took the study more than once, with their number of sessions;
    # each session is its own participant (`<subject>#2`, ...), so n_participants counts them.
    split_subjects: dict[str, int]


def client_key_for(*, study_slug: str, subject: str, trial_index: int) -> uuid.UUID:
    return uuid.uuid5(CLIENT_KEY_NAMESPACE, f"{study_slug}/{subject}/{trial_index}")


def frame_filename(key: str, step: int) -> str:
    """Where step s of a series is looked for: `mixed_<s/10>_<class pair>.png`, named like the
    published mixed images (λ = 0.0, 0.1, ..., 1.0)."""
    return f"mixed_{step / 10}_{key}.png"


def _load_png(path: Path) -> bytes | None:
    # Decoded and re-encoded like every other stimulus image: a corrupt file is refused here,
    # before anything is written, rather than served broken later.
    if not path.is_file():
        return None
    try:
        return imaging.encode_png(imaging.decode_image(path.read_bytes()))
    except (ValueError, OSError) as exc:
        raise ApplicationError(f"Image {path} cannot be read: {exc}") from exc


def _load_images(
    parsed: legacy.LegacyFile, images_dir: Path | None
) -> tuple[dict[str, bytes], dict[str, list[bytes]]]:
    """(key -> PNG) for plain/mixed stimuli, (key -> 11 PNGs) for complete series."""
    singles: dict[str, bytes] = {}
    series: dict[str, list[bytes]] = {}
    if images_dir is None:
        return singles, series
    if not images_dir.is_dir():
        raise ApplicationError(f"Image folder {images_dir} does not exist.")
    for key, stimulus in parsed.stimuli.items():
        if stimulus.kind != legacy.SERIES:
            png = _load_png(images_dir / key)
            if png is not None:
                singles[key] = png
            continue
        frames = [_load_png(images_dir / frame_filename(key, s)) for s in range(legacy.N_STEPS)]
        present = [f for f in frames if f is not None]
        if len(present) == legacy.N_STEPS:
            series[key] = present
        elif present:
            # A series is shown as all 11 steps or not at all: a partial one is left without.
            logger.warning("Series %s has %d of 11 frames; none attached.", key, len(present))
    return singles, series


def _study_delete(study: Study) -> list[str]:
    """Delete a study and everything under it; returns its stored file names.

    Trials, responses and batches are PROTECTed against stray deletes, so the rows are removed
    leaf first instead of through Study's cascade.
    """
    files = [
        name
        for name in [
            *Stimulus.objects.filter(study=study).values_list("image", flat=True),
            *StimulusImage.objects.filter(stimulus__study=study).values_list("image", flat=True),
        ]
        if name
    ]
    Response.objects.filter(study=study).delete()
    Trial.objects.filter(participant__study=study).delete()
    Participant.objects.filter(study=study).delete()
    study.delete()
    return files


def _files_delete(names: Iterable[str]) -> None:
    for name in names:
        default_storage.delete(name)


def _parsed(fmt: str, source: "Iterable[str] | legacy.LegacyFile") -> legacy.LegacyFile:
    if isinstance(source, legacy.LegacyFile):
        if source.fmt != fmt:
            raise ValueError(f"parsed data is {source.fmt!r}, not {fmt!r}")
        return source
    return legacy.parse(fmt, source)


def legacy_import(
    *,
    study_slug: str,
    fmt: str,
    source: "Iterable[str] | legacy.LegacyFile",
    owner: AbstractBaseUser,
    images_dir: Path | None = None,
    replace: bool = False,
    title: str | None = None,
) -> LegacyImportResult:
    """Create study `study_slug` from a published raw file of format `fmt`.

    `source` is the file's text lines (a file opened with newline="") or its parsed form.
    Raises legacy.LegacyFormatError (every bad row, with its line) for a malformed file and
    ApplicationError when the slug is taken (unless replace=True, which deletes that study and
    its responses first) or an image cannot be read. One transaction: on any error nothing is
    written. Images are optional: a stimulus whose file is not in `images_dir` has none.
    Participants are the sessions with at least one response row: a subject who took the
    study twice becomes two participants (`<subject>` and `<subject>#2`), both kept, and the
    result (and the study's settings) name such subjects in `split_subjects`.
    """
    parsed = _parsed(fmt, source)
    singles, series = _load_images(parsed, images_dir)
    saved: list[str] = []
    try:
        with transaction.atomic():
            result = _write(
                parsed=parsed,
                study_slug=study_slug,
                owner=owner,
                replace=replace,
                title=title,
                singles=singles,
                series=series,
                saved=saved,
            )
    except BaseException:
        # The rows are rolled back; the image files written meanwhile are not, so remove them.
        _files_delete(saved)
        raise
    return result


def _write(
    *,
    parsed: legacy.LegacyFile,
    study_slug: str,
    owner: AbstractBaseUser,
    replace: bool,
    title: str | None,
    singles: dict[str, bytes],
    series: dict[str, list[bytes]],
    saved: list[str],
) -> LegacyImportResult:
    started = time.perf_counter()
    existing = Study.objects.select_for_update().filter(slug=study_slug).first()
    if existing is not None:
        if not replace:
            raise ApplicationError(
                f"A study with slug {study_slug!r} already exists; import with --replace "
                "(replace=True) to overwrite it.",
                {"study": study_slug},
                status=409,
            )
        old_files = _study_delete(existing)
        transaction.on_commit(lambda: _files_delete(old_files))

    fmt = parsed.fmt
    responses = parsed.responses
    subjects: dict[str, legacy.LegacyResponse] = {}
    for r in responses:
        subjects.setdefault(r.participant_key, r)
    batch_sizes = Counter(r.condition for r in subjects.values())
    repeats = Counter(r.participant_key for r in responses if r.is_repeat)
    label_fields: dict[str, Any] = {}
    if fmt in LABEL_METHODS:
        label_fields = {
            "label_method": LABEL_METHODS[fmt],
            "label_params": {"gamma": DEFAULT_GAMMA, "include_repeats": True},
        }
    trial_type = TRIAL_TYPES[fmt]
    study = study_create(
        slug=study_slug,
        title=title or TITLES[fmt],
        trial_type=trial_type,
        owner_id=owner.pk,
        classes=parsed.classes,
        status=Study.Status.CLOSED,
        participants_per_batch=max(batch_sizes.values(), default=1),
        repeats=max(repeats.values(), default=0),
        settings={
            "legacy_import": {
                "format": fmt,
                "rows": parsed.n_rows,
                "skipped_rows": parsed.n_skipped,
                "responses": len(responses),
                "split_subjects": parsed.split_subjects,
            }
        },
        **study_texts(trial_type),
        **label_fields,
    )

    # Stimuli (images stored first: the upload path needs the study id, which now exists).
    stimuli: list[Stimulus] = []
    for key, s in parsed.stimuli.items():
        stimulus = Stimulus(
            study=study,
            key=key,
            kind=s.kind,
            true_class=s.true_class,
            class1=s.class1,
            class2=s.class2,
            lam=s.lam,
            source1=s.source1,
            source2=s.source2,
            meta=s.meta,
        )
        if key in singles:
            stimulus.image.save(f"{stimulus.public_id}.png", ContentFile(singles[key]), save=False)
            saved.append(stimulus.image.name)
        stimuli.append(stimulus)
    Stimulus.objects.bulk_create(stimuli, batch_size=BULK_BATCH)
    by_key = {s.key: s for s in stimuli}
    frames: list[StimulusImage] = []
    for key, pngs in series.items():
        for step, png in enumerate(pngs):
            frame = StimulusImage(
                stimulus=by_key[key], role="step", index=step, meta={"lam": step / 10}
            )
            frame.image.save(f"{frame.public_id}.png", ContentFile(png), save=False)
            saved.append(frame.image.name)
            frames.append(frame)
    StimulusImage.objects.bulk_create(frames, batch_size=BULK_BATCH)

    # Batches from `condition`, holding the stimuli its participants answered (in file order).
    batches = {
        number: Batch(study=study, number=number, target=size)
        for number, size in sorted(batch_sizes.items())
    }
    Batch.objects.bulk_create(batches.values())
    items: dict[tuple[int, str], BatchItem] = {}
    positions: Counter[int] = Counter()
    for r in responses:
        if (r.condition, r.stimulus_key) not in items:
            items[(r.condition, r.stimulus_key)] = BatchItem(
                batch=batches[r.condition],
                stimulus=by_key[r.stimulus_key],
                position=positions[r.condition],
            )
            positions[r.condition] += 1
    BatchItem.objects.bulk_create(items.values(), batch_size=BULK_BATCH)

    platform = Participant.Platform.PROLIFIC if parsed.has_study_id else Participant.Platform.DIRECT
    participants = {
        subject: Participant(
            study=study,
            platform=platform,
            external_id=subject,
            platform_study_id=first.study_id,
            stage=Participant.Stage.COMPLETED,
            batch=batches[first.condition],
        )
        for subject, first in subjects.items()
    }
    for participant in participants.values():
        participant.pseudonym = privacy_services.participant_pseudonym(participant=participant)
    Participant.objects.bulk_create(participants.values(), batch_size=BULK_BATCH)

    # One trial per response row, numbered in the participant's own order (trial_index).
    ordered = sorted(responses, key=lambda r: (r.subject, r.session, r.trial_index))
    position: Counter[str] = Counter()
    trials: list[Trial] = []
    for r in ordered:
        key = r.participant_key
        trials.append(
            Trial(
                participant=participants[key],
                stimulus=by_key[r.stimulus_key],
                position=position[key],
                kind=Trial.Kind.REPEAT if r.is_repeat else Trial.Kind.MAIN,
                display=r.display,
            )
        )
        position[key] += 1
    Trial.objects.bulk_create(trials, batch_size=BULK_BATCH)

    rows: list[Response] = []
    for r, trial in zip(ordered, trials, strict=True):
        response = Response(
            trial=trial,
            study=study,
            participant=trial.participant,
            stimulus=trial.stimulus,
            kind=trial.kind,
            position=trial.position,
            client_key=client_key_for(
                study_slug=study_slug, subject=r.participant_key, trial_index=r.trial_index
            ),
            rt_ms=r.rt_ms,
            raw=r.raw,
            display=r.display,
            source=Response.Source.IMPORTED,
            value=r.value,
        )
        if r.categorical is not None:
            response.top_class = r.categorical.top_class
            response.p1_pct = r.categorical.p1_pct
            response.second_class = r.categorical.second_class
            response.p2_pct = r.categorical.p2_pct
            response.impossible = list(r.categorical.impossible)
        rows.append(response)
    Response.objects.bulk_create(rows, batch_size=BULK_BATCH)
    logger.info(
        "Imported %s (%s): %d responses in %.2f s",
        study_slug,
        fmt,
        len(rows),
        time.perf_counter() - started,
    )
    return LegacyImportResult(
        study=study,
        n_rows=parsed.n_rows,
        n_skipped=parsed.n_skipped,
        n_stimuli=len(stimuli),
        n_images=len(singles) + len(series),
        n_participants=len(participants),
        n_batches=len(batches),
        n_responses=len(rows),
        n_repeats=sum(repeats.values()),
        split_subjects=dict(parsed.split_subjects),
    )
