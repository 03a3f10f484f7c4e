import logging
import random
import secrets
import string
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from analysis import recompute_services
from elicitation import (
    displays,
    lifecycle_selectors,
    lock_objects,
    payloads,
    privacy_services,
    quality_flags,
    selectors,
)
from elicitation.models import (
    Batch,
    BatchItem,
    ComprehensionAttempt,
    Participant,
    Response,
    Stimulus,
    Study,
    StudyTransition,
    Trial,
)
from elicitation.payloads import parse_categorical, parse_comprehension
from elicitation.strategies import batch_sizes, choose_batch
from hmix_site.common.exceptions import ApplicationError
from hmix_site.common.validators import validate_web_url_template

logger = logging.getLogger(__name__)

Stage = Participant.Stage


# --- studies -------------------------------------------------------------------------------


@transaction.atomic
def study_create(
    *,
    slug: str,
    title: str,
    trial_type: str,
    owner_id: int,
    classes: Sequence[str],
    **fields: Any,
) -> Study:
    if len(set(classes)) != len(classes):
        raise ValidationError({"classes": "Class names must be unique."})
    if "lease_minutes" not in fields:
        fields["lease_minutes"] = lease_minutes_for(
            fields.get("expected_minutes", Study._meta.get_field("expected_minutes").default)
        )
    study = Study(
        slug=slug,
        title=title,
        trial_type=trial_type,
        owner_id=owner_id,
        classes=list(classes),
        **fields,
    )
    study.full_clean()
    study.save()
    return study


# A freed slot must not wait long for a worker who left, nor be taken from one who pauses: every
# answer renews the lease, so it only has to outlast the longest pause, and a pause as long as
# the whole expected session means the worker has gone. Never under 10 minutes (reading the
# instructions and the check come before the first answer).
MIN_LEASE_MINUTES = 10


def lease_minutes_for(expected_minutes: int) -> int:
    """The default slot lease of a study expected to take `expected_minutes`."""
    return max(MIN_LEASE_MINUTES, expected_minutes)


# The study lifecycle: draft → live ⇄ paused → closed. A launched study never becomes a draft
# again (its answers were given under its structure), and closing is final.
STUDY_TRANSITIONS: dict[str, tuple[str, ...]] = {
    Study.Status.DRAFT: (Study.Status.LIVE,),
    Study.Status.LIVE: (Study.Status.PAUSED, Study.Status.CLOSED),
    Study.Status.PAUSED: (Study.Status.LIVE, Study.Status.CLOSED),
    Study.Status.CLOSED: (),
}


def study_transition_check(*, study: Study, status: str) -> None:
    """Raise why the study cannot move to `status` now (ApplicationError, 409), else nothing.

    A launch or a resume also runs the launch checklist (lifecycle_selectors) and lists every
    problem left."""
    if status not in Study.Status.values:
        raise ValidationError(
            {"status": f"Unknown status {status!r}; expected one of {Study.Status.values}."}
        )
    current = Study.Status(study.status)
    target = Study.Status(status)
    extra = {"from": current.value, "to": target.value}
    if target == current:
        raise ApplicationError(f"The study is already {current.label.lower()}.", extra, status=409)
    if target not in STUDY_TRANSITIONS[current]:
        if target == Study.Status.DRAFT:
            message = (
                "A launched study cannot go back to draft: its answers were given under its "
                "stimuli, classes and settings."
            )
        elif current == Study.Status.CLOSED:
            message = "The study is closed, and a closed study cannot be reopened."
        else:
            message = f"A draft study cannot be {target.label.lower()}: launch it first."
        raise ApplicationError(message, extra, status=409)
    if target == Study.Status.LIVE:
        problems = [c for c in lifecycle_selectors.study_launch_checklist(study=study) if not c.ok]
        if problems:
            raise ApplicationError(
                "The study cannot go live yet: " + " ".join(c.problem for c in problems),
                {**extra, "checklist": {c.name: c.problem for c in problems}},
                status=409,
            )


@transaction.atomic
def study_set_status(
    *,
    study: Study,
    status: str,
    actor_id: int | None = None,
    via: str = StudyTransition.Via.COMMAND,
) -> Study:
    """Move the study along its lifecycle (study_transition_check) and record who did it, when,
    through which way in, from what and to what. The only writer of Study.status."""
    locked = lock_objects.study_select_for_update(study_id=study.id)
    study_transition_check(study=locked, status=status)
    transition = StudyTransition(
        study=locked, actor_id=actor_id, via=via, from_status=locked.status, to_status=status
    )
    transition.full_clean()
    locked.status = status
    locked.save(update_fields=["status", "updated_at"])
    transition.save()
    study.status = locked.status
    study.updated_at = locked.updated_at
    return study


