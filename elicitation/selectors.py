from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, F, Q, QuerySet

from elicitation.defaults import study_settings_defaults
from elicitation.models import (
    Batch,
    ImageSet,
    Participant,
    Response,
    Stimulus,
    StimulusImage,
    Study,
    Trial,
)
from elicitation.quality_flags import AnswerRecord
from hmix_site.common import rawsql
from hmix_site.common.validators import is_web_url


def study_get_by_slug(*, slug: str) -> Study:
    return Study.objects.get(slug=slug)


def study_list_for_user(*, user_id: int | None) -> QuerySet[Study]:
    """Studies the user owns or collaborates on (none for an anonymous user)."""
    if user_id is None:
        return Study.objects.none()
    return (
        Study.objects.filter(Q(owner_id=user_id) | Q(researchers__id=user_id))
        .distinct()
        .select_related("owner")
        .order_by("-created_at")
    )


def study_is_researcher(*, study: Study, user_id: int | None) -> bool:
    if user_id is None:
        return False
    return study.owner_id == user_id or study.researchers.filter(id=user_id).exists()


@cache
def _participant_sql(*, for_update: bool) -> str:
    # Built on first use: the locking clause depends on the database backend.
    sql = (
        f"SELECT {rawsql.columns(Participant, 'p')}, {rawsql.columns(Study, 's')} "  # noqa: S608
        f"FROM {rawsql.table(Participant)} p JOIN {rawsql.table(Study)} s ON s.id = p.study_id "
        "WHERE p.token = %s"
    )
    # Only the participant row is locked: studies are read by every session.
    return sql + (rawsql.for_update_of("p") if for_update else "")


def participant_by_token(*, token: str, for_update: bool = False) -> Participant | None:
    """The session with this token with its study (one indexed read), or None; a malformed
    token is simply not found. With for_update, the participant row is locked (use it through
    lock_objects). Written as SQL: this is the first read of every participant request."""
    try:
        key = rawsql.param(Participant, "token", token)
    except ValidationError:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_participant_sql(for_update=for_update), [key])
        row = cursor.fetchone()
    if row is None:
        return None
    n = rawsql.width(Participant)
    participant = rawsql.load(Participant, row[:n])
    participant.study = rawsql.load(Study, row[n:])
    return participant


def participant_get_by_token(*, token: str) -> Participant:
    """The session with this token, with its study; raises Participant.DoesNotExist."""
    participant = participant_by_token(token=token)
    if participant is None:
        raise Participant.DoesNotExist(f"No session with token {token!r}.")
    return participant


def participant_find_external(
    *, study: Study, platform: str, external_id: str
) -> Participant | None:
    return Participant.objects.filter(
        study=study, platform=platform, external_id=external_id
    ).first()


def batch_load_filter() -> Q:
    """Participants that occupy a batch slot: completed, or holding an unreclaimed lease."""
    return Q(participants__stage__in=[*Participant.HOLDING_STAGES, Participant.Stage.COMPLETED])


def batch_loads(*, study: Study) -> list[tuple[int, int, int]]:
    """(batch id, slots taken, target) for each of the study's batches, in batch order."""
    return list(
        Batch.objects.filter(study=study)
        .annotate(load=Count("participants", filter=batch_load_filter()))
        .order_by("number")
        .values_list("id", "load", "target")
    )


def study_has_room(*, study: Study, now: datetime) -> bool:
    """Whether any batch of the study has a free place for a new participant (one query).

    Read-only, for the arrival check: a holder whose lease ran out counts as gone, as it will
    once assignment_claim reclaims the slot, so nobody is turned away for a stale slot.
    """
    taken = Q(participants__stage=Participant.Stage.COMPLETED) | (
        Q(participants__stage__in=Participant.HOLDING_STAGES)
        & (
            Q(participants__lease_expires_at__isnull=True)
            | Q(participants__lease_expires_at__gte=now)
        )
    )
    return (
        Batch.objects.filter(study=study)
        .annotate(load=Count("participants", filter=taken))
        .filter(load__lt=F("target"))
        .exists()
    )


def batch_load(*, batch_id: int) -> int:
    return Participant.objects.filter(
        batch_id=batch_id,
        stage__in=[*Participant.HOLDING_STAGES, Participant.Stage.COMPLETED],
    ).count()


def batch_stimuli(*, batch: Batch) -> list[Stimulus]:
    return [item.stimulus for item in batch.items.select_related("stimulus").order_by("position")]


def trial_get_next(*, participant: Participant) -> Trial | None:
    """The participant's first unanswered trial, by position."""
    return (
        Trial.objects.filter(participant=participant, response__isnull=True)
        .select_related("stimulus")
        .order_by("position")
        .first()
    )


