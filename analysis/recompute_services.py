"""Keeping stored results fresh while answers arrive: mark stale, refresh once per burst.

The collection side calls `results_mark_stale` for every stored answer, inside the transaction
that stores it. A refresh recomputes from the stored answers and clears a mark only at the
version it read, i.e. only if no answer arrived meanwhile (see PendingRecompute). So:
- a burst of answers on one stimulus costs about one recompute, not one per answer;
- an answer is never left out: either the refresh that clears its mark read it, or the mark
  stays and the target is refreshed again;
- a lost task (worker killed, broker restarted) leaves its mark, and `pending_reconcile`
  (periodic) enqueues it again.

Soft labels are refreshed by a sweep: one task at a time takes every stale stimulus (up to
SWEEP_BATCH per pass), recomputes them together and clears their marks; once it has caught up
it looks again SWEEP_INTERVAL_S later, and stops when it finds none left.
Under load that turns hundreds of answers a second into a few bulk refreshes a second instead
of one task each. The sweep flag (a SOFT_LABEL_SWEEP row) says a sweep is queued or running;
an answer whose mark is new raises it after its commit and enqueues a sweep only if it was down.
A sweep lowers the flag only once it finds no mark, then looks once more, so a mark committed
while the flag was up is always seen by some sweep.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from analysis.models import PendingRecompute
from elicitation.models import Study

Target = PendingRecompute.Target

# Interface B–F analyses re-read the whole study (and IRI scoring draws 2×2,000 bootstrap
# replicates), so they are debounced: the first answer after a refresh schedules the next one
# this many seconds later, and every answer in that window rides along.
STUDY_ANALYSIS_DEBOUNCE_S = 2.0
# A soft-label refresh is cheap (one stimulus); it starts at once and, while answers keep
# arriving, re-runs up to this many times before handing over to a fresh task in the queue.
SOFT_LABEL_ROUNDS = 3
# Stale stimuli refreshed together by one sweep pass, and full passes before a sweep hands over
# to a fresh task (so a worker is released now and then, e.g. for a warm shutdown).
SWEEP_BATCH = 500
SWEEP_PASSES = 50
# Once a sweep has caught up, the next one looks again this much later: a sweep that looked
# again at once would spend a pass (eight statements and the maths) on every answer or two,
# while waiting lets the answers of the interval share one pass. It bounds how stale a label
# gets under load (with the pass itself), well inside the 2-second freshness goal.
SWEEP_INTERVAL_S = 0.5

_TABLE = PendingRecompute._meta.db_table


def pending_mark(*, target: str, object_id: int) -> bool:
    """Mark the target stale; True when it was not already (the caller enqueues a refresh).

    One statement, atomic under concurrency: INSERT ... ON CONFLICT bumps the version of an
    existing mark and RETURNING tells which happened (a fresh row has version 1). The row stays
    locked until the caller's transaction ends, which is what makes a concurrent refresh wait
    for this answer before deciding whether its read was complete.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TABLE} (target, object_id, version, requested_at) "  # noqa: S608
            "VALUES (%s, %s, 1, %s) ON CONFLICT (target, object_id) "
            f"DO UPDATE SET version = {_TABLE}.version + 1 RETURNING version",
            [target, object_id, timezone.now()],
        )
        (version,) = cursor.fetchone()
    return bool(version == 1)


def results_mark_stale(*, trial_type: str, study_id: int, stimulus_id: int) -> None:
    """The seam between collection and analysis: "an answer to this stimulus was stored".

    Call inside the transaction that stores the answer. Schedules the refresh after commit, and
    only when this answer made the target stale (the others are covered by that refresh).
    """
    from analysis import tasks  # local import: tasks import the services that import this one

    if trial_type == Study.TrialType.CATEGORICAL:
        if pending_mark(target=Target.SOFT_LABELS, object_id=stimulus_id):
            transaction.on_commit(soft_label_sweep_request)
    elif pending_mark(target=Target.STUDY_ANALYSIS, object_id=study_id):
        transaction.on_commit(
            lambda: tasks.study_analysis_recompute.apply_async(
                (study_id,), countdown=STUDY_ANALYSIS_DEBOUNCE_S
            )
        )