@transaction.atomic
def batches_build(
    *, study: Study, stimuli: Sequence[Stimulus], batch_size: int, seed: int = 0
) -> list[Batch]:
    """Split the stimuli, shuffled, into batches of about `batch_size` whose sizes differ by at
    most one (strategies.batch_sizes says how many and how large).

    Each batch gets the study's participants_per_batch as its target. Refuses once anyone has
    consented: the batches' stimuli and targets are what those participants were promised.
    """
    if batch_size < 1:
        raise ValidationError({"batch_size": "batch_size must be at least 1."})
    if lifecycle_selectors.study_has_consented(study=study):
        raise ApplicationError(
            "Batches cannot be rebuilt once participants have consented to the study.",
            status=409,
        )
    study.batches.all().delete()
    order = list(stimuli)
    random.Random(seed).shuffle(order)  # noqa: S311 (reproducible layout, not a secret)
    batches = []
    start = 0
    for number, size in enumerate(batch_sizes(len(order), batch_size), start=1):
        batch = Batch(study=study, number=number, target=study.participants_per_batch)
        batch.full_clean()
        batch.save()
        BatchItem.objects.bulk_create(
            BatchItem(batch=batch, stimulus=s, position=i)
            for i, s in enumerate(order[start : start + size])
        )
        start += size
        batches.append(batch)
    return batches


# --- participant journey -------------------------------------------------------------------


def participant_start(
    *,
    study: Study,
    platform: str,
    external_id: str = "",
    platform_study_id: str = "",
    platform_session_id: str = "",
    turk_submit_to: str = "",
    user_agent: str = "",
) -> tuple[Participant, bool]:
    """Start a session, or resume the one this crowdworker already has (never a second one).

    Returns (participant, created). Two simultaneous arrivals of the same worker both get the same
    session: the loser of the unique-constraint race re-reads the winner's row. A new session
    is refused (409, reason "full") when no batch has a free place, before anything is written,
    so a worker who cannot be placed learns it before consenting.
    """
    platform_ids = {
        "platform_study_id": platform_study_id,
        "platform_session_id": platform_session_id,
    }
    if external_id:
        existing = selectors.participant_find_external(
            study=study, platform=platform, external_id=external_id
        )
        if existing is not None:
            return _participant_returning(participant=existing, **platform_ids), False
    if study.status != Study.Status.LIVE:
        raise ApplicationError(
            "This study is not accepting participants right now.",
            {"study_status": study.status},
            status=409,
        )
    study_require_room(study=study)
    order = list(range(study.n_classes))
    random.SystemRandom().shuffle(order)
    participant = Participant(
        study=study,
        platform=platform,
        external_id=external_id,
        platform_study_id=platform_study_id,
        platform_session_id=platform_session_id,
        turk_submit_to=turk_submit_to,
        user_agent=user_agent[:400],
        class_order=order,
        stage=Stage.CONSENT,
    )
    participant.pseudonym = privacy_services.participant_pseudonym(participant=participant)
    # Field checks only: the unique token and the study's foreign key would each cost a query
    # in full_clean, and PostgreSQL enforces both on the INSERT.
    participant.clean_fields(exclude=["study", "batch"])
    try:
        with transaction.atomic():
            participant.save()
    except IntegrityError:
        existing = selectors.participant_find_external(
            study=study, platform=platform, external_id=external_id
        )
        if existing is None:
            raise
        return _participant_returning(participant=existing, **platform_ids), False
    return participant, True


def _participant_returning(
    *, participant: Participant, platform_study_id: str, platform_session_id: str
) -> Participant:
    """The session of a crowdworker who comes back, only if they come back from the same
    submission: Prolific's STUDY_ID and SESSION_ID, or MTurk's hitId and assignmentId, as stored
    when the session started.

    A PROLIFIC_PID or an MTurk workerId is no secret (it is in every raw export and in the
    worker's other study links), so on its own it must not hand out the session's token.
    Refused with 403 and nothing about the session in the message.
    """
    names = {
        Participant.Platform.PROLIFIC: (
            "Prolific ID",
            "Prolific study or submission",
            "Prolific submission",
        ),
        Participant.Platform.MTURK: ("MTurk worker ID", "HIT or assignment", "MTurk assignment"),
    }
    if participant.platform not in names:
        return participant
    stored = (participant.platform_study_id, participant.platform_session_id)
    if stored != (platform_study_id, platform_session_id):
        who, where, own = names[Participant.Platform(participant.platform)]
        raise ApplicationError(
            f"This {who} already has a session in this study, started from another {where}. "
            f"Open the study from your own {own}.",
            status=403,
        )
    return participant


def participant_find_returning(
    *,
    study: Study,
    platform: str,
    external_id: str,
    platform_study_id: str = "",
    platform_session_id: str = "",
) -> Participant | None:
    """The session this crowdworker already has, or None; writes nothing (the study link's GET).

    The same identity check as participant_start: a Prolific worker coming back from another
    Prolific study or submission is refused (403) rather than handed the session.
    """
    existing = selectors.participant_find_external(
        study=study, platform=platform, external_id=external_id
    )
    if existing is None:
        return None
    return _participant_returning(
        participant=existing,
        platform_study_id=platform_study_id,
        platform_session_id=platform_session_id,
    )