@dataclass(frozen=True)
class Progress:
    answered: int
    total: int

    @property
    def percent(self) -> int:
        return round(100 * self.answered / self.total) if self.total else 0


_PROGRESS = (
    f"SELECT COUNT(*), COUNT(r.id) FROM {rawsql.table(Trial)} t "  # noqa: S608
    f"LEFT JOIN {rawsql.table(Response)} r ON r.trial_id = t.id WHERE t.participant_id = %s"
)


def participant_progress(*, participant: Participant) -> Progress:
    # Read on every session request outside the trials; written as SQL like trials_ahead.
    with connection.cursor() as cursor:
        cursor.execute(_PROGRESS, [participant.id])
        total, answered = cursor.fetchone()
    return Progress(answered=answered, total=total)


@dataclass(frozen=True)
class TrialsAhead:
    """Where a participant in the trials stands, read in one statement (the hot path)."""

    current: Trial | None
    following: Trial | None
    answered: int
    total: int


_T, _R, _S = (rawsql.table(m) for m in (Trial, Response, Stimulus))
# The first two open trials with the progress counts: the window count runs before LIMIT, so it
# counts every open trial; the total is a scalar subquery.
_TRIALS_AHEAD = (
    f"SELECT {rawsql.columns(Trial, 't')}, s.image AS stimulus_image, "  # noqa: S608
    f"s.public_id AS stimulus_public_id, COUNT(*) OVER () AS n_open, "
    f"(SELECT COUNT(*) FROM {_T} t2 WHERE t2.participant_id = t.participant_id) AS n_total "
    f"FROM {_T} t JOIN {_S} s ON s.id = t.stimulus_id LEFT JOIN {_R} r ON r.trial_id = t.id "
    "WHERE t.participant_id = %s AND r.id IS NULL ORDER BY t.position LIMIT 2"
)
# For a submit: the trial already answered with the client key, then the first two open ones.
_TRIALS_OPEN_OR_KEYED = (
    f"SELECT {rawsql.columns(Trial, 't')}, r.id AS response_id, "  # noqa: S608
    "r.client_key AS response_client_key, r.created_at AS response_created_at, "
    "r.payload_sha256 AS response_payload_sha256 "
    f"FROM {_T} t LEFT JOIN {_R} r ON r.trial_id = t.id "
    "WHERE t.participant_id = %s AND (r.id IS NULL OR r.client_key = %s) "
    "ORDER BY t.position LIMIT 3"
)


def _with_stimulus(trial: Trial) -> Trial:
    # Only what the session view needs of the stimulus; anything else loads on access.
    trial.stimulus = rawsql.partial(
        Stimulus,
        id=trial.stimulus_id,
        image=trial.stimulus_image,  # type: ignore[attr-defined]
        public_id=trial.stimulus_public_id,  # type: ignore[attr-defined]
    )
    return trial


def trials_ahead(*, participant: Participant) -> TrialsAhead:
    """Where a participant in the trials stands, in one query (the session read's hot path):
    the first two unanswered trials (by position), each with its stimulus's image, and the
    progress counts. With nothing left to answer the progress needs a second query, which only
    happens once the trials are over."""
    rows = [_with_stimulus(t) for t in Trial.objects.raw(_TRIALS_AHEAD, [participant.id])]
    if not rows:
        progress = participant_progress(participant=participant)
        return TrialsAhead(None, None, progress.answered, progress.total)
    first = rows[0]
    n_total, n_open = first.n_total, first.n_open  # type: ignore[attr-defined]
    return TrialsAhead(
        current=first,
        following=rows[1] if len(rows) > 1 else None,
        answered=n_total - n_open,
        total=n_total,
    )


def trials_open_or_keyed(*, participant_id: int, client_key: str) -> list[Trial]:
    """For a submit, in one query: the trial already answered with `client_key` (if it is this
    participant's) with that response, then the first two unanswered trials, by position.

    Trials are answered in order, so an answered trial always comes before the unanswered
    ones. An answered trial's `answered_by` is its response (id, client_key, created_at and
    payload_sha256 loaded), an open one's is None.
    """
    key = rawsql.param(Response, "client_key", client_key)
    trials = list(Trial.objects.raw(_TRIALS_OPEN_OR_KEYED, [participant_id, key]))
    for trial in trials:
        response_id = trial.response_id  # type: ignore[attr-defined]
        trial.answered_by = (  # type: ignore[attr-defined]
            None
            if response_id is None
            else rawsql.partial(
                Response,
                id=response_id,
                trial_id=trial.id,
                participant_id=participant_id,
                client_key=trial.response_client_key,  # type: ignore[attr-defined]
                created_at=trial.response_created_at,  # type: ignore[attr-defined]
                payload_sha256=trial.response_payload_sha256,  # type: ignore[attr-defined]
            )
        )
    return trials


