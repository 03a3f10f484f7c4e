# Pure soft-label maths: no database. Expected numbers come from
# docs/methods/soft-labels.md (worked examples, 4 places) or are derived by hand below.
import ast
import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import aggregation
from analysis.aggregation import (
    CONSTRUCTIONS,
    GAMMA_CONSTRUCTIONS,
    AggregatedLabel,
    Annotation,
    Method,
    aggregate,
    clean_top2_clamp,
    construct,
    construct_many,
    entropy,
    label_smoothing,
    label_summary,
)

CLASSES = [
    "Airplane",
    "Automobile",
    "Bird",
    "Cat",
    "Deer",
    "Dog",
    "Frog",
    "Horse",
    "Ship",
    "Truck",
]
K = len(CLASSES)
LEGACY = ("cifar10s-top2-clamp", "hmix-2023")
NEW = tuple(name for name in CONSTRUCTIONS if name not in LEGACY)
DOC_ATOL = 5e-5  # the spec rounds its worked examples to 4 places


def idx(name: str) -> int:
    return CLASSES.index(name)


def ann(
    top: str,
    p1: float,
    second: str | None = None,
    p2: float | None = None,
    impossible: Iterable[str] = (),
) -> Annotation:
    return Annotation(
        top=idx(top),
        p1=p1,
        second=None if second is None else idx(second),
        p2=p2,
        impossible=frozenset(idx(c) for c in impossible),
    )


def all_but(*kept: str) -> list[str]:
    return [c for c in CLASSES if c not in kept]


def vec(default: float = 0.0, **mass: float) -> np.ndarray:
    v = np.full(K, default)
    for name, value in mass.items():
        v[idx(name)] = value
    return v


def run(name: str, a: Annotation, **params: float) -> np.ndarray:
    return CONSTRUCTIONS[name](a, K, **params)


# ---------------------------------------------------------------------------------------------
# cifar10s-top2-clamp: every worked example in docs/methods/soft-labels.md#cifar10s-examples
# ---------------------------------------------------------------------------------------------

CIFAR10S_EXAMPLES = [
    pytest.param(
        ann("Cat", 60, "Dog", 20, ["Airplane", "Automobile", "Ship", "Truck", "Frog"]),
        vec(Cat=0.6, Dog=0.2, Bird=0.0667, Deer=0.0667, Horse=0.0667),
        id="remainder-spread-over-possible",
    ),
    pytest.param(
        ann("Truck", 100, impossible=all_but("Airplane", "Automobile", "Truck")),
        vec(Truck=0.9, Airplane=0.05, Automobile=0.05),
        id="certain-top-clamped-by-gamma",
    ),
    pytest.param(
        ann("Horse", 100, "Deer", 10, ["Dog"]),
        vec(0.0143, Horse=0.8182, Deer=0.0818, Dog=0.0),
        id="over-100-renormalised-then-clamped",
    ),
    pytest.param(
        ann("Cat", 100, impossible=all_but("Cat")),
        vec(Cat=1.0),
        id="k-zero-one-hot",
    ),
    pytest.param(
        ann("Deer", 75, "Deer", 25, ["Airplane", "Automobile", "Ship", "Truck"]),
        vec(Deer=0.25, Bird=0.15, Cat=0.15, Dog=0.15, Frog=0.15, Horse=0.15),
        id="q1-same-class-overwrites",
    ),
    pytest.param(
        ann("Ship", 20, "Truck", 10),
        vec(0.0875, Ship=0.2, Truck=0.1),
        id="nothing-impossible",
    ),
    pytest.param(
        ann("Cat", 60, "Dog", 20, all_but("Cat", "Dog")),
        vec(Cat=0.75, Dog=0.25),
        id="k-zero-remainder-dropped",
    ),
]


@pytest.mark.parametrize(("annotation", "expected"), CIFAR10S_EXAMPLES)
def test_cifar10s_top2_clamp_reproduces_worked_examples(
    annotation: Annotation, expected: np.ndarray
) -> None:
    # given a worked example from the spec
    # when
    result = run("cifar10s-top2-clamp", annotation)
    # then
    np.testing.assert_allclose(result, expected, atol=DOC_ATOL)
    assert result.dtype == np.float64