STUDY_FULL_MESSAGE = "Sorry, all places in this study are taken."


def study_require_room(*, study: Study) -> None:
    """Raise the "full" refusal unless a batch has a place (expired leases count as free)."""
    if not selectors.study_has_room(study=study, now=timezone.now()):
        raise ApplicationError(
            STUDY_FULL_MESSAGE,
            {"reason": "full", "screen_out_code": study.full_code},
            status=409,
        )


@transaction.atomic
def participant_arrive(
    *,
    study: Study,
    agreed: bool,
    platform: str,
    external_id: str = "",
    platform_study_id: str = "",
    platform_session_id: str = "",
    turk_submit_to: str = "",
    user_agent: str = "",
) -> Participant:
    """The consent form posted from the study link: the session starts here, with its answer.

    Nothing is written before this POST, so link previews and probes leave no trace. A worker
    who has a session already resumes it (their answer then goes through participant_consent
    as usual, a no-op once given).
    """
    participant, _ = participant_start(
        study=study,
        platform=platform,
        external_id=external_id,
        platform_study_id=platform_study_id,
        platform_session_id=platform_session_id,
        turk_submit_to=turk_submit_to,
        user_agent=user_agent,
    )
    if participant.stage in Participant.FINISHED_STAGES:
        return participant
    return participant_consent(participant=participant, agreed=agreed)


def _lock(participant: Participant) -> Participant:
    """The participant read again, locked, with its study (one statement)."""
    locked = lock_objects.participant_select_for_update_by_token(token=str(participant.token))
    if locked is None:
        raise ApplicationError("No session with this token.", status=404)
    return locked


def _require_stage(participant: Participant, *stages: str) -> None:
    if participant.stage in Participant.FINISHED_STAGES:
        raise ApplicationError(
            "This session is finished.", {"stage": participant.stage}, status=409
        )
    if participant.stage not in stages:
        raise ApplicationError(
            f"This step is not open: the session is at {participant.stage!r}.",
            {"stage": participant.stage},
            status=409,
        )


@transaction.atomic
def participant_consent(*, participant: Participant, agreed: bool) -> Participant:
    """Record consent (all three statements confirmed) or its refusal, which ends the session.

    Re-posting consent after it was given (back button) is a no-op, not an error.
    """
    participant = _lock(participant)
    if agreed and participant.stage in (Stage.INSTRUCTIONS, Stage.COMPREHENSION, Stage.TRIALS):
        return participant
    _require_stage(participant, Stage.CONSENT)
    participant.stage = Stage.INSTRUCTIONS if agreed else Stage.DECLINED
    participant.save(update_fields=["stage", "updated_at"])
    return participant


@transaction.atomic
def participant_instructions_complete(*, participant: Participant) -> Participant:
    participant = _lock(participant)
    if participant.stage in (Stage.COMPREHENSION, Stage.TRIALS):
        return participant
    _require_stage(participant, Stage.INSTRUCTIONS)
    if participant.study.comprehension:
        participant.stage = Stage.COMPREHENSION
        participant.save(update_fields=["stage", "updated_at"])
        return participant
    return _participant_begin_trials(participant)


@transaction.atomic
def comprehension_submit(*, participant: Participant, answers: Any) -> ComprehensionAttempt:
    """Grade one attempt. All right: trials start. Any wrong: back to the instructions.

    With max_comprehension_failures set (3 by default), the participant is excluded at that
    many failures. Answers are option numbers in the question's own order, whatever order the
    options were shown in; the shown order is stored with the attempt.
    """
    participant = _lock(participant)
    _require_stage(participant, Stage.COMPREHENSION)
    questions = participant.study.comprehension
    parsed = parse_comprehension(answers, questions)
    passed = all(a == q["answer"] for a, q in zip(parsed, questions, strict=True))
    # Every earlier attempt of a session still at the check was failed: no count query needed,
    # and the number matches the one the page derived its option order from.
    number = participant.comprehension_failures + 1
    attempt = ComprehensionAttempt(
        participant=participant,
        number=number,
        answers=parsed,
        passed=passed,
        option_orders=quality_flags.comprehension_option_orders(
            token=str(participant.token), attempt=number, questions=questions
        ),
    )
    # The (participant, number) key is unique in the database; number comes from the locked row.
    attempt.clean_fields(exclude=["participant"])
    attempt.save()
    if passed:
        _participant_begin_trials(participant)
        return attempt
    participant.comprehension_failures += 1
    limit = participant.study.max_comprehension_failures
    if limit is not None and participant.comprehension_failures >= limit:
        participant.stage = Stage.EXCLUDED
    else:
        participant.stage = Stage.INSTRUCTIONS
    participant.save(update_fields=["stage", "comprehension_failures", "updated_at"])
    return attempt