def response_list(
    *,
    study: Study,
    participant_pseudonym: str | None = None,
    stimulus_key: str | None = None,
) -> QuerySet[Response]:
    """The study's responses, oldest first; withdrawn participants' are left out."""
    qs = Response.objects.filter(study=study, participant__withdrawn_at__isnull=True)
    qs = qs.select_related("participant", "stimulus")
    if participant_pseudonym:
        qs = qs.filter(participant__pseudonym=participant_pseudonym)
    if stimulus_key:
        qs = qs.filter(stimulus__key=stimulus_key)
    return qs.order_by("id")


def stimulus_get_public(*, public_id: str) -> Stimulus:
    return Stimulus.objects.only("image", "public_id").get(public_id=public_id)


def stimulus_list(*, study: Study) -> QuerySet[Stimulus]:
    return Stimulus.objects.filter(study=study).order_by("key")


def participant_answer_records(*, participant: Participant) -> list[AnswerRecord]:
    """The participant's answers to main and repeat trials, as the quality checks read them."""
    ttype = participant.study.trial_type
    rows = (
        Response.objects.filter(
            participant=participant, kind__in=[Trial.Kind.MAIN, Trial.Kind.REPEAT]
        )
        .order_by("position")
        .values_list("top_class", "p1_pct", "second_class", "p2_pct", "value")
    )
    return [
        AnswerRecord(
            trial_type=ttype,
            top_class=top,
            p1_pct=p1,
            second_class=second,
            p2_pct=p2,
            value=value,
        )
        for top, p1, second, p2, value in rows
    ]


def study_settings(*, study: Study) -> dict[str, Any]:
    """The study's interface settings over the defaults of its trial type."""
    return {**study_settings_defaults(study.trial_type), **study.settings}


def stimulus_frames(*, stimulus: Stimulus) -> dict[tuple[str, int], StimulusImage]:
    return {(f.role, f.index): f for f in stimulus.frames.all()}


def iri_row_counts(*, stimuli: list[Stimulus]) -> dict[int, int]:
    rows = (
        StimulusImage.objects.filter(stimulus__in=stimuli, role="row")
        .values("stimulus_id")
        .annotate(n=Count("id"))
    )
    return {r["stimulus_id"]: r["n"] for r in rows}


def iri_row_targets(*, stimulus_id: int) -> list[int]:
    """For a clustering set, the true column (target index) of each IRI row, by row index."""
    metas = (
        StimulusImage.objects.filter(stimulus_id=stimulus_id, role="row")
        .order_by("index")
        .values_list("meta", flat=True)
    )
    return [int(meta["target"]) for meta in metas]


def frame_get_public(*, public_id: str) -> StimulusImage:
    return StimulusImage.objects.only("image", "public_id").get(public_id=public_id)


# Prolific fills these placeholders in the study URL with the worker's ids.
PROLIFIC_QUERY = (
    "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
)
MTURK_QUERY = "workerId=...&assignmentId=...&hitId=..."


def study_entry_links(*, study: Study, base_url: str) -> dict[str, str]:
    """The links to give the crowd platforms, and where participants are sent at the end."""
    entry = f"{base_url.rstrip('/')}/s/{study.slug}/"
    return {
        "direct": entry,
        "prolific": f"{entry}?{PROLIFIC_QUERY}",
        "mturk": f"{entry}?{MTURK_QUERY}",
        "completion_code": study.completion_code,
        # Where each platform's workers are sent at the end (MTurk's are posted back to it).
        "completion_url": _with_code(study.completion_url, study.completion_code),
        "prolific_completion_url": _with_code(study.prolific_completion_url, study.completion_code),
    }


def _with_code(url: str, code: str) -> str:
    """The completion address with the code in it, or "" (show the code only).

    Checked again here although every way in validates it: the completion page links to and
    redirects to this address, so anything but http(s) (a `javascript:` URL stored before
    validation, or written around it) is dropped and the code shown instead.
    """
    filled = url.replace("{code}", code) if url and code else ""
    return filled if is_web_url(filled) else ""


def participant_list(*, study: Study, stage: str | None = None) -> QuerySet[Participant]:
    qs = Participant.objects.filter(study=study).select_related("batch")
    if stage:
        qs = qs.filter(stage=stage)
    return qs.order_by("id")


