"""Stale marks and coalesced refreshes (analysis/recompute_services.py)."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db.models import QuerySet
from django.utils import timezone

from analysis import recompute_services, tasks
from analysis.models import PendingRecompute, SoftLabel
from elicitation.models import Response, Study
from tests.conftest import answer_all_trials, categorical_answer

pytestmark = pytest.mark.django_db

Target = PendingRecompute.Target


def _version(object_id: int, target: str = Target.SOFT_LABELS) -> int | None:
    row = PendingRecompute.objects.filter(target=target, object_id=object_id).first()
    return None if row is None else row.version


def test_only_the_answer_that_makes_a_stimulus_stale_asks_for_a_sweep(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given: nothing pending for stimuli 41 and 42
    # when: three answers to 41 and one to 42 arrive before any sweep ran
    with (
        mock.patch.object(tasks.soft_label_sweep, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        for stimulus_id in (41, 41, 41, 42):
            recompute_services.results_mark_stale(
                trial_type=Study.TrialType.CATEGORICAL, study_id=7, stimulus_id=stimulus_id
            )
    # then: two new marks asked, and only the first raised the flag and enqueued the sweep
    assert len(callbacks) == 2
    delay.assert_called_once_with()
    assert (_version(41), _version(42)) == (3, 1)
    assert _version(0, Target.SOFT_LABEL_SWEEP) == 1


def test_interface_analyses_are_marked_per_study_and_debounced(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # when: answers to two stimuli of one mixing-factor study
    with (
        mock.patch.object(tasks.study_analysis_recompute, "apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        for stimulus_id in (1, 2):
            recompute_services.results_mark_stale(
                trial_type=Study.TrialType.MIXING_FACTOR, study_id=7, stimulus_id=stimulus_id
            )
    # then: one refresh of the study, scheduled a debounce interval later
    apply_async.assert_called_once_with(
        (7,), countdown=recompute_services.STUDY_ANALYSIS_DEBOUNCE_S
    )
    assert _version(7, Target.STUDY_ANALYSIS) == 2
    assert PendingRecompute.objects.filter(target=Target.SOFT_LABELS).exists() is False


def test_a_refresh_with_no_answer_arriving_clears_the_mark_after_one_round() -> None:
    # given
    recompute_services.pending_mark(target=Target.SOFT_LABELS, object_id=5)
    refresh = mock.Mock()
    # when
    busy = recompute_services.pending_refresh(
        target=Target.SOFT_LABELS, object_id=5, refresh=refresh, rounds=3
    )
    # then
    assert busy is False
    assert refresh.call_count == 1
    assert _version(5) is None


def test_an_answer_arriving_during_a_refresh_gets_a_round_of_its_own() -> None:
    # given: the first refresh round is overtaken by an answer (its mark bumps the version)
    recompute_services.pending_mark(target=Target.SOFT_LABELS, object_id=5)
    arrivals = iter([True, False])

    def refresh() -> None:
        if next(arrivals):
            recompute_services.pending_mark(target=Target.SOFT_LABELS, object_id=5)

    # when
    busy = recompute_services.pending_refresh(
        target=Target.SOFT_LABELS, object_id=5, refresh=refresh, rounds=3
    )
    # then: a second round read that answer, and only then was the mark cleared
    assert busy is False
    assert next(arrivals, "done") == "done"
    assert _version(5) is None


def test_a_target_still_busy_after_its_rounds_keeps_its_mark() -> None:
    # given: every round is overtaken by a new answer
    recompute_services.pending_mark(target=Target.SOFT_LABELS, object_id=5)

    def refresh() -> None:
        recompute_services.pending_mark(target=Target.SOFT_LABELS, object_id=5)

    # when
    busy = recompute_services.pending_refresh(
        target=Target.SOFT_LABELS, object_id=5, refresh=refresh, rounds=2
    )
    # then: the caller is told to enqueue another refresh, and the mark is still there
    assert busy is True
    assert _version(5) == 3


def test_a_refresh_without_a_mark_recomputes_once() -> None:
    refresh = mock.Mock()
    busy = recompute_services.pending_refresh(
        target=Target.SOFT_LABELS, object_id=5, refresh=refresh, rounds=3
    )
    assert busy is False
    assert refresh.call_count == 1
    assert PendingRecompute.objects.exists() is False


def test_reconcile_returns_old_marks_once_and_restarts_their_clock() -> None:
    # given: one mark older than HMIX_RECOMPUTE_RECONCILE_AFTER_S (its task was lost), one fresh
    now = timezone.now()
    for object_id, age in ((1, timedelta(minutes=5)), (2, timedelta(seconds=1))):
        PendingRecompute.objects.create(
            target=Target.SOFT_LABELS, object_id=object_id, requested_at=now - age
        )
    # when
    first = recompute_services.pending_reconcile(now=now)
    second = recompute_services.pending_reconcile(now=now + timedelta(seconds=1))
    # then
    assert first == [(Target.SOFT_LABELS, 1)]
    assert second == []
    assert PendingRecompute.objects.get(object_id=1).requested_at == now


def test_the_reconcile_task_refreshes_labels_whose_task_was_lost(
    make_study: Callable[..., Study],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given: a stored answer whose refresh never ran (enqueueing was lost with its process)
    study = make_study(n_stimuli=1, batch_size=1, repeats=0)
    with mock.patch.object(tasks.soft_label_recompute, "delay"):
        answer_all_trials(study, "LOST", lambda _: categorical_answer(impossible=[]))
    stimulus = study.stimuli.get()
    PendingRecompute.objects.filter(object_id=stimulus.id).update(
        requested_at=timezone.now() - timedelta(minutes=5)
    )
    assert SoftLabel.objects.exists() is False
    # when
    n = tasks.pending_recomputes_reconcile.delay().get()
    # then
    assert n == 1
    assert SoftLabel.objects.get(stimulus=stimulus).n_annotations == 1
    assert PendingRecompute.objects.exists() is False


def _sweep_flag_up() -> bool:
    return PendingRecompute.objects.filter(target=Target.SOFT_LABEL_SWEEP).exists()


def test_a_sweep_refreshes_every_stale_stimulus_together_and_lowers_the_flag() -> None:
    # given: three stale stimuli and a raised flag
    for stimulus_id in (1, 2, 3):
        recompute_services.pending_mark(target=Target.SOFT_LABELS, object_id=stimulus_id)
    assert recompute_services._sweep_flag_raise() is True
    refresh = mock.Mock()
    # when: the sweep runs, then (SWEEP_INTERVAL_S later) looks again
    caught_up = recompute_services.soft_label_sweep(refresh=refresh, passes=5)
    flag_up_meanwhile = _sweep_flag_up()
    again = recompute_services.soft_label_sweep(refresh=refresh, passes=5)
    # then: one refresh of all three; the flag stayed up until the second look found nothing
    assert (caught_up, flag_up_meanwhile, again) == (True, True, False)
    refresh.assert_called_once()
    assert sorted(refresh.call_args.args[0]) == [1, 2, 3]
    assert PendingRecompute.objects.exists() is False


def test_a_mark_bumped_during_a_sweep_pass_is_refreshed_by_the_next_pass() -> None:
    # given: stimulus 1 is stale, and an answer to it arrives during the first refresh
    recompute_services.pending_mark(target=Target.SOFT_LABELS, object_id=1)
    recompute_services._sweep_flag_raise()
    calls: list[list[int]] = []

    def refresh(ids: list[int]) -> None:
        calls.append(sorted(ids))
        if len(calls) == 1:
            recompute_services.pending_mark(target=Target.SOFT_LABELS, object_id=1)

    # when: sweeps run until one finds nothing left
    sweeps = 1
    while recompute_services.soft_label_sweep(refresh=refresh, passes=5):
        sweeps += 1
    # then: the second pass read the late answer, and only then was the mark cleared
    assert (sweeps, calls) == (3, [[1], [1]])
    assert PendingRecompute.objects.exists() is False


def test_a_sweep_still_busy_after_its_passes_keeps_the_flag_up() -> None:
    # given: every pass is overtaken by a new answer
    recompute_services.pending_mark(target=Target.SOFT_LABELS, object_id=1)
    recompute_services._sweep_flag_raise()

    def refresh(ids: list[int]) -> None:
        recompute_services.pending_mark(target=Target.SOFT_LABELS, object_id=1)

    # when
    busy = recompute_services.soft_label_sweep(refresh=refresh, passes=2)
    # then: the caller is told to enqueue the next sweep; nobody else will, the flag is up
    assert busy is True
    assert _sweep_flag_up() is True
    assert _version(1) == 2


def test_a_sweep_that_finds_a_mark_after_lowering_the_flag_raises_it_again() -> None:
    # given: a raised flag and no stale mark; a mark is committed just after the sweep lowers
    # the flag, by an answer that saw the flag still up (and so enqueued nothing)
    recompute_services._sweep_flag_raise()
    real_delete = QuerySet.delete
    arrived: list[int] = []

    def delete_then_an_answer_commits(self: QuerySet[Any]) -> Any:
        result = real_delete(self)
        if self.model is PendingRecompute and not arrived:
            arrived.append(9)
            recompute_services.pending_mark(target=Target.SOFT_LABELS, object_id=9)
        return result

    refresh = mock.Mock()
    # when
    with mock.patch.object(QuerySet, "delete", delete_then_an_answer_commits):
        busy = recompute_services.soft_label_sweep(refresh=refresh, passes=5)
        done = recompute_services.soft_label_sweep(refresh=refresh, passes=5)
    # then: the sweep looked again, raised the flag and refreshed the late mark
    assert arrived == [9]
    assert (busy, done) == (True, False)
    refresh.assert_called_once_with([9])
    assert PendingRecompute.objects.exists() is False


def test_the_sweep_task_refreshes_the_labels_of_answers_given_in_eager_mode(
    make_study: Callable[..., Study],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given / when: two participants answer; each commit runs its callbacks (the sweep, eagerly)
    study = make_study(n_stimuli=2, batch_size=2, repeats=0, participants_per_batch=2)
    with django_capture_on_commit_callbacks(execute=True):
        for pid in ("E1", "E2"):
            answer_all_trials(study, pid, lambda _: categorical_answer(impossible=[]))
    # then
    labels = SoftLabel.objects.filter(study=study)
    assert sorted(label.n_annotations for label in labels) == [2, 2]
    assert PendingRecompute.objects.exists() is False


def test_reconcile_enqueues_one_sweep_for_a_lost_sweep() -> None:
    # given: a flag raised five minutes ago by a sweep that died, and its stale mark
    old = timezone.now() - timedelta(minutes=5)
    for target, object_id in ((Target.SOFT_LABEL_SWEEP, 0), (Target.SOFT_LABELS, 3)):
        PendingRecompute.objects.create(target=target, object_id=object_id, requested_at=old)
    # when
    with mock.patch.object(tasks.soft_label_sweep, "delay") as delay:
        n = tasks.pending_recomputes_reconcile.delay().get()
    # then
    assert n == 2
    delay.assert_called_once_with()


def test_a_refresh_task_for_a_deleted_stimulus_drops_its_mark() -> None:
    # given
    recompute_services.pending_mark(target=Target.SOFT_LABELS, object_id=999_999)
    # when
    tasks.soft_label_recompute.delay(999_999)
    # then
    assert PendingRecompute.objects.exists() is False


def test_a_study_whose_answers_a_construction_refuses_does_not_stall_the_others(
    make_study: Callable[..., Study], caplog: pytest.LogCaptureFixture
) -> None:
    # given: two stale stimuli; one study's stored answer is one its construction refuses (an
    # imported 150 % under the clean construction)
    bad = make_study(n_stimuli=1, batch_size=1, repeats=0)
    good = make_study(n_stimuli=1, batch_size=1, repeats=0)
    for study, pid in ((bad, "BAD"), (good, "GOOD")):
        answer_all_trials(study, pid, lambda _: categorical_answer(impossible=[]))
    Response.objects.filter(study=bad).update(source=Response.Source.IMPORTED, p1_pct=150.0)
    assert PendingRecompute.objects.filter(target=Target.SOFT_LABELS).count() == 2
    # when
    tasks.soft_label_sweep.delay()
    # then: the good study is labelled, the bad one is logged, and nothing stays stale
    assert SoftLabel.objects.get(study=good).n_annotations == 1
    assert SoftLabel.objects.filter(study=bad).exists() is False
    assert f"Soft labels of study {bad.id} could not be refreshed" in caplog.text
    assert PendingRecompute.objects.exists() is False