def _participant_begin_trials(participant: Participant) -> Participant:
    batch = assignment_claim(participant=participant)
    if batch is None:
        participant.stage = Stage.FULL
        participant.save(update_fields=["stage", "updated_at"])
        return participant
    trials_build(participant=participant, batch=batch)
    participant.stage = Stage.TRIALS
    participant.trials_started_at = timezone.now()
    participant.save(update_fields=["stage", "trials_started_at", "updated_at"])
    return participant


def assignment_claim(*, participant: Participant) -> Batch | None:
    """Give the participant the least-loaded batch with room, never exceeding any target.

    Loads are read without locks to rank the batches; the chosen batch is then locked and its
    load re-counted under the lock, so a batch's count only changes while its row is locked.
    A first pass skips batches other arrivals are locking (they may be filling them); a second
    pass waits for them, so a crowd arriving at once neither overfills nor wrongly sees "full".
    Each failed attempt rolls back its savepoint, which releases that lock (PostgreSQL
    SELECT ... FOR UPDATE docs), so a transaction never waits while holding another batch.
    """
    study = participant.study
    # Slots of sessions whose lease ran out are freed here as well as by the periodic task, so
    # a deployment without Celery beat (make demo) frees them just the same.
    participant_leases_reclaim(study=study)
    candidates = choose_batch(selectors.batch_loads(study=study), participant_id=participant.id)
    for skip_locked in (True, False):
        for batch_id in candidates:
            try:
                with transaction.atomic():
                    locked = lock_objects.batch_qs_select_for_update(
                        batch_id=batch_id, skip_locked=skip_locked
                    ).first()
                    if locked is None:
                        continue
                    if selectors.batch_load(batch_id=batch_id) >= locked.target:
                        raise _BatchFull
                    participant.batch = locked
                    participant.lease_expires_at = timezone.now() + _lease(study)
                    participant.save(update_fields=["batch", "lease_expires_at", "updated_at"])
                    return locked
            except _BatchFull:
                continue
    return None


class _BatchFull(Exception):
    """Raised inside a savepoint to roll it back (and release the batch lock)."""


def _lease(study: Study) -> timedelta:
    return timedelta(minutes=study.lease_minutes)


def trials_build(*, participant: Participant, batch: Batch) -> list[Trial]:
    """Plan the participant's trials: main trials in an order shuffled for them, catch trials
    mixed in at the study's rate (IRI 2AFC), then the repeat trials.

    Every randomised order and placement goes into Trial.display (see displays.py).
    """
    study = participant.study
    ttype = study.trial_type
    rng = random.Random(secrets.randbits(64))  # noqa: S311 (seeded from secrets)
    stimuli = selectors.batch_stimuli(batch=batch)
    rng.shuffle(stimuli)
    settings = selectors.study_settings(study=study)
    row_counts = (
        selectors.iri_row_counts(stimuli=stimuli) if ttype == Study.TrialType.IRI_CLUSTER else {}
    )
    # Interface C: alternate start steps in the order participants join the batch. The batch row
    # is still locked by assignment_claim, so concurrent arrivals count each other correctly.
    slot = Participant.objects.filter(batch=batch, trials_started_at__isnull=False).count()
    start_step = displays.start_step_for(slot)
    class_order = [study.classes[i] for i in participant.class_order]

    def display_for(stimulus: Stimulus, *, catch: bool = False) -> dict[str, Any]:
        info = displays.StimulusInfo(
            kind=stimulus.kind,
            class1=stimulus.class1,
            class2=stimulus.class2,
            n_rows=row_counts.get(stimulus.id, 0),
        )
        if ttype == Study.TrialType.CATEGORICAL:
            return displays.categorical(class_order=class_order)
        if ttype == Study.TrialType.MIXING_FACTOR:
            return displays.mixing_factor(info)
        if ttype == Study.TrialType.CONSTRUCT_MIDPOINT:
            return displays.construct_midpoint(info, start_step=start_step)
        if ttype == Study.TrialType.SELECT_MIDPOINT:
            return displays.select_midpoint(info, rng)
        if ttype == Study.TrialType.IRI_2AFC:
            return displays.iri_2afc(rng, catch=catch)
        catch_rows = 1 if rng.random() < settings["catch_rate"] else 0
        return displays.iri_cluster(info, rng, catch_rows=catch_rows)

    planned: list[tuple[Stimulus, str, dict[str, Any]]] = [
        (s, Trial.Kind.MAIN, display_for(s)) for s in stimuli
    ]
    if ttype == Study.TrialType.IRI_2AFC and stimuli:
        for _ in range(round(settings["catch_rate"] * len(stimuli))):
            s = rng.choice(stimuli)
            planned.insert(
                rng.randrange(len(planned) + 1), (s, Trial.Kind.CATCH, display_for(s, catch=True))
            )
    repeats = rng.sample(stimuli, k=min(study.repeats, len(stimuli)))
    planned += [(s, Trial.Kind.REPEAT, display_for(s)) for s in repeats]
    return Trial.objects.bulk_create(
        Trial(participant=participant, stimulus=s, position=i, kind=kind, display=display)
        for i, (s, kind, display) in enumerate(planned)
    )


