"""Reads of the study lifecycle (draft → live ⇄ paused → closed): what may still change, whether
a study is ready to launch, and its history. services.study_set_status and
services.study_update enforce them; the dashboard, the builder, the API and the admin show them."""

from dataclasses import dataclass

from django.db.models import QuerySet

from elicitation.models import Batch, Participant, Stimulus, StimulusImage, Study, StudyTransition

# The study's structure: what its answers were given under. Only a draft may change it.
STRUCTURE_FIELDS = ("trial_type", "classes", "repeats")
# How many participants each batch takes: fixed once anyone has consented, since the places
# already handed out were counted against it.
TARGET_FIELDS = ("participants_per_batch",)
# Participants who have not (or not yet) agreed to take part hold nothing of the study.
_NOT_CONSENTED = (Participant.Stage.CONSENT, Participant.Stage.DECLINED)
# How many missing files a refusal names (the rest are counted).
_NAMED_MISSING = 5


def study_has_consented(*, study: Study) -> bool:
    """True once any participant agreed to the consent form (whatever happened next)."""
    return Participant.objects.filter(study=study).exclude(stage__in=_NOT_CONSENTED).exists()


def study_locked_fields(*, study: Study) -> dict[str, str]:
    """The study's fields that can no longer change, each with the reason (empty for a draft
    nobody has consented to). The stimuli and batches follow the same rule as `classes` and
    `participants_per_batch` respectively."""
    locked: dict[str, str] = {}
    if study.status != Study.Status.DRAFT:
        reason = (
            "can only change while the study is a draft; it is "
            f"{study.get_status_display().lower()}."
        )
        locked.update(dict.fromkeys(STRUCTURE_FIELDS, reason))
    if study.pk is not None and study_has_consented(study=study):
        reason = "can no longer change: participants have consented to the study."
        locked.update(dict.fromkeys((*STRUCTURE_FIELDS, *TARGET_FIELDS), reason))
    return locked


def study_stimuli_locked_reason(*, study: Study) -> str:
    """Why the study's stimuli and batches cannot change any more, or "" while they can."""
    if study_has_consented(study=study):
        return "participants have consented to the study"
    if study.status != Study.Status.DRAFT:
        return f"the study is {study.get_status_display().lower()}"
    return ""


@dataclass(frozen=True)
class LaunchCheck:
    name: str
    label: str
    problem: str  # "" when the check passes

    @property
    def ok(self) -> bool:
        return not self.problem


def _missing_files(study: Study) -> tuple[int, list[str]]:
    """(how many batched stimuli lack an image file in storage, the first few keys)."""
    stimuli = list(
        Stimulus.objects.filter(batch_items__batch__study=study)
        .distinct()
        .order_by("key")
        .values_list("id", "key", "image")
    )
    frames: dict[int, list[str]] = {}
    for stimulus_id, name in StimulusImage.objects.filter(
        stimulus__batch_items__batch__study=study
    ).values_list("stimulus_id", "image"):
        frames.setdefault(stimulus_id, []).append(name)
    storage = Stimulus._meta.get_field("image").storage
    missing = [
        key
        for stimulus_id, key, image in stimuli
        if not (names := [n for n in [image, *frames.get(stimulus_id, [])] if n])
        or not all(storage.exists(n) for n in names)
    ]
    return len(missing), missing[:_NAMED_MISSING]


def study_launch_checklist(*, study: Study) -> list[LaunchCheck]:
    """What a study needs before it goes live, each with what is missing (services.
    study_set_status refuses a launch or a resume while any problem is left; the builder shows
    the same list). Reads every image file's existence in storage: run it on a launch, not on a
    hot path."""
    if study.completion_code or study.pays_without_code:
        completion = ""
    else:
        completion = (
            "Set a completion code, or tick “no code: I pay another way”: otherwise workers "
            "finish without a way to be paid."
        )
    missing_texts = []
    if not study.consent_html.strip():
        missing_texts.append("the consent text")
    if not study.instructions:
        missing_texts.append("at least one page of instructions")
    texts = f"Write {' and '.join(missing_texts)}." if missing_texts else ""

    batches = Batch.objects.filter(study=study).exists()
    built = "" if batches else "Build the batches (the Batches step)."
    empty = list(
        Batch.objects.filter(study=study, items__isnull=True)
        .order_by("number")
        .values_list("number", flat=True)
    )
    if not batches:
        per_batch = "No batches yet."
    elif empty:
        per_batch = f"Batch{'es' if len(empty) > 1 else ''} {', '.join(map(str, empty))} " + (
            "have no stimuli." if len(empty) > 1 else "has no stimuli."
        )
    else:
        per_batch = ""
    n_missing, named = _missing_files(study) if batches else (0, [])
    files = (
        f"{n_missing} stimul{'i' if n_missing > 1 else 'us'} without a stored image file "
        f"({', '.join(named)}{', …' if n_missing > len(named) else ''}): generate or import "
        "them again."
        if n_missing
        else ""
    )
    return [
        LaunchCheck(
            "completion", "A completion code (or “no code: I pay another way”)", completion
        ),
        LaunchCheck("batches", "Batches built", built),
        LaunchCheck("texts", "Consent and instructions written", texts),
        LaunchCheck("batch_stimuli", "At least one stimulus in every batch", per_batch),
        LaunchCheck("image_files", "Every stimulus's image files stored", files),
    ]


def study_transition_list(*, study: Study) -> QuerySet[StudyTransition]:
    """The study's status changes, oldest first, with who made them."""
    return (
        StudyTransition.objects.filter(study=study)
        .select_related("actor")
        .order_by("created_at", "id")
    )
