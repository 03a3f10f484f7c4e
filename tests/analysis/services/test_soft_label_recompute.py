from collections.abc import Callable

import numpy as np
import pytest

from analysis import services
from analysis.aggregation import Method
from analysis.models import SoftLabel
from elicitation.models import Response, Stimulus, Study, Trial
from tests.conftest import answer_all_trials, categorical_answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def answered_study(make_study: Callable[..., Study]) -> Study:
    # one batch of two stimuli, one repeat, two participants with different answers
    study = make_study(n_stimuli=2, batch_size=2, repeats=1, participants_per_batch=2)
    a = categorical_answer(top_class="Cat", p1=60, second_class="Dog", p2=20, impossible=[])
    b = categorical_answer(top_class="Dog", p1=100, second_class=None, p2=None, impossible=[])
    answer_all_trials(study, "a", lambda _trial: a)
    answer_all_trials(study, "b", lambda _trial: b)
    return study


def _expected_vectors() -> tuple[np.ndarray, np.ndarray]:
    # Hand-derived from docs/methods/soft-labels.md, clean-top2-clamp, γ = 0.1, K = 10
    # (no impossible classes):
    # a: Cat .6, Dog .2 (S = .8 < 1) and 0.2 spread over the 8 other classes → .025 each.
    a = np.full(10, 0.025)
    a[3], a[5] = 0.6, 0.2
    # b: Dog 1.0 (S = 1): renormalise, then γ = .1 spread over the 9 others, Dog × 0.9.
    b = np.full(10, 0.1 / 9)
    b[5] = 0.9
    return a, b


def test_recompute_stores_the_mean_with_counts_and_method(answered_study: Study) -> None:
    # given
    stimulus = answered_study.stimuli.first()
    a, b = _expected_vectors()
    repeats_of_a = Response.objects.filter(
        stimulus=stimulus, kind=Trial.Kind.REPEAT, participant__external_id="a"
    ).count()
    repeats_of_b = Response.objects.filter(
        stimulus=stimulus, kind=Trial.Kind.REPEAT, participant__external_id="b"
    ).count()
    # when
    [label] = services.soft_label_recompute(stimulus=stimulus)
    # then (repeats count as extra annotations by default)
    rows = [a] * (1 + repeats_of_a) + [b] * (1 + repeats_of_b)
    np.testing.assert_allclose(label.probs, np.mean(rows, axis=0), atol=1e-12)
    assert label.n_annotations == len(rows)
    assert label.n_annotators == 2
    assert label.method == "clean-top2-clamp"
    assert label.params == {"gamma": 0.1, "smoothing": 0.0, "include_repeats": True}


def test_recompute_twice_gives_one_identical_row(answered_study: Study) -> None:
    # given
    stimulus = answered_study.stimuli.first()
    first = services.soft_label_recompute(stimulus=stimulus)[0]
    # when
    services.soft_label_recompute(stimulus=stimulus)
    # then
    rows = SoftLabel.objects.filter(stimulus=stimulus)
    assert rows.count() == 1
    assert rows.get().probs == first.probs


def test_excluding_repeats_uses_only_main_trials(answered_study: Study) -> None:
    # given
    stimulus = answered_study.stimuli.first()
    a, b = _expected_vectors()
    method = Method(name="clean-top2-clamp", include_repeats=False)
    # when
    [label] = services.soft_label_recompute(stimulus=stimulus, method=method)
    # then
    np.testing.assert_allclose(label.probs, (a + b) / 2, atol=1e-12)
    assert (label.n_annotations, label.n_annotators) == (2, 2)


def test_a_stored_second_method_is_refreshed_with_the_default(answered_study: Study) -> None:
    # given a label stored under top1 as well
    stimulus = answered_study.stimuli.first()
    services.soft_label_recompute(stimulus=stimulus, method=Method(name="top1", gamma=0.0))
    # when a later response triggers the default recompute
    labels = services.soft_label_recompute(stimulus=stimulus)
    # then both methods are refreshed
    assert sorted(label.method for label in labels) == ["clean-top2-clamp", "top1"]
    assert SoftLabel.objects.filter(stimulus=stimulus).count() == 2


def test_study_aggregate_labels_every_answered_stimulus(answered_study: Study) -> None:
    # when
    n = services.study_aggregate(study=answered_study, method=Method(name="simselect2"))
    # then: simselect2 gives a: Cat .5 Dog .5 and b: Dog 1, averaged per stimulus
    labels = SoftLabel.objects.filter(study=answered_study, method="simselect2")
    assert n == 2
    assert labels.count() == 2
    for label in labels:
        reps_a = label.stimulus.responses.filter(participant__external_id="a").count()
        reps_b = label.stimulus.responses.filter(participant__external_id="b").count()
        expected = np.zeros(10)
        expected[3] = 0.5 * reps_a / (reps_a + reps_b)
        expected[5] = (0.5 * reps_a + reps_b) / (reps_a + reps_b)
        np.testing.assert_allclose(label.probs, expected, atol=1e-12)


def test_stimulus_without_responses_has_no_label(make_study: Callable[..., Study]) -> None:
    # given
    stimulus = Stimulus.objects.filter(study=make_study()).first()
    # when
    labels = services.soft_label_recompute(stimulus=stimulus)
    # then
    assert labels == []
    assert SoftLabel.objects.exists() is False
