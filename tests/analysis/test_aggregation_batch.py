# The vectorised constructions against the slow per-annotation reference kept in the tests
# (tests/analysis/reference_aggregation.py), on whole batches drawn by hypothesis.
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.aggregation import (
    CONSTRUCTIONS,
    Annotation,
    AnnotationBatch,
    Method,
    aggregate_groups,
    construct,
    construct_batch,
    entropy,
    entropy_rows,
)
from tests.analysis import reference_aggregation as reference

LEGACY = ("cifar10s-top2-clamp", "hmix-2023")
TOLERANCE = 1e-12


@st.composite
def batches(draw: st.DrawFn, *, name: str) -> tuple[int, list[Annotation]]:
    """K and a batch that `name` accepts: every quirk-triggering shape the input allows."""
    k = draw(st.integers(min_value=1, max_value=12))
    cls = st.integers(min_value=0, max_value=k - 1)
    legacy = name in LEGACY
    top100 = 300 if legacy else 100  # imported rows: typed percents above 100
    percent = st.integers(0, top100).map(float) | st.floats(0, top100, allow_nan=False)
    # Exactly 100 % (S == 1 takes its own branches), sums such as 92.3 + 7.7 that land a rounding
    # error away from 100 %, and zero.
    percent |= st.sampled_from([100.0, 60.0, 40.0, 0.0, 92.3, 7.7, 33.3, 66.7, 0.1, 99.9])
    rows = []
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        top = draw(cls)
        second = draw(st.none() | cls)
        if second == top and name not in (*LEGACY, "top1"):
            second = None  # the new constructions reject s == t (tested separately)
        p2 = draw(st.none() | percent)  # p2 without a second class and the reverse too
        rows.append(
            Annotation(
                top=top,
                p1=draw(percent),
                second=second,
                p2=p2,
                impossible=draw(st.frozensets(cls)),
            )
        )
    return k, rows


@pytest.mark.parametrize("name", list(CONSTRUCTIONS))
@settings(deadline=None, max_examples=300)
@given(
    data=st.data(),
    gamma=st.floats(min_value=0, max_value=1) | st.sampled_from([0.0, 0.1, 1.0]),
    smoothing=st.sampled_from([0.0, 0.1]) | st.floats(min_value=0, max_value=0.99),
)
def test_batch_equals_per_annotation_reference(
    name: str, data: st.DataObject, gamma: float, smoothing: float
) -> None:
    # given a batch of responses, double selects, Q1 overwrites and p > 100 included
    k, rows = data.draw(batches(name=name))
    method = Method(name=name, gamma=gamma, smoothing=smoothing)
    # when
    result = construct_batch(AnnotationBatch.from_annotations(rows, k), k, method)
    # then every row equals the slow reference, and the per-annotation API gives the same rows
    assert result.shape == (len(rows), k)
    for row, a in zip(result, rows, strict=True):
        expected = reference.construct(a, k, name, method.gamma, method.smoothing)
        np.testing.assert_allclose(row, expected, rtol=TOLERANCE, atol=TOLERANCE)
        np.testing.assert_array_equal(construct(a, k, method), row)


@settings(deadline=None, max_examples=200)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 4),  # stimulus
            st.integers(0, 3),  # annotator
            st.booleans(),  # repeat
            st.lists(st.floats(0, 1), min_size=4, max_size=4),
        ),
        max_size=30,
    ),
    include_repeats=st.booleans(),
)
def test_aggregate_groups_equals_reference_per_stimulus(
    rows: list[tuple[int, int, bool, list[float]]], include_repeats: bool
) -> None:
    # given annotation vectors of several stimuli, sorted by stimulus
    rows = sorted(rows, key=lambda r: r[0])
    vectors = np.array([r[3] for r in rows]).reshape(len(rows), 4)
    # when
    labels = aggregate_groups(
        vectors,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        include_repeats=include_repeats,
    )
    # then one label per stimulus that kept a row, equal to the fsum reference
    expected = {}
    for stimulus in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == stimulus]
        ref = reference.aggregate(
            [r[3] for r in mine],
            [r[1] for r in mine],
            [r[2] for r in mine],
            include_repeats=include_repeats,
        )
        if ref is not None:
            expected[stimulus] = ref
    assert labels.group_ids.tolist() == list(expected)
    for i, (mean, n_annotations, n_annotators) in enumerate(expected.values()):
        np.testing.assert_allclose(labels.probs[i], mean, rtol=0, atol=TOLERANCE)
        assert labels.n_annotations[i] == n_annotations
        assert labels.n_annotators[i] == n_annotators