# ---------------------------------------------------------------------------------------------
# hmix-2023: both worked examples, and where it must agree with the legacy construction
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        pytest.param(
            ann("Truck", 100, impossible=all_but("Airplane", "Automobile", "Truck")),
            vec(Truck=0.9091, Airplane=0.0455, Automobile=0.0455),
            id="s-equals-1",
        ),
        pytest.param(
            ann("Horse", 100, "Deer", 10, ["Dog"]),
            vec(0.0130, Horse=0.8636, Deer=0.0455, Dog=0.0),
            id="s-above-1",
        ),
    ],
)
def test_hmix_2023_reproduces_worked_examples(annotation: Annotation, expected: np.ndarray) -> None:
    # given a worked example from the spec
    # when
    result = run("hmix-2023", annotation)
    # then
    np.testing.assert_allclose(result, expected, atol=DOC_ATOL)


@pytest.mark.parametrize(
    "annotation",
    [
        pytest.param(ann("Cat", 60, "Dog", 20, ["Frog"]), id="s-below-1"),
        pytest.param(ann("Cat", 100, impossible=all_but("Cat")), id="k-zero-s-equals-1"),
        pytest.param(ann("Cat", 100, "Dog", 50, all_but("Cat", "Dog")), id="k-zero-s-above-1"),
        pytest.param(ann("Deer", 75, "Deer", 25), id="q1-overwrite"),
    ],
)
def test_hmix_2023_equals_cifar10s_outside_k_nonzero_and_s_at_least_1(
    annotation: Annotation,
) -> None:
    # given a response where the spec says the two legacy constructions agree
    # when
    hmix = run("hmix-2023", annotation)
    legacy = run("cifar10s-top2-clamp", annotation)
    # then
    np.testing.assert_array_equal(hmix, legacy)


def test_hmix_2023_entry_floored_to_zero_gets_no_share() -> None:
    # given S = 1.01 > 1 and a second class below gamma / nnz = 0.05
    annotation = ann("Cat", 100, "Dog", 1)
    # when
    result = run("hmix-2023", annotation)
    # then Cat 1 - 0.05, Dog floored at 0 and left out of the zero classes, 8 others 0.1 / 8;
    # total 1.05
    np.testing.assert_allclose(result, vec(0.0125 / 1.05, Cat=0.95 / 1.05, Dog=0.0), rtol=1e-12)


def test_hmix_2023_gamma_changes_clamp() -> None:
    # given the S == 1 worked example with gamma 0.2
    annotation = ann("Truck", 100, impossible=all_but("Airplane", "Automobile", "Truck"))
    # when
    result = run("hmix-2023", annotation, gamma=0.2)
    # then Truck 1, Airplane/Automobile 0.1 each, renormalised by 1.2
    np.testing.assert_allclose(
        result, vec(Truck=1 / 1.2, Airplane=0.1 / 1.2, Automobile=0.1 / 1.2), rtol=1e-12
    )


# ---------------------------------------------------------------------------------------------
# Legacy quirks reproduced on purpose
# ---------------------------------------------------------------------------------------------


def test_cifar10s_q2_counts_double_selected_class_in_k() -> None:
    # given Dog stated and ticked impossible: |P| = 8, two entries > 0, so k = 6 although seven
    # possible classes are at zero
    annotation = ann("Cat", 60, "Dog", 20, ["Dog", "Airplane"])
    # when
    result = run("cifar10s-top2-clamp", annotation)
    # then each of the 7 gets 0.2 / 6 while Dog keeps 0.2; total 0.8 + 7 * 0.2 / 6
    total = 0.8 + 7 * 0.2 / 6
    expected = vec((0.2 / 6) / total, Cat=0.6 / total, Dog=0.2 / total, Airplane=0.0)
    np.testing.assert_allclose(result, expected, rtol=1e-12)


def test_cifar10s_q2_negative_k_is_reproduced_with_negative_entries() -> None:
    # given top and second both ticked impossible and only Bird possible: k = 1 - 2 = -1
    annotation = ann("Cat", 30, "Dog", 10, all_but("Bird"))
    # when
    result = run("cifar10s-top2-clamp", annotation)
    # then Bird gets 0.6 / -1, the sum is -0.2, and the published algorithm divides by it
    np.testing.assert_allclose(result, vec(Cat=-1.5, Dog=-0.5, Bird=3.0), atol=1e-12)


def test_cifar10s_q2_zero_sum_falls_back_to_top_class() -> None:
    # given the negative-k quirk cancelling exactly: 0.3 + 0.2 + 0.5 / -1 == 0
    annotation = ann("Cat", 30, "Dog", 20, all_but("Bird"))
    # when
    result = run("cifar10s-top2-clamp", annotation)
    # then no NaN: all mass on the top class
    np.testing.assert_array_equal(result, vec(Cat=1.0))