def participant_touch(*, participant: Participant) -> Participant:
    """A returning participant who still holds a slot keeps it: their lease is renewed.

    Only once less than half of the lease is left: the browser reads the session between every
    two trials, and a write on each read would double the cost of the hot path for nothing.
    """
    if participant.stage not in Participant.HOLDING_STAGES:
        return participant
    lease = _lease(participant.study)
    now = timezone.now()
    expires = participant.lease_expires_at
    if expires is None or expires - now < lease / 2:
        participant.lease_expires_at = now + lease
        Participant.objects.filter(id=participant.id, stage__in=Participant.HOLDING_STAGES).update(
            lease_expires_at=participant.lease_expires_at
        )
    return participant


def response_record(
    *,
    participant: Participant,
    trial_id: int,
    client_key: uuid.UUID,
    rt_ms: int,
    answer: Any,
) -> tuple[Response, bool]:
    """Store one answer exactly once. Returns (response, created); see response_record_by_token.

    For callers that hold the participant already (tests, tools); the API uses the token form,
    which saves the extra read.
    """
    return response_record_by_token(
        token=str(participant.token),
        trial_id=trial_id,
        client_key=client_key,
        rt_ms=rt_ms,
        answer=answer,
    )


@transaction.atomic
def response_record_by_token(
    *,
    token: str,
    trial_id: int,
    client_key: uuid.UUID,
    rt_ms: int,
    answer: Any,
) -> tuple[Response, bool]:
    """Store one answer exactly once. Returns (response, created).

    A repeated submit with the same client_key (retry, double click, refresh mid-request)
    returns the stored response and writes nothing. The participant row is locked first, so two
    concurrent submits are serialised and the second one finds the first one's response.

    This is the platform's hot path, so it reads as little as it can: the locked participant
    with its study, then one query for the keyed and the next two open trials; one INSERT, one
    UPDATE of the participant and one stale-mark upsert. Field checks run in Python
    (clean_fields); the foreign keys and CheckConstraints are left to PostgreSQL, which enforces
    them on the INSERT anyway (full_clean would re-check each with a query).
    """
    digest = payloads.payload_digest(trial_id=trial_id, rt_ms=rt_ms, answer=answer)
    participant = _participant_locked(token)
    key = str(client_key)
    trials = selectors.trials_open_or_keyed(participant_id=participant.id, client_key=key)
    keyed = next((t for t in trials if _response_of(t) is not None), None)
    if keyed is not None:
        existing = _response_of(keyed)
        assert existing is not None
        if keyed.id != trial_id:
            raise ApplicationError(
                "This client_key was already used for another trial.", status=409
            )
        # A replay is the same body sent again; another body under the same key is a client
        # bug that must not be told its answer was stored.
        if existing.payload_sha256 and existing.payload_sha256 != digest:
            raise ApplicationError(
                "This client_key was already used with a different answer; a new answer needs "
                "a new client_key.",
                {"response": existing.id},
                status=409,
            )
        return existing, False
    _require_stage(participant, Stage.TRIALS)
    open_trials = [t for t in trials if _response_of(t) is None]
    current = open_trials[0] if open_trials else None
    if current is None or current.id != trial_id:
        _refuse_out_of_turn(participant, trial_id, current)
    assert current is not None
    study = participant.study
    response = Response(
        trial_id=current.id,
        study_id=study.id,
        participant_id=participant.id,
        stimulus_id=current.stimulus_id,
        kind=current.kind,
        position=current.position,
        client_key=client_key,
        payload_sha256=digest,
        rt_ms=rt_ms,
        raw=answer,
        display=current.display,
        too_fast=rt_ms < participant.study.min_response_ms,
    )
    for field, value in answer_parse(study=study, trial=current, answer=answer).items():
        setattr(response, field, value)
    response.clean_fields(exclude=["trial", "study", "participant", "stimulus"])
    try:
        # No savepoint (two more statements): on a conflict the whole submit is refused, and
        # leaving this atomic block by an exception rolls all of it back.
        response.save(force_insert=True)
    except IntegrityError as exc:
        # The only unique key a valid submit can hit here: another session's client_key.
        raise ApplicationError("This client_key was used by another session.", status=409) from exc

    participant.lease_expires_at = timezone.now() + _lease(study)
    fields = ["lease_expires_at", "updated_at"]
    if response.too_fast:
        participant.fast_answers += 1  # the row is locked: the count read is current
        fields.append("fast_answers")
    if len(open_trials) == 1:  # that was the last one
        participant.stage = Stage.DEBRIEF
        fields.append("stage")
    participant.save(update_fields=fields)
    recompute_services.results_mark_stale(
        trial_type=study.trial_type, study_id=study.id, stimulus_id=current.stimulus_id
    )
    return response, True


def _participant_locked(token: str) -> Participant:
    participant = lock_objects.participant_select_for_update_by_token(token=token)
    if participant is None:
        raise ApplicationError("No session with this token.", status=404)
    return participant