def test_aggregate_groups_hand_computed() -> None:
    # given stimulus 7: annotator 1 twice (one a repeat) and annotator 2; stimulus 9: a repeat only
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.25, 0.75]])
    # when
    with_repeats = aggregate_groups(vectors, [7, 7, 7, 9], [1, 1, 2, 3], [False, True, False, True])
    without = aggregate_groups(
        vectors, [7, 7, 7, 9], [1, 1, 2, 3], [False, True, False, True], include_repeats=False
    )
    # then
    assert with_repeats.group_ids.tolist() == [7, 9]
    np.testing.assert_array_equal(with_repeats.probs, [[0.5, 0.5], [0.25, 0.75]])
    assert with_repeats.n_annotations.tolist() == [3, 1]
    assert with_repeats.n_annotators.tolist() == [2, 1]
    assert without.group_ids.tolist() == [7]
    np.testing.assert_array_equal(without.probs, [[0.75, 0.25]])
    assert (without.n_annotations.tolist(), without.n_annotators.tolist()) == ([2], [2])


def test_aggregate_groups_rejects_unsorted_groups() -> None:
    # given / when / then
    with pytest.raises(ValueError, match="sorted by group"):
        aggregate_groups(np.eye(2), [2, 1], [1, 1], [False, False])


def _batch(**overrides: object) -> AnnotationBatch:
    fields: dict[str, object] = {
        "top": [0, 1],
        "p1": [60.0, 50.0],
        "second": [1, -1],
        "p2": [20.0, math.nan],
        "impossible": np.zeros((2, 3), dtype=bool),
    }
    return AnnotationBatch.from_arrays(**{**fields, **overrides})


@pytest.mark.parametrize("name", ["clean-top2-clamp", "uniform", "renormalise", "simselect2"])
def test_batch_rejects_same_second_for_new_constructions(name: str) -> None:
    # given a second row whose second class equals its top class
    batch = _batch(second=[1, 1], p2=[20.0, 10.0])
    # when / then
    with pytest.raises(ValueError, match=r"second class equals top class \(1\)"):
        construct_batch(batch, 3, Method(name=name))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"top": [0, 3]}, "class index 3 is outside 0..2"),
        ({"second": [-2, -1]}, "class index -2 is outside 0..2"),
        ({"p1": [60.0, -1.0]}, "p1 must be a finite percentage >= 0, got -1.0"),
        ({"p1": [60.0, 101.0]}, "p1 must be at most 100, got 101.0"),
        ({"p2": [math.inf, math.nan]}, "p2 must be a finite percentage >= 0, got inf"),
        ({"impossible": np.zeros((2, 4), dtype=bool)}, "impossible mask has 4 classes"),
    ],
)
def test_batch_validation_names_the_first_problem(overrides: dict[str, object], match: str) -> None:
    # given / when / then
    with pytest.raises(ValueError, match=match):
        construct_batch(_batch(**overrides), 3, Method(name="clean-top2-clamp"))


def test_stored_nan_p2_is_bad_input_not_a_missing_p2() -> None:
    # given a p2 that was given as NaN (a missing p2 is p2_given False)
    batch = _batch(p2=[math.nan, math.nan], p2_given=[True, False])
    # when / then
    with pytest.raises(ValueError, match="p2 must be a finite percentage"):
        construct_batch(batch, 3, Method(name="cifar10s-top2-clamp"))


def test_batch_arrays_must_have_one_length() -> None:
    # given / when / then
    with pytest.raises(ValueError, match="one length N"):
        _batch(top=[0])


def test_entropy_rows_equals_entropy() -> None:
    # given
    p = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    # when
    rows = entropy_rows(p)
    # then
    assert rows.tolist() == [entropy(r) for r in p]
    assert rows[0] == pytest.approx(math.log(2), rel=1e-15)