def test_cifar10s_q3_exact_comparison_treats_rounded_100_percent_as_below_1() -> None:
    # given 92.3 % + 7.7 %, whose float sum is 0.9999999999999999
    annotation = ann("Cat", 92.3, "Dog", 7.7)
    # when
    result = run("cifar10s-top2-clamp", annotation)
    # then the S < 1 branch spreads a ~1e-16 remainder instead of clamping by gamma
    assert 0.0 < result[idx("Airplane")] < 1e-15
    np.testing.assert_allclose(result, vec(Cat=0.923, Dog=0.077), atol=1e-15)


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_all_impossible_without_mass_falls_back_to_top_class(name: str) -> None:
    # given no stated mass and every class impossible: 0 / 0 in the published algorithm
    annotation = ann("Cat", 0, impossible=CLASSES)
    # when
    result = run(name, annotation)
    # then
    np.testing.assert_array_equal(result, vec(Cat=1.0))


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_accepts_typed_percent_above_100(name: str) -> None:
    # given a typed 150 % (the exclusion rules flag it; the construction must still recompute)
    annotation = ann("Cat", 150)
    # when
    result = run(name, annotation)
    # then legacy: renormalise to 1, then clamp by gamma; hmix-2023: Cat 1.5 - 0.1, each of the
    # 9 others 0.1 / 9, total 1.5
    expected = {
        "cifar10s-top2-clamp": vec(0.1 / 9, Cat=0.9),
        "hmix-2023": vec(0.1 / 9 / 1.5, Cat=1.4 / 1.5),
    }[name]
    np.testing.assert_allclose(result, expected, rtol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.2, 0.5])
def test_cifar10s_gamma_sets_clamp(gamma: float) -> None:
    # given a certain response with two other possible classes
    annotation = ann("Truck", 100, impossible=all_but("Airplane", "Automobile", "Truck"))
    # when
    result = run("cifar10s-top2-clamp", annotation, gamma=gamma)
    # then
    expected = vec(Truck=1 - gamma, Airplane=gamma / 2, Automobile=gamma / 2)
    np.testing.assert_allclose(result, expected, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# clean-top2-clamp
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        pytest.param(*CIFAR10S_EXAMPLES[i].values, id=CIFAR10S_EXAMPLES[i].id)
        for i in (0, 1, 2, 3, 5, 6)
    ],
)
def test_clean_agrees_with_legacy_when_no_quirk_applies(
    annotation: Annotation, expected: np.ndarray
) -> None:
    # given a worked example without s == t or a double select
    # when
    result = clean_top2_clamp(annotation, K)
    # then
    np.testing.assert_allclose(result, expected, atol=DOC_ATOL)


def test_clean_double_selected_class_gets_nothing_and_k_counts_possible_zeros() -> None:
    # given Dog stated at 20 % but ticked impossible (legacy: k = 6, Dog keeps 0.2)
    annotation = ann("Cat", 60, "Dog", 20, ["Dog", "Airplane"])
    # when
    result = clean_top2_clamp(annotation, K)
    # then S = 0.6 and the 7 possible classes at zero share 0.4
    np.testing.assert_allclose(result, vec(0.4 / 7, Cat=0.6, Dog=0.0, Airplane=0.0), rtol=1e-12)


def test_clean_top_ticked_impossible_spreads_everything_over_possible() -> None:
    # given the top class ticked impossible and nothing else stated
    annotation = ann("Cat", 100, impossible=["Cat", "Dog"])
    # when
    result = clean_top2_clamp(annotation, K)
    # then
    np.testing.assert_allclose(result, vec(1 / 8, Cat=0.0, Dog=0.0), rtol=1e-12)


def test_clean_rounded_100_percent_counts_as_1() -> None:
    # given 92.3 % + 7.7 % (float sum 0.9999999999999999)
    annotation = ann("Cat", 92.3, "Dog", 7.7)
    # when
    result = clean_top2_clamp(annotation, K)
    # then the gamma clamp applies: stated x 0.9, 8 others 0.1 / 8
    np.testing.assert_allclose(result, vec(0.0125, Cat=0.923 * 0.9, Dog=0.077 * 0.9), rtol=1e-9)


def test_clean_negative_k_case_of_legacy_is_a_probability_vector() -> None:
    # given the input that makes the legacy construction produce negative entries
    annotation = ann("Cat", 30, "Dog", 10, all_but("Bird"))
    # when
    result = clean_top2_clamp(annotation, K)
    # then the impossible Cat and Dog get nothing and Bird takes everything
    np.testing.assert_array_equal(result, vec(Bird=1.0))