def _response_of(trial: Trial) -> Response | None:
    return trial.answered_by  # type: ignore[attr-defined]


def _refuse_out_of_turn(participant: Participant, trial_id: int, current: Trial | None) -> None:
    """Raise the right refusal for a submit to a trial that is not the current one."""
    # Another session's trial answers exactly as a missing one: a different status would tell
    # a participant which trial ids exist.
    trial = (
        Trial.objects.filter(id=trial_id, participant_id=participant.id)
        .only("participant_id", "position")
        .first()
    )
    if trial is None:
        raise ApplicationError("No such trial.", {"trial": trial_id}, status=404)
    raise ApplicationError(
        "This trial was already answered."
        if current is None or current.position > trial.position
        else "This is not the current trial.",
        {"current_trial": current.id if current else None},
        status=409,
    )


def answer_parse(*, study: Study, trial: Trial, answer: Any) -> dict[str, Any]:
    """The answer checked by the parser of the study's trial type, as Response fields: the
    categorical columns for interface A, `value` for B–F. Raises ValidationError naming the
    problem. The preview uses it too, so both give the same messages."""
    ttype = study.trial_type
    if ttype == Study.TrialType.CATEGORICAL:
        parsed = parse_categorical(answer, study.classes)
        return {
            "top_class": parsed.top_class,
            "p1_pct": parsed.p1_pct,
            "second_class": parsed.second_class,
            "p2_pct": parsed.p2_pct,
            "impossible": list(parsed.impossible),
        }
    if ttype == Study.TrialType.MIXING_FACTOR:
        value = payloads.parse_mixing_factor(answer)
    elif ttype == Study.TrialType.CONSTRUCT_MIDPOINT:
        value = payloads.parse_construct_midpoint(
            answer, trial.display, allow_no_steps=study.allow_no_steps
        )
    elif ttype == Study.TrialType.SELECT_MIDPOINT:
        value = payloads.parse_select_midpoint(answer, trial.display)
    elif ttype == Study.TrialType.IRI_2AFC:
        value = payloads.parse_iri_2afc(answer, trial.display)
    elif ttype == Study.TrialType.IRI_CLUSTER:
        targets = selectors.iri_row_targets(stimulus_id=trial.stimulus_id)
        value = payloads.parse_iri_cluster(answer, trial.display, targets)
    else:
        raise ApplicationError(f"Trial type {ttype!r} has no answer parser.")
    return {"value": value}


@transaction.atomic
def participant_debrief_submit(*, participant: Participant, answers: Any) -> Participant:
    """Store the debrief answers and complete the session (idempotent once completed)."""
    participant = _lock(participant)
    if participant.stage == Stage.COMPLETED:
        return participant
    _require_stage(participant, Stage.DEBRIEF)
    questions = participant.study.debrief_questions
    if not isinstance(answers, dict):
        raise ValidationError({"answers": "answers must be an object of question → text."})
    cleaned: dict[str, str] = {}
    for i, question in enumerate(questions):
        text = answers.get(str(i), "")
        if not isinstance(text, str):
            raise ValidationError({"answers": f"Answer {i} must be text."})
        if len(text) > payloads.MAX_ANSWER_CHARS:
            raise ValidationError(
                {"answers": f"Answer {i} is longer than {payloads.MAX_ANSWER_CHARS} characters."}
            )
        cleaned[question] = text
    participant.debrief = cleaned
    participant.stage = Stage.COMPLETED
    participant.completed_at = timezone.now()
    participant.lease_expires_at = None
    participant.straight_lining = quality_flags.straight_lining(
        selectors.participant_answer_records(participant=participant)
    )
    participant.save(
        update_fields=[
            "debrief",
            "stage",
            "completed_at",
            "lease_expires_at",
            "straight_lining",
            "updated_at",
        ]
    )
    return participant


@transaction.atomic
def participant_return(*, participant: Participant) -> Participant:
    """The worker returned the task or timed out on the platform: free their slot now."""
    participant = _lock(participant)
    if participant.stage == Stage.COMPLETED:
        raise ApplicationError("A completed session cannot be returned.", status=409)
    if participant.stage not in Participant.FINISHED_STAGES:
        participant.stage = Stage.RETURNED
        participant.lease_expires_at = None
        participant.save(update_fields=["stage", "lease_expires_at", "updated_at"])
    return participant


def participant_leases_reclaim(*, now: datetime | None = None, study: Study | None = None) -> int:
    """Expire sessions whose lease ran out, freeing their batch slots. Returns how many.

    A single conditional UPDATE: safe to run twice or concurrently, and a participant whose
    lease was renewed in the meantime no longer matches. With `study`, only its sessions (the
    lazy reclaim of assignment_claim); without, all (the periodic task).
    """
    now = now or timezone.now()
    expired = Participant.objects.filter(
        stage__in=Participant.HOLDING_STAGES, lease_expires_at__lt=now
    )
    if study is not None:
        expired = expired.filter(study=study)
    return expired.update(stage=Stage.EXPIRED, updated_at=now)