def _sweep_flag_raise() -> bool:
    """Raise the sweep flag; True if it was down (the caller enqueues the sweep).

    DO NOTHING rather than DO UPDATE: it takes no lock on a raised flag, so answers never queue
    behind one another on this row.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TABLE} (target, object_id, version, requested_at) "  # noqa: S608
            "VALUES (%s, 0, 1, %s) ON CONFLICT (target, object_id) DO NOTHING RETURNING id",
            [Target.SOFT_LABEL_SWEEP, timezone.now()],
        )
        return cursor.fetchone() is not None


def soft_label_sweep_request() -> None:
    """After a new stale mark was committed: make sure a sweep will see it."""
    from analysis import tasks

    if _sweep_flag_raise():
        tasks.soft_label_sweep.delay()


def soft_label_sweep(*, refresh: Callable[[list[int]], object], passes: int) -> bool:
    """Refresh the stale stimuli, SWEEP_BATCH at a time, until it has caught up.

    `refresh` recomputes the given stimuli. Returns False when no mark was left (the flag is
    down); True when the sweep caught up with a partial pass, or made `passes` full passes:
    the flag stays raised and the caller enqueues the next sweep (SWEEP_INTERVAL_S later if it
    caught up, to let answers gather).
    """
    sweep = PendingRecompute.objects.filter(target=Target.SOFT_LABEL_SWEEP)
    stale = PendingRecompute.objects.filter(target=Target.SOFT_LABELS)
    for _ in range(passes):
        oldest = stale.order_by("requested_at").values_list("object_id", "version")
        marks = list(oldest[:SWEEP_BATCH])
        if not marks:
            sweep.delete()
            # A mark committed by an answer that saw the flag still up is visible now.
            if not stale.exists() or not _sweep_flag_raise():
                return False
            continue
        # A heartbeat for pending_reconcile: this sweep is alive.
        sweep.update(requested_at=timezone.now())
        refresh([object_id for object_id, _ in marks])
        _delete_at_versions(Target.SOFT_LABELS, marks)
        if len(marks) < SWEEP_BATCH:
            return True
    return True


def _delete_at_versions(target: str, marks: list[tuple[int, int]]) -> None:
    rows = ", ".join(["(%s, %s)"] * len(marks))
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {_TABLE} WHERE target = %s "  # noqa: S608
            f"AND (object_id, version) IN (VALUES {rows})",
            [target, *(value for mark in marks for value in mark)],
        )


def _version(target: str, object_id: int) -> int | None:
    return (
        PendingRecompute.objects.filter(target=target, object_id=object_id)
        .values_list("version", flat=True)
        .first()
    )


def pending_refresh(
    *, target: str, object_id: int, refresh: Callable[[], object], rounds: int
) -> bool:
    """Run `refresh` (a recompute from the stored answers) until the target's mark is cleared.

    Returns True when answers were still arriving after `rounds` refreshes: the mark stays and
    the caller enqueues another refresh. Without a mark (a duplicate delivery, a direct call)
    it refreshes once: recomputes are idempotent, so that is only wasted work.

    Ordering is what makes it complete: the version is read before the answers, and the mark is
    deleted only at that version. An answer stored meanwhile bumped the version (its row lock
    makes the DELETE wait for its commit), so the mark survives and another round reads it.
    """
    for _ in range(rounds):
        version = _version(target, object_id)
        refresh()
        if version is None:
            return False
        deleted, _ = PendingRecompute.objects.filter(
            target=target, object_id=object_id, version=version
        ).delete()
        if deleted or _version(target, object_id) is None:
            return False
    return True


def pending_drop(*, target: str, object_id: int) -> None:
    """Forget the mark of a target whose object no longer exists."""
    PendingRecompute.objects.filter(target=target, object_id=object_id).delete()


def pending_reconcile(*, now: datetime | None = None) -> list[tuple[str, int]]:
    """Marks old enough that their refresh was lost; the periodic task enqueues them again.

    A stale soft-label mark or a sweep flag without a heartbeat stands for a lost sweep. A
    duplicate refresh is harmless (idempotent, and it clears the mark at most once).
    """
    now = now or timezone.now()
    # A mark older than this with no refresh in sight is assumed lost with its task.
    reconcile_after = timedelta(seconds=settings.HMIX_RECOMPUTE_RECONCILE_AFTER_S)
    rows = list(
        PendingRecompute.objects.filter(requested_at__lt=now - reconcile_after)
        .order_by("requested_at")
        .values_list("id", "target", "object_id")[:1000]
    )
    # Restart their clock, so a refresh that is merely queued behind a backlog is not enqueued
    # again every minute.
    PendingRecompute.objects.filter(id__in=[r[0] for r in rows]).update(requested_at=now)
    return [(target, object_id) for _, target, object_id in rows]