@pytest.mark.parametrize("name", ["clean-top2-clamp", "top1"])
def test_all_impossible_without_mass_falls_back_to_top_class(name: str) -> None:
    # given every class ticked impossible, so nothing can receive mass
    annotation = ann("Cat", 60, impossible=CLASSES)
    # when
    result = run(name, annotation)
    # then
    np.testing.assert_array_equal(result, vec(Cat=1.0))


# ---------------------------------------------------------------------------------------------
# top1, uniform, renormalise, simselect2
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "annotation", "expected"),
    [
        pytest.param(
            "top1",
            ann("Cat", 60, "Dog", 20, ["Airplane", "Automobile", "Ship", "Truck", "Frog"]),
            vec(Cat=0.6, Bird=0.1, Deer=0.1, Dog=0.1, Horse=0.1),
            id="top1-second-ignored-remainder-spread",
        ),
        pytest.param("top1", ann("Cat", 100, "Dog", 30), vec(Cat=1.0), id="top1-no-gamma-clamp"),
        pytest.param(
            "top1", ann("Cat", 60, impossible=all_but("Cat")), vec(Cat=1.0), id="top1-k-zero"
        ),
        pytest.param(
            "top1", ann("Cat", 50, "Cat", 20), vec(0.5 / 9, Cat=0.5), id="top1-same-second-ok"
        ),
        pytest.param(
            "uniform",
            ann("Cat", 60, "Dog", 20, ["Airplane", "Automobile"]),
            vec(0.025, Cat=0.6, Dog=0.2),
            id="uniform-ignores-impossible",
        ),
        pytest.param(
            "uniform",
            ann("Cat", 80, "Dog", 40),
            vec(Cat=2 / 3, Dog=1 / 3),
            id="uniform-above-1-renormalised",
        ),
        pytest.param("uniform", ann("Cat", 0), vec(0.1), id="uniform-no-mass"),
        pytest.param(
            "renormalise",
            ann("Cat", 60, "Dog", 20, ["Airplane"]),
            vec(Cat=0.75, Dog=0.25),
            id="renormalise",
        ),
        pytest.param("renormalise", ann("Cat", 0), vec(Cat=1.0), id="renormalise-no-mass"),
        pytest.param(
            "simselect2", ann("Cat", 90, "Dog", 5), vec(Cat=0.5, Dog=0.5), id="simselect2-pair"
        ),
        pytest.param("simselect2", ann("Cat", 40), vec(Cat=1.0), id="simselect2-single"),
        pytest.param(
            "simselect2",
            Annotation(top=idx("Cat"), p1=40, second=idx("Dog"), p2=None, impossible=frozenset()),
            vec(Cat=1.0),
            id="second-without-p2-is-no-second",
        ),
    ],
)
def test_simple_constructions(name: str, annotation: Annotation, expected: np.ndarray) -> None:
    # given a response
    # when
    result = run(name, annotation)
    # then
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-15)


def test_uniform_with_every_class_stated_renormalises() -> None:
    # given K = 2 with both classes stated below 100 % in total: no class at zero to spread over
    annotation = Annotation(top=0, p1=30, second=1, p2=20, impossible=frozenset())
    # when
    result = CONSTRUCTIONS["uniform"](annotation, 2)
    # then
    np.testing.assert_allclose(result, [0.6, 0.4], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["clean-top2-clamp", "uniform", "renormalise", "simselect2"])
def test_same_top_and_second_rejected_by_new_constructions(name: str) -> None:
    # given s == t (quirk Q1 input)
    annotation = ann("Deer", 75, "Deer", 25)
    # when / then
    with pytest.raises(ValueError, match="second class equals top class"):
        run(name, annotation)


@pytest.mark.parametrize("name", list(CONSTRUCTIONS))
@pytest.mark.parametrize("second", ["Deer", "Cat"])
def test_a_second_class_without_p2_is_no_second_class_to_every_construction(
    name: str, second: str
) -> None:
    # given a published answer naming a second class (even the top one) with p2 left blank
    kept = ann("Cat", 70, second, None, ["Dog", second])
    # when
    got = run(name, kept)
    # then it is constructed exactly as the answer without a second class
    assert got.tolist() == run(name, ann("Cat", 70, None, None, ["Dog", second])).tolist()