@transaction.atomic
def study_add_researcher(*, study: Study, username: str) -> Any:
    """Make an existing account a collaborator: they see and export the study's data."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ValidationError({"username": f"No account named {username!r}."})
    if user.pk == study.owner_id:
        raise ValidationError({"username": "The owner is already a researcher of the study."})
    study.researchers.add(user)
    return user


# --- study builder -------------------------------------------------------------------------

# Editable at any time: what participants read and where they are sent, and operational
# settings that only affect sessions and batches created afterwards.
STUDY_TEXT_FIELDS = (
    "title",
    "consent_html",
    "instructions",
    "comprehension",
    "max_comprehension_failures",
    "debrief_questions",
    "completion_code",
    "pays_without_code",
    "completion_url",
    "prolific_completion_url",
    "full_code",
    "excluded_code",
    "settings",
    "participants_per_batch",
    "expected_minutes",
    "lease_minutes",
    "min_response_ms",
    "allow_no_steps",
)
# Editable only while the study is a draft: changing them under live data would make earlier
# and later answers incomparable (another interface, class list or number of repeats).
STUDY_STRUCTURAL_FIELDS = lifecycle_selectors.STRUCTURE_FIELDS
MAX_REPEATS = 20
# Interface settings a researcher may set (defaults.study_settings_defaults), with their ranges.
STUDY_SETTING_RANGES = {"catch_rate": (0.0, 1.0), "catch_threshold": (0.0, 100.0)}
_COMPLETION_CODE_CHARS = frozenset(string.ascii_letters + string.digits + "_-")


def _text(value: Any, what: str, *, max_length: int | None = None, blank: bool = False) -> str:
    if not isinstance(value, str) or (not blank and not value.strip()):
        raise ValueError(f"{what} must be {'text' if blank else 'non-empty text'}.")
    if max_length is not None and len(value) > max_length:
        raise ValueError(f"{what} is longer than {max_length} characters.")
    return value.strip() if not blank else value


def _study_instructions_clean(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise ValueError("Instructions must be a list of pages.")
    pages = []
    for i, page in enumerate(value, start=1):
        if not isinstance(page, dict) or set(page) - {"title", "html"}:
            raise ValueError(f"Page {i} must have a title and html, nothing else.")
        title = _text(page.get("title", ""), f"The title of page {i}", max_length=200, blank=True)
        html = _text(page.get("html"), f"The text of page {i}")
        pages.append({"title": title.strip(), "html": html})
    return pages


def _study_comprehension_clean(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ValueError("Comprehension questions must be a list.")
    if len(value) > payloads.MAX_QUESTIONS:
        raise ValueError(f"At most {payloads.MAX_QUESTIONS} comprehension questions.")
    questions = []
    for i, item in enumerate(value, start=1):
        if not isinstance(item, dict) or set(item) != {"question", "options", "answer"}:
            raise ValueError(f"Question {i} must have a question, its options and the answer.")
        question = _text(item["question"], f"Question {i}", max_length=1000)
        options = item["options"]
        if not isinstance(options, list) or len(options) < 2:
            raise ValueError(f"Question {i} needs at least 2 options.")
        options = [_text(o, f"An option of question {i}", max_length=500) for o in options]
        if len(set(options)) != len(options):
            raise ValueError(f"Question {i} has the same option twice.")
        answer = item["answer"]
        if isinstance(answer, bool) or not isinstance(answer, int):
            raise ValueError(f"The right answer of question {i} must be an option number.")
        if not 0 <= answer < len(options):
            raise ValueError(
                f"The right answer of question {i} must be one of its {len(options)} options "
                f"(0 to {len(options) - 1}), got {answer}."
            )
        questions.append({"question": question, "options": options, "answer": answer})
    return questions


def _study_debrief_clean(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("Debrief questions must be a list of texts.")
    if len(value) > payloads.MAX_QUESTIONS:
        raise ValueError(f"At most {payloads.MAX_QUESTIONS} debrief questions.")
    questions = [_text(q, f"Debrief question {i}", max_length=1000) for i, q in enumerate(value, 1)]
    # The answers are stored keyed by the question's text.
    if len(set(questions)) != len(questions):
        raise ValueError("The same debrief question appears twice.")
    return questions


def _study_completion_url_clean(value: Any) -> str:
    url = _text(value, "The completion URL", max_length=500, blank=True).strip()
    try:
        validate_web_url_template(url)
    except ValidationError as exc:
        raise ValueError(" ".join(exc.messages)) from exc
    return url


def _study_settings_clean(study: Study, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("Settings must be an object.")
    unknown = sorted(set(value) - set(STUDY_SETTING_RANGES))
    if unknown:
        raise ValueError(f"Unknown settings {unknown}; expected {sorted(STUDY_SETTING_RANGES)}.")
    cleaned = dict(study.settings)
    for name, raw in value.items():
        low, high = STUDY_SETTING_RANGES[name]
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not low <= raw <= high:
            raise ValueError(f"{name} must be a number from {low:g} to {high:g}.")
        cleaned[name] = float(raw)
    return cleaned


def _positive(value: Any, what: str, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{what} must be a whole number of at least {low}.")
    if high is not None and value > high:
        raise ValueError(f"{what} must be at most {high}.")
    return value


def _study_field_clean(study: Study, name: str, value: Any) -> Any:
    if name == "title":
        return _text(value, "The title", max_length=200)
    if name == "consent_html":
        return _text(value, "The consent text")
    if name == "instructions":
        return _study_instructions_clean(value)
    if name == "comprehension":
        return _study_comprehension_clean(value)
    if name == "max_comprehension_failures":
        return None if value is None else _positive(value, "The failure limit", low=1, high=100)
    if name == "debrief_questions":
        return _study_debrief_clean(value)
    if name in ("completion_code", "full_code", "excluded_code"):
        what = {
            "completion_code": "The completion code",
            "full_code": "The study-full code",
            "excluded_code": "The excluded code",
        }[name]
        code = _text(value, what, max_length=64, blank=True).strip()
        if not set(code) <= _COMPLETION_CODE_CHARS:
            raise ValueError(f"{what} may only hold letters, digits, '-' and '_'.")
        return code
    if name in ("completion_url", "prolific_completion_url"):
        return _study_completion_url_clean(value)
    if name == "pays_without_code":
        if not isinstance(value, bool):
            raise ValueError("“No code: I pay another way” must be true or false.")
        return value
    if name == "expected_minutes":
        return _positive(value, "The expected length", low=1, high=24 * 60)
    if name == "min_response_ms":
        return _positive(value, "The minimum response time", low=0, high=600_000)
    if name == "allow_no_steps":
        if not isinstance(value, bool):
            raise ValueError("allow_no_steps must be true or false.")
        return value
    if name == "settings":
        return _study_settings_clean(study, value)
    if name == "participants_per_batch":
        return _positive(value, "Participants per batch", low=1, high=10_000)
    if name == "lease_minutes":
        return _positive(value, "The lease", low=1, high=7 * 24 * 60)
    if name == "repeats":
        return _positive(value, "Repeats", low=0, high=MAX_REPEATS)
    if name == "trial_type":
        if value not in Study.TrialType.values:
            raise ValueError(
                f"Unknown trial type {value!r}; expected one of {Study.TrialType.values}."
            )
        if value != study.trial_type and study.stimuli.exists():
            raise ValueError("The trial type cannot change once the study has stimuli.")
        return value
    # classes
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(c, str) and c.strip() for c in value)
    ):
        raise ValueError("Classes must be a non-empty list of non-empty names.")
    classes = [c.strip() for c in value]
    if len(set(classes)) != len(classes):
        raise ValueError("Class names must be unique.")
    used = set(study.stimuli.values_list("class1", flat=True))
    used |= set(study.stimuli.values_list("class2", flat=True))
    used |= set(study.stimuli.values_list("true_class", flat=True))
    missing = sorted((used - {""}) - set(classes))
    if missing:
        raise ValueError(f"The study's stimuli use classes {missing}, which must stay in the list.")
    return classes


def study_update_check(*, study: Study, **fields: Any) -> dict[str, Any]:
    """Every rule of study_update, without writing: the cleaned values of the fields that
    change, or ValidationError (bad values, every problem keyed by field) / ApplicationError
    (409: a field the lifecycle has locked, lifecycle_selectors.study_locked_fields). The admin
    runs it while validating its form, so a refusal shows on the form."""
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in STUDY_TEXT_FIELDS and name not in STUDY_STRUCTURAL_FIELDS:
            errors[name] = f"{name} cannot be changed here."
            continue
        try:
            cleaned[name] = _study_field_clean(study, name, value)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise ValidationError(errors)
    locked = lifecycle_selectors.study_locked_fields(study=study)
    refused = sorted(
        name for name in cleaned if name in locked and cleaned[name] != getattr(study, name)
    )
    if refused:
        reasons = {locked[name] for name in refused}
        raise ApplicationError(
            f"{', '.join(refused)} {' '.join(sorted(reasons))}",
            {"fields": refused, "status": study.status},
            status=409,
        )
    return cleaned


@transaction.atomic
def study_update(*, study: Study, **fields: Any) -> Study:
    """Change a study's texts and settings (any time), its structure (only while a draft) and
    its batch targets (until anyone has consented).

    Every field is checked and every problem is reported at once, keyed by field; nothing is
    saved unless all are valid. The status changes through study_set_status, the slug never.
    """
    cleaned = study_update_check(study=study, **fields)
    for name, value in cleaned.items():
        setattr(study, name, value)
    try:
        study.full_clean()
    except ValidationError:
        study.refresh_from_db()  # the caller's object must not keep the refused values
        raise
    study.save(update_fields=[*cleaned, "updated_at"])
    return study
