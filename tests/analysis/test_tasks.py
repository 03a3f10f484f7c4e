import uuid
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest

from analysis.models import PendingRecompute, SoftLabel
from analysis.tasks import soft_label_recompute, soft_label_sweep, study_aggregate
from elicitation import selectors, services
from elicitation.models import Participant
from tests.conftest import answer_remaining_trials, categorical_answer
from tests.factories import StimulusFactory, StudyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def delay() -> Iterator[mock.MagicMock]:
    # Answers mark their stimulus stale and ask for a sweep of every stale stimulus.
    with mock.patch.object(soft_label_sweep, "delay") as patched:
        yield patched


def _snapshot() -> list[tuple[Any, ...]]:
    return list(
        SoftLabel.objects.order_by("stimulus_id", "method", "params_key").values_list(
            "id",
            "stimulus_id",
            "method",
            "params_key",
            "probs",
            "n_annotations",
            "n_annotators",
            "entropy",
        )
    )


def test_response_record_marks_its_stimulus_and_enqueues_one_sweep_on_commit(
    participant_in_trials: Participant,
    delay: mock.MagicMock,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    trial = selectors.trial_get_next(participant=participant_in_trials)
    assert trial is not None
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.response_record(
            participant=participant_in_trials,
            trial_id=trial.id,
            client_key=uuid.uuid4(),
            rt_ms=800,
            answer=categorical_answer(),
        )
        enqueued_before_commit = delay.call_count
    # then
    assert enqueued_before_commit == 0
    assert len(callbacks) == 1
    delay.assert_called_once_with()
    assert PendingRecompute.objects.filter(
        target=PendingRecompute.Target.SOFT_LABELS, object_id=trial.stimulus_id
    ).exists()


def test_response_record_replayed_client_key_enqueues_nothing(
    participant_in_trials: Participant,
    delay: mock.MagicMock,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    trial = selectors.trial_get_next(participant=participant_in_trials)
    assert trial is not None
    fields: dict[str, Any] = {
        "participant": participant_in_trials,
        "trial_id": trial.id,
        "client_key": uuid.uuid4(),
        "rt_ms": 800,
        "answer": categorical_answer(),
    }
    with django_capture_on_commit_callbacks(execute=True):
        services.response_record(**fields)
    delay.reset_mock()
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _, created = services.response_record(**fields)
    # then
    assert created is False
    assert callbacks == []
    delay.assert_not_called()


def test_soft_label_recompute_task_run_twice_leaves_the_same_state(
    participant_in_trials: Participant,
) -> None:
    # given: answers stored, but no commit in this test transaction, so nothing was enqueued
    answer_remaining_trials(participant_in_trials, lambda _trial: categorical_answer(), rt_ms=800)
    stimulus_ids = sorted({t.stimulus_id for t in participant_in_trials.trials.all()})
    assert SoftLabel.objects.exists() is False
    # when
    for stimulus_id in stimulus_ids:
        soft_label_recompute.delay(stimulus_id)
    first = _snapshot()
    for stimulus_id in stimulus_ids:
        soft_label_recompute.delay(stimulus_id)
    # then
    assert _snapshot() == first
    assert [row[1] for row in first] == stimulus_ids
    assert all(row[2] == "clean-top2-clamp" and row[5] == 2 and row[6] == 1 for row in first)


def test_study_aggregate_task_run_twice_leaves_the_same_state(
    participant_in_trials: Participant,
) -> None:
    # given
    answer_remaining_trials(participant_in_trials, lambda _trial: categorical_answer(), rt_ms=800)
    study = participant_in_trials.study
    params = {"gamma": 0.1}
    # when
    study_aggregate.delay(study.id, "clean-top2-clamp", params)
    first = _snapshot()
    study_aggregate.delay(study.id, "clean-top2-clamp", params)
    # then
    assert _snapshot() == first
    assert len(first) == 2


def _gone_stimulus_id() -> int:
    stimulus = StimulusFactory(study=StudyFactory())
    stimulus_id = stimulus.id
    stimulus.delete()
    return stimulus_id


def _gone_study_id() -> int:
    study = StudyFactory()
    study_id = study.id
    study.delete()
    return study_id


@pytest.mark.parametrize(
    ("send", "gone_id"),
    [
        pytest.param(lambda i: soft_label_recompute.delay(i), _gone_stimulus_id, id="stimulus"),
        pytest.param(
            lambda i: study_aggregate.delay(i, "clean-top2-clamp", {}), _gone_study_id, id="study"
        ),
    ],
)
def test_task_for_a_gone_row_is_a_no_op(
    send: Callable[[int], Any], gone_id: Callable[[], int]
) -> None:
    # given
    row_id = gone_id()
    # when
    result = send(row_id)
    # then
    assert result.get() is None
    assert SoftLabel.objects.exists() is False