@pytest.mark.parametrize("name", [n for n in NEW if n != "simselect2"])  # simselect2 ignores p1
@pytest.mark.parametrize("p1", [-1.0, 100.5, math.nan, math.inf])
def test_new_constructions_reject_invalid_percent(name: str, p1: float) -> None:
    # given a percent outside 0..100
    annotation = ann("Cat", p1)
    # when / then
    with pytest.raises(ValueError, match="p1"):
        run(name, annotation)


@pytest.mark.parametrize("name", LEGACY)
@pytest.mark.parametrize("p2", [-5.0, math.nan])
def test_legacy_constructions_reject_negative_or_nan_percent(name: str, p2: float) -> None:
    # given
    annotation = ann("Cat", 60, "Dog", p2)
    # when / then
    with pytest.raises(ValueError, match="p2"):
        run(name, annotation)


@pytest.mark.parametrize("name", list(CONSTRUCTIONS))
@pytest.mark.parametrize(
    "annotation",
    [
        Annotation(top=10, p1=50, second=None, p2=None, impossible=frozenset()),
        Annotation(top=-1, p1=50, second=None, p2=None, impossible=frozenset()),
        Annotation(top=0, p1=50, second=12, p2=10, impossible=frozenset()),
        Annotation(top=0, p1=50, second=None, p2=None, impossible=frozenset({10})),
    ],
    ids=["top-too-big", "top-negative", "second-too-big", "impossible-too-big"],
)
def test_out_of_range_class_index_rejected(name: str, annotation: Annotation) -> None:
    # given an index outside the 10 classes (numpy would silently wrap -1)
    # when / then
    with pytest.raises(ValueError, match="outside"):
        run(name, annotation)


@pytest.mark.parametrize("name", sorted(GAMMA_CONSTRUCTIONS))
@pytest.mark.parametrize("gamma", [-0.1, 1.5, math.nan])
def test_gamma_outside_unit_interval_rejected(name: str, gamma: float) -> None:
    # given / when / then
    with pytest.raises(ValueError, match="gamma"):
        run(name, ann("Cat", 100), gamma=gamma)


# ---------------------------------------------------------------------------------------------
# Label smoothing, Method, construct
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eps", "expected"),
    [(0.0, [1.0, 0.0, 0.0, 0.0]), (0.1, [0.925, 0.025, 0.025, 0.025]), (0.4, [0.7, 0.1, 0.1, 0.1])],
)
def test_label_smoothing(eps: float, expected: list[float]) -> None:
    # given a one-hot vector over K = 4
    v = np.array([1.0, 0.0, 0.0, 0.0])
    # when
    result = label_smoothing(v, eps)
    # then v * (1 - eps) + eps / K
    np.testing.assert_allclose(result, expected, rtol=1e-12)


@pytest.mark.parametrize("eps", [-0.1, 1.0, math.nan])
def test_label_smoothing_rejects_eps_outside_range(eps: float) -> None:
    # given / when / then
    with pytest.raises(ValueError, match="smoothing"):
        label_smoothing(np.array([1.0, 0.0]), eps)


def test_method_params_are_stable_json() -> None:
    # given
    method = Method(name="hmix-2023", gamma=0.2, smoothing=0, include_repeats=False)
    # when
    params = method.params()
    # then
    assert json.dumps(params) == '{"gamma": 0.2, "smoothing": 0.0, "include_repeats": false}'
    assert type(method.smoothing) is float


@pytest.mark.parametrize("name", list(CONSTRUCTIONS))
def test_method_round_trips_through_params(name: str) -> None:
    # given
    method = Method(name=name, gamma=0.3, smoothing=0.05, include_repeats=False)
    # when
    restored = Method.from_params(name, json.loads(json.dumps(method.params())))
    # then
    assert restored == method


def test_method_from_params_defaults() -> None:
    # given / when
    method = Method.from_params("clean-top2-clamp", {})
    # then
    assert method == Method(name="clean-top2-clamp", gamma=0.1, smoothing=0.0, include_repeats=True)


def test_method_unknown_name_lists_valid_names() -> None:
    # given / when / then
    with pytest.raises(ValueError, match="unknown construction 'top-3'") as excinfo:
        Method(name="top-3")
    for name in CONSTRUCTIONS:
        assert name in str(excinfo.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gamma": -0.01}, "gamma"),
        ({"gamma": 1.01}, "gamma"),
        ({"gamma": math.nan}, "gamma"),
        ({"gamma": True}, "gamma"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"smoothing": -0.5}, "smoothing"),
        ({"include_repeats": 1}, "include_repeats"),
    ],
)
def test_method_validation(kwargs: dict[str, object], match: str) -> None:
    # given / when / then
    with pytest.raises(ValueError, match=match):
        Method(name="cifar10s-top2-clamp", **kwargs)


