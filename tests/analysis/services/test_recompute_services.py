"""Stale marks and coalesced refreshes (analysis/recompute_services.py)."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from analysis import recompute_services, tasks
from analysis.models import PendingRecompute, SoftLabel
from elicitation.models import Study
from tests.conftest import answer_all_trials, categorical_answer

pytestmark = pytest.mark.django_db

Target = PendingRecompute.Target


def _version(object_id: int, target: str = Target.SOFT_LABELS) -> int | None:
    row = PendingRecompute.objects.filter(target=target, object_id=object_id).first()
    return None if row is None else row.version


def test_only_the_answer_that_makes_a_stimulus_stale_enqueues_a_refresh(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given: nothing pending for stimulus 41
    # when: three answers arrive before any refresh ran
    with (
        mock.patch.object(tasks.soft_label_recompute, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        for _ in range(3):
            recompute_services.results_mark_stale(
                trial_type=Study.TrialType.CATEGORICAL, study_id=7, stimulus_id=41
            )
    # then
    assert len(callbacks) == 1
    delay.assert_called_once_with(41)
    assert _version(41) == 3


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
    # given: one mark older than RECONCILE_AFTER (its task was lost), one fresh
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


def test_a_refresh_task_for_a_deleted_stimulus_drops_its_mark() -> None:
    # given
    recompute_services.pending_mark(target=Target.SOFT_LABELS, object_id=999_999)
    # when
    tasks.soft_label_recompute.delay(999_999)
    # then
    assert PendingRecompute.objects.exists() is False