def participant_find(*, study: Study, external_id: str = "", token: str = "") -> Participant | None:
    qs = Participant.objects.filter(study=study)
    if token:
        return qs.filter(token=token).first()
    return qs.filter(external_id=external_id).first() if external_id else None


@dataclass(frozen=True)
class BatchProgress:
    number: int
    target: int
    completed: int
    in_progress: int

    @property
    def percent(self) -> int:
        return round(100 * self.completed / self.target) if self.target else 0


@dataclass(frozen=True)
class Monitor:
    stages: dict[str, int]
    batches: list[BatchProgress]
    responses: int
    median_rt_ms: float | None
    stimuli_answered: int
    stimuli_total: int
    min_answers_per_stimulus: int
    # Completion per stimulus: how many stimuli have 0, 1, 2, ... main-trial answers.
    answers_histogram: dict[int, int]
    recent_exclusions: list[dict[str, Any]]
    # Quality flags (never refusals): answers under the study's min_response_ms, and sessions
    # that answered every trial the same way, with the most recent flagged participants.
    too_fast_responses: int
    straight_lining_participants: int
    flagged: list[dict[str, Any]]


def study_monitor(*, study: Study) -> Monitor:
    """Live progress of a study, in a handful of aggregate queries (no per-row loops)."""
    stages = dict(
        Participant.objects.filter(study=study)
        .values_list("stage")
        .annotate(n=Count("id"))
        .values_list("stage", "n")
    )
    holding = [*Participant.HOLDING_STAGES]
    batch_rows = (
        Batch.objects.filter(study=study)
        .annotate(
            done=Count("participants", filter=Q(participants__stage=Participant.Stage.COMPLETED)),
            active=Count("participants", filter=Q(participants__stage__in=holding)),
        )
        .order_by("number")
        .values_list("number", "target", "done", "active")
    )
    per_stimulus = list(
        Stimulus.objects.filter(study=study)
        .annotate(n=Count("responses", filter=Q(responses__kind=Trial.Kind.MAIN)))
        .values_list("n", flat=True)
    )
    rts = Response.objects.filter(study=study).order_by("rt_ms").values_list("rt_ms", flat=True)
    n_responses = rts.count()
    median = None
    if n_responses:
        # The middle row(s) by index: the median without loading every response time.
        lower = rts[(n_responses - 1) // 2]
        upper = rts[n_responses // 2]
        median = (lower + upper) / 2
    recent = [
        dict(row)
        for row in Participant.objects.filter(
            study=study,
            stage__in=[
                Participant.Stage.EXCLUDED,
                Participant.Stage.EXPIRED,
                Participant.Stage.RETURNED,
            ],
        )
        .order_by("-updated_at")
        .values("external_id", "token", "stage", "updated_at")[:10]
    ]
    flagged_qs = Participant.objects.filter(
        Q(fast_answers__gt=0) | Q(straight_lining=True), study=study
    )
    flagged = [
        dict(row)
        for row in flagged_qs.order_by("-updated_at").values(
            "external_id", "token", "fast_answers", "straight_lining"
        )[:10]
    ]
    return Monitor(
        too_fast_responses=Response.objects.filter(study=study, too_fast=True).count(),
        straight_lining_participants=flagged_qs.filter(straight_lining=True).count(),
        flagged=flagged,
        stages=stages,
        batches=[BatchProgress(*row) for row in batch_rows],
        responses=n_responses,
        median_rt_ms=median,
        stimuli_answered=sum(1 for n in per_stimulus if n),
        stimuli_total=len(per_stimulus),
        min_answers_per_stimulus=min(per_stimulus, default=0),
        answers_histogram=dict(sorted(Counter(per_stimulus).items())),
        recent_exclusions=recent,
    )


# --- study builder -------------------------------------------------------------------------


def image_set_list_for_user(*, user_id: int | None) -> QuerySet[ImageSet]:
    """Image sets the user may build stimuli from: their own uploads, and shared sets (no
    owner: the demo shapes and sets imported with `manage.py import_images`), with n_images."""
    if user_id is None:
        return ImageSet.objects.none()
    return (
        ImageSet.objects.filter(Q(owner_id=user_id) | Q(owner__isnull=True))
        .annotate(n_images=Count("images"))
        .order_by("name")
    )


def image_set_get_for_user(*, name: str, user_id: int | None) -> ImageSet:
    """One image set the user may use, by name; raises ImageSet.DoesNotExist otherwise."""
    return image_set_list_for_user(user_id=user_id).get(name=name)


def batch_list(*, study: Study) -> QuerySet[Batch]:
    """The study's batches in order, with n_items (stimuli in the batch)."""
    return Batch.objects.filter(study=study).annotate(n_items=Count("items")).order_by("number")