@pytest.mark.parametrize(
    "params",
    [{"gamma": 0.1, "lambda": 1}, {"gamma": "0.1"}, {"include_repeats": "yes"}],
)
def test_method_from_params_rejects_bad_params(params: dict[str, object]) -> None:
    # given / when / then
    with pytest.raises(ValueError, match=r"unknown method parameters|must be"):
        Method.from_params("cifar10s-top2-clamp", params)


def test_method_gamma_boundaries_accepted() -> None:
    # given / when
    methods = [Method(name="hmix-2023", gamma=g) for g in (0, 1)]
    # then
    assert [m.gamma for m in methods] == [0.0, 1.0]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        pytest.param(
            Method(name="cifar10s-top2-clamp", gamma=0.2),
            vec(Truck=0.8, Airplane=0.1, Automobile=0.1),
            id="gamma-passed",
        ),
        pytest.param(
            Method(name="cifar10s-top2-clamp", smoothing=0.1),
            vec(0.01, Truck=0.9 * 0.9 + 0.01, Airplane=0.05 * 0.9 + 0.01, Automobile=0.055),
            id="smoothing-after-construction",
        ),
        pytest.param(Method(name="top1", gamma=0.5), vec(Truck=1.0), id="gamma-not-passed"),
        pytest.param(
            Method(name="simselect2", smoothing=0.5), vec(0.05, Truck=0.55), id="simselect2-smooth"
        ),
    ],
)
def test_construct(method: Method, expected: np.ndarray) -> None:
    # given the certain-Truck worked example
    annotation = ann("Truck", 100, impossible=all_but("Airplane", "Automobile", "Truck"))
    # when
    result = construct(annotation, K, method)
    # then
    np.testing.assert_allclose(result, expected, rtol=1e-12)


def test_construct_many_stacks_rows_in_order() -> None:
    # given
    annotations = [ann("Cat", 60, "Dog", 20), ann("Ship", 100), ann("Deer", 75, "Deer", 25)]
    method = Method(name="cifar10s-top2-clamp")
    # when
    result = construct_many(annotations, K, method)
    # then
    assert result.shape == (3, K)
    for row, annotation in zip(result, annotations, strict=True):
        np.testing.assert_array_equal(row, construct(annotation, K, method))


def test_construct_many_empty() -> None:
    # given / when
    result = construct_many([], K, Method(name="top1"))
    # then
    assert result.shape == (0, K)


# ---------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------

AGG_VECTORS = np.array(
    [
        [1.0, 0.0, 0.0],  # annotator a
        [0.0, 1.0, 0.0],  # annotator a, repeat
        [0.0, 0.0, 1.0],  # annotator b
    ]
)
AGG_IDS = ["a", "a", "b"]
AGG_REPEATS = [False, True, False]


@pytest.mark.parametrize(
    ("include_repeats", "per_annotator_first", "expected", "n_annotations"),
    [
        pytest.param(True, False, [1 / 3, 1 / 3, 1 / 3], 3, id="repeats-counted"),
        pytest.param(False, False, [0.5, 0.0, 0.5], 2, id="repeats-excluded"),
        pytest.param(True, True, [0.25, 0.25, 0.5], 3, id="per-annotator-first"),
        pytest.param(False, True, [0.5, 0.0, 0.5], 2, id="per-annotator-first-no-repeats"),
    ],
)
def test_aggregate(
    include_repeats: bool, per_annotator_first: bool, expected: list[float], n_annotations: int
) -> None:
    # given two annotators, one of whom answered the stimulus twice
    # when
    label = aggregate(
        AGG_VECTORS,
        AGG_IDS,
        AGG_REPEATS,
        include_repeats=include_repeats,
        per_annotator_first=per_annotator_first,
    )
    # then
    assert isinstance(label, AggregatedLabel)
    np.testing.assert_allclose(label.probs, expected, rtol=1e-15)
    assert label.n_annotations == n_annotations
    assert label.n_annotators == 2


def test_aggregate_counts_only_annotators_used() -> None:
    # given annotator c contributed only a repeat
    ids = ["a", "b", "c"]
    # when
    label = aggregate(AGG_VECTORS, ids, [False, False, True], include_repeats=False)
    # then
    assert (label.n_annotations, label.n_annotators) == (2, 2)
    np.testing.assert_allclose(label.probs, [0.5, 0.5, 0.0])


def test_aggregate_result_is_read_only() -> None:
    # given
    label = aggregate(AGG_VECTORS, AGG_IDS, AGG_REPEATS)
    # when / then
    with pytest.raises(ValueError, match="read-only"):
        label.probs[0] = 1.0


@pytest.mark.parametrize(
    ("vectors", "ids", "repeats", "kwargs", "match"),
    [
        pytest.param(np.zeros((0, 3)), [], [], {}, "no annotations", id="empty"),
        pytest.param(
            AGG_VECTORS[1:2],
            ["a"],
            [True],
            {"include_repeats": False},
            "no annotations",
            id="only-repeats-excluded",
        ),
        pytest.param(AGG_VECTORS, ["a", "b"], AGG_REPEATS, {}, "same length", id="ids-short"),
        pytest.param(AGG_VECTORS, AGG_IDS, [False], {}, "same length", id="flags-short"),
        pytest.param(np.ones(3), ["a"] * 3, [False] * 3, {}, "2-D", id="not-2d"),
    ],
)
def test_aggregate_rejects_bad_input(
    vectors: np.ndarray,
    ids: list[str],
    repeats: list[bool],
    kwargs: dict[str, bool],
    match: str,
) -> None:
    # given / when / then
    with pytest.raises(ValueError, match=match):
        aggregate(vectors, ids, repeats, **kwargs)


# ---------------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        ([1.0, 0.0, 0.0], 0.0),
        ([0.5, 0.5, 0.0], math.log(2)),
        ([0.25] * 4, math.log(4)),
        ([0.1] * 10, math.log(10)),
        ([0.75, 0.25], -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))),
    ],
)
def test_entropy_in_nats(p: list[float], expected: float) -> None:
    # given / when
    result = entropy(np.array(p))
    # then
    assert result == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_label_summary_against_mixup_label() -> None:
    # given a human label on a 50/50 mix of classes 0 and 1
    p = np.array([0.6, 0.3, 0.1])
    # when
    summary = label_summary(p, class1=0, class2=1, lam=0.5)
    # then mixup m = (0.5, 0.5, 0), middle M = (0.55, 0.4, 0.05)
    kl_p = 0.6 * math.log(0.6 / 0.55) + 0.3 * math.log(0.3 / 0.4) + 0.1 * math.log(0.1 / 0.05)
    kl_m = 0.5 * math.log(0.5 / 0.55) + 0.5 * math.log(0.5 / 0.4)
    assert summary.entropy == pytest.approx(entropy(p))
    assert (summary.max_prob, summary.argmax) == (0.6, 0)
    assert (summary.mass_class1, summary.mass_class2) == (0.6, 0.3)
    assert summary.tv_from_mixup == pytest.approx(0.2, rel=1e-12)
    assert summary.js_from_mixup == pytest.approx(0.5 * kl_p + 0.5 * kl_m, rel=1e-12)


@pytest.mark.parametrize(
    ("p", "lam", "tv", "js"),
    [
        pytest.param([0.25, 0.75, 0.0], 0.25, 0.0, 0.0, id="identical"),
        pytest.param([0.0, 0.0, 1.0], 0.3, 1.0, math.log(2), id="disjoint"),
    ],
)
def test_label_summary_divergence_bounds(p: list[float], lam: float, tv: float, js: float) -> None:
    # given / when
    summary = label_summary(np.array(p), class1=0, class2=1, lam=lam)
    # then
    assert summary.tv_from_mixup == pytest.approx(tv, abs=1e-12)
    assert summary.js_from_mixup == pytest.approx(js, abs=1e-12)


def test_label_summary_without_mix_reports_none() -> None:
    # given an unmixed image
    p = vec(Cat=0.7, Dog=0.3)
    # when
    summary = label_summary(p)
    # then
    assert summary.argmax == idx("Cat")
    assert summary.mass_class1 is None
    assert summary.mass_class2 is None
    assert summary.tv_from_mixup is None
    assert summary.js_from_mixup is None


@pytest.mark.parametrize(
    "kwargs",
    [{"lam": 0.5, "class1": 0}, {"class1": 0, "class2": 1, "lam": 1.5}, {"class1": 3}],
)
def test_label_summary_rejects_bad_arguments(kwargs: dict[str, float]) -> None:
    # given / when / then
    with pytest.raises(ValueError, match=r"lam|outside"):
        label_summary(np.array([0.5, 0.5, 0.0]), **kwargs)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

class_index = st.integers(min_value=0, max_value=K - 1)
integer_percent = st.integers(min_value=0, max_value=100).map(float)
any_percent = integer_percent | st.floats(min_value=0, max_value=100, allow_nan=False)


@st.composite
def annotations(
    draw: st.DrawFn, *, double_select: bool, percent: st.SearchStrategy[float] = any_percent
) -> Annotation:
    top = draw(class_index)
    second = draw(st.none() | class_index.filter(lambda j: j != top))
    impossible = draw(st.frozensets(class_index))
    if not double_select:  # the exclusion rules' "double select"
        impossible = frozenset(j for j in impossible if j not in (top, second))
    return Annotation(
        top=top,
        p1=draw(percent),
        second=second,
        p2=None if second is None else draw(percent),
        impossible=impossible,
    )


def assert_probability_vector(v: np.ndarray) -> None:
    assert v.shape == (K,)
    assert np.all(np.isfinite(v))
    assert np.all(v >= 0)
    assert math.fsum(v) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", list(CONSTRUCTIONS))
@settings(deadline=None)
@given(a=annotations(double_select=False), smoothing=st.sampled_from([0.0, 0.1]))
def test_every_construction_gives_probability_vector(
    name: str, a: Annotation, smoothing: float
) -> None:
    # given any valid response
    method = Method(name=name, smoothing=smoothing)
    # when
    v = construct(a, K, method)
    # then
    assert_probability_vector(v)


@pytest.mark.parametrize("name", NEW)
@settings(deadline=None)
@given(a=annotations(double_select=True), gamma=st.floats(min_value=0, max_value=1))
def test_new_constructions_survive_double_selects(name: str, a: Annotation, gamma: float) -> None:
    # given a response whose top or second class may also be ticked impossible
    # when
    v = construct(a, K, Method(name=name, gamma=gamma))
    # then
    assert_probability_vector(v)


@pytest.mark.parametrize("name", LEGACY)
@settings(deadline=None)
@given(a=annotations(double_select=True, percent=integer_percent))
def test_legacy_constructions_always_sum_to_one(name: str, a: Annotation) -> None:
    # given any response with typed whole percents, double selects included
    # when
    v = run(name, a)
    # then finite and summing to 1; non-negative unless the Q2 count went negative
    assert np.all(np.isfinite(v))
    assert math.fsum(v) == pytest.approx(1.0, abs=1e-9)
    k_count = (K - len(a.impossible)) - int(a.p1 > 0) - int((a.p2 or 0) > 0)
    if k_count >= 0:
        assert np.all(v >= 0)


@settings(deadline=None)
@given(
    rows=st.lists(
        st.tuples(annotations(double_select=False), st.sampled_from("abcd"), st.booleans()),
        min_size=1,
        max_size=12,
    ),
    data=st.data(),
)
def test_aggregate_independent_of_row_order(
    rows: list[tuple[Annotation, str, bool]], data: st.DataObject
) -> None:
    # given annotation vectors with their annotators and repeat flags, and a shuffled copy
    vectors = construct_many([r[0] for r in rows], K, Method(name="cifar10s-top2-clamp"))
    ids = [r[1] for r in rows]
    repeats = [r[2] for r in rows]
    order = data.draw(st.permutations(range(len(rows))))
    for include_repeats in (True, False):
        for per_annotator_first in (True, False):
            if not include_repeats and all(repeats):
                continue
            options = {
                "include_repeats": include_repeats,
                "per_annotator_first": per_annotator_first,
            }
            # when
            label = aggregate(vectors, ids, repeats, **options)
            shuffled = aggregate(
                vectors[order], [ids[i] for i in order], [repeats[i] for i in order], **options
            )
            # then bit-identical, and still a probability vector
            np.testing.assert_array_equal(label.probs, shuffled.probs)
            assert (label.n_annotations, label.n_annotators) == (
                shuffled.n_annotations,
                shuffled.n_annotators,
            )
            assert_probability_vector(label.probs)


# ---------------------------------------------------------------------------------------------
# The maths stays ORM-free (docs/architecture.md#layers)
# ---------------------------------------------------------------------------------------------


def test_aggregation_module_imports_nothing_from_django() -> None:
    # given
    tree = ast.parse(Path(aggregation.__file__).read_text())
    # when
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    # then
    assert imported
    assert [name for name in imported if name.split(".")[0] == "django"] == []
