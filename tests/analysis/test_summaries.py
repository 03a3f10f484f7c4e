# Pure summaries of interfaces B, C and D: no database, no Django. Expected numbers follow
# docs/methods/interface-analyses.md and are derived by hand in the comments.
import ast
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import summaries
from analysis.summaries import (
    ALL,
    CONSTRUCT,
    SELECT,
    ConsistencySummary,
    MidpointAnswer,
    MidpointSummary,
    MixingAnswer,
    MixingLevelSummary,
    MixingStimulusSummary,
    confidence_from_slider,
    human_relabel,
    lam_hat_from_slider,
    midpoint_consistency,
    midpoint_summaries,
    mixing_by_lambda,
    mixing_by_stimulus,
    pearson,
)


def mix(
    stimulus: str,
    annotator: str,
    lam_true: float,
    lam_hat: float,
    confidence: float,
    is_repeat: bool = False,
) -> MixingAnswer:
    return MixingAnswer(
        stimulus=stimulus,
        annotator=annotator,
        lam_true=lam_true,
        lam_hat=lam_hat,
        confidence=confidence,
        is_repeat=is_repeat,
    )


def mid(
    pair: str,
    annotator: str,
    interface: str,
    start_step: int | None,
    chosen_step: int,
    is_repeat: bool = False,
) -> MidpointAnswer:
    return MidpointAnswer(
        pair=pair,
        annotator=annotator,
        interface=interface,
        start_step=start_step,
        chosen_step=chosen_step,
        is_repeat=is_repeat,
    )


# ---------------------------------------------------------------------------------------------
# Slider conversions (docs/user-guide/interfaces.md#mixing-factor)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slider", "expected"),
    [(0, 1.0), (100, 0.0), (50, 0.5), (25, 0.75), (10, 0.9), (7, 0.93), (99.5, 0.005)],
)
def test_lam_hat_from_slider(slider: float, expected: float) -> None:
    # given a mixing slider value (100% class 1 at the left)
    # when
    lam_hat = lam_hat_from_slider(slider)
    # then λ̂ = 1 − value/100, with no rounding residue (7 → 0.93, not 0.9299999999999999)
    assert lam_hat == expected


@pytest.mark.parametrize(("slider", "expected"), [(0, 0.0), (100, 1.0), (37, 0.37), (62.5, 0.625)])
def test_confidence_from_slider(slider: float, expected: float) -> None:
    # given / when
    confidence = confidence_from_slider(slider)
    # then c = value/100
    assert confidence == expected


@pytest.mark.parametrize("converter", [lam_hat_from_slider, confidence_from_slider])
@pytest.mark.parametrize("value", [-1, 100.5, 101, math.nan, math.inf, True, "50", None])
def test_slider_helpers_reject_values_outside_0_to_100(
    converter: Callable[[float], float], value: object
) -> None:
    # given a value no slider can produce
    # when / then
    with pytest.raises(ValueError, match="slider"):
        converter(value)


@pytest.mark.parametrize(
    "field", [{"lam_true": 1.5}, {"lam_hat": -0.1}, {"confidence": math.nan}, {"lam_hat": "0.5"}]
)
def test_mixing_answer_rejects_values_outside_unit_interval(field: dict[str, object]) -> None:
    # given
    values: dict[str, object] = {"lam_true": 0.5, "lam_hat": 0.5, "confidence": 0.5, **field}
    # when / then
    with pytest.raises(ValueError, match="must be"):
        MixingAnswer(stimulus="s", annotator="a", is_repeat=False, **values)


# ---------------------------------------------------------------------------------------------
# Interface B per stimulus
# ---------------------------------------------------------------------------------------------

# Dyadic values, so most expected numbers below are exact in binary floating point.
MIXING = [
    mix("s1", "a", 0.5, 0.25, 0.5),
    mix("s1", "b", 0.5, 0.75, 1.0),
    mix("s1", "a", 0.5, 0.5, 0.5, is_repeat=True),
    mix("s2", "c", 0.25, 0.5, 0.0),
]


def test_mixing_by_stimulus_with_repeats() -> None:
    # given MIXING; the repeat counts as an extra answer by default
    # when
    result = mixing_by_stimulus(list(reversed(MIXING)))
    # then, s1: λ̂ = 0.25, 0.75, 0.5 and c = 0.5, 1.0, 0.5
    #   mean λ̂ = 1.5 / 3 = 0.5; population SD = √((0.0625 + 0.0625 + 0) / 3) = √(0.125/3) ≈ 0.2041
    #   mean c = 2 / 3; relabel difference = 0.5 − 0.5 = 0
    #   λ̂·c = 0.125, 0.75, 0.25 (sum 1.125), Σc = 2 → weighted mean 0.5625
    #   hmix-weighted-relabel = 1.125 / 3 = 0.375 → difference 0.5 − 0.375 = 0.125
    # s2: a single answer with c = 0 → no confidence-weighted mean, SD 0
    assert result == [
        MixingStimulusSummary(
            stimulus="s1",
            lam_true=0.5,
            n=3,
            n_annotators=2,
            mean_lam_hat=0.5,
            sd_lam_hat=math.sqrt(0.125 / 3),
            mean_confidence=2 / 3,
            relabel_difference=0.0,
            confidence_weighted_mean=0.5625,
            hmix_weighted_relabel=0.375,
            hmix_weighted_difference=0.125,
        ),
        MixingStimulusSummary(
            stimulus="s2",
            lam_true=0.25,
            n=1,
            n_annotators=1,
            mean_lam_hat=0.5,
            sd_lam_hat=0.0,
            mean_confidence=0.0,
            relabel_difference=-0.25,
            confidence_weighted_mean=None,
            hmix_weighted_relabel=0.0,
            hmix_weighted_difference=0.25,
        ),
    ]
    assert result[0].sd_lam_hat == pytest.approx(0.2041241452)


def test_mixing_by_stimulus_without_repeats() -> None:
    # given MIXING without its repeat
    # when
    (s1, _s2) = mixing_by_stimulus(MIXING, include_repeats=False)
    # then, s1: λ̂ = 0.25, 0.75 and c = 0.5, 1.0
    #   mean 0.5, population SD 0.25, mean c 0.75
    #   Σλ̂c = 0.125 + 0.75 = 0.875, Σc = 1.5 → 7/12; hmix = 0.875 / 2 = 0.4375 → λ − it = 0.0625
    assert (s1.n, s1.n_annotators, s1.mean_lam_hat, s1.sd_lam_hat) == (2, 2, 0.5, 0.25)
    assert s1.mean_confidence == 0.75
    assert s1.confidence_weighted_mean == pytest.approx(7 / 12, rel=1e-15)
    assert (s1.hmix_weighted_relabel, s1.hmix_weighted_difference) == (0.4375, 0.0625)


def test_mixing_by_stimulus_rejects_conflicting_true_lambda() -> None:
    # given one stimulus recorded with two different true λ
    answers = [mix("s1", "a", 0.5, 0.5, 0.5), mix("s1", "b", 0.25, 0.5, 0.5)]
    # when / then
    with pytest.raises(ValueError, match="different λ"):
        mixing_by_stimulus(answers)


def test_mixing_by_stimulus_of_nothing_is_empty() -> None:
    # given / when / then
    assert mixing_by_stimulus([]) == []
    assert mixing_by_stimulus([mix("s", "a", 0.5, 0.5, 0.5, True)], include_repeats=False) == []


def test_human_relabel_is_mean_and_its_complement() -> None:
    # given a stimulus whose answers average λ̂ = (0.25 + 0.5) / 2 = 0.375
    answers = [mix("s", "a", 0.25, 0.25, 1.0), mix("s", "b", 0.25, 0.5, 0.5)]
    (summary,) = mixing_by_stimulus(answers)
    # when / then: 0.375 on class 1 (image 1), 1 − 0.375 on class 2
    assert human_relabel(summary) == (0.375, 0.625)


def test_human_relabel_per_annotator() -> None:
    # given annotator a's answers alone: λ̂ = 0.25 (main) and 0.5 (repeat) on s1
    answers = [a for a in MIXING if a.annotator == "a"]
    # when
    (s1,) = mixing_by_stimulus(answers)
    # then mean λ̂ = 0.375 → (0.375, 0.625)
    assert human_relabel(s1) == (0.375, 0.625)


# ---------------------------------------------------------------------------------------------
# Interface B per λ level
# ---------------------------------------------------------------------------------------------

LEVEL = [
    mix("s1", "a", 0.5, 0.25, 0.5),
    mix("s1", "b", 0.5, 0.75, 1.0),
    mix("s2", "a", 0.5, 0.5, 0.25),
    mix("s2", "b", 0.5, 1.0, 0.75, is_repeat=True),
    mix("s3", "a", 0.1, 0.0, 0.5),
]


def test_mixing_by_lambda() -> None:
    # given LEVEL
    # when
    result = mixing_by_lambda(LEVEL)
    # then, λ = 0.1: one answer → no SDs and no correlation; λ̂ = 0 is an extreme answer
    # λ = 0.5: λ̂ = 0.25, 0.75, 0.5, 1.0 and c = 0.5, 1.0, 0.25, 0.75
    #   mean λ̂ = 2.5 / 4 = 0.625; deviations ∓0.375, ±0.125 → Σd² = 0.3125 → SD = √(0.3125/3)
    #   median = (0.5 + 0.75) / 2 = 0.625
    #   |λ̂ − λ| = 0.25, 0.25, 0, 0.5 → mean 0.25
    #   mean c = 0.625; deviations −0.125, 0.375, −0.375, 0.125 → Σd² = 0.3125 → SD = √(0.3125/3)
    #   share at 0 or 1: one of four (λ̂ = 1.0)
    #   Pearson: error deviations 0, 0, −0.25, 0.25 → Σde·dc = 0.09375 + 0.03125 = 0.125,
    #   Σde² = 0.125 → r = 0.125 / √(0.125 · 0.3125) = √0.4 ≈ 0.6325
    assert result == [
        MixingLevelSummary(
            lam_true=0.1,
            n=1,
            mean_lam_hat=0.0,
            sd_lam_hat=None,
            median_lam_hat=0.0,
            mean_abs_error=0.1,
            mean_confidence=0.5,
            sd_confidence=None,
            share_extreme=1.0,
            error_confidence_correlation=None,
        ),
        MixingLevelSummary(
            lam_true=0.5,
            n=4,
            mean_lam_hat=0.625,
            sd_lam_hat=math.sqrt(0.3125 / 3),
            median_lam_hat=0.625,
            mean_abs_error=0.25,
            mean_confidence=0.625,
            sd_confidence=math.sqrt(0.3125 / 3),
            share_extreme=0.25,
            error_confidence_correlation=pytest.approx(math.sqrt(0.4), rel=1e-15),
        ),
    ]


def test_mixing_by_lambda_without_repeats() -> None:
    # given LEVEL without the λ̂ = 1.0 repeat
    # when
    (_low, half) = mixing_by_lambda(LEVEL, include_repeats=False)
    # then λ̂ = 0.25, 0.75, 0.5: n 3, mean 0.5, median 0.5, SD √(0.125/2) = 0.25, no extremes
    assert (half.n, half.mean_lam_hat, half.median_lam_hat, half.sd_lam_hat) == (3, 0.5, 0.5, 0.25)
    assert half.share_extreme == 0.0


def test_mixing_by_lambda_correlation_undefined_without_variance() -> None:
    # given two answers with the same confidence
    answers = [mix("s1", "a", 0.5, 0.25, 0.5), mix("s1", "b", 0.5, 1.0, 0.5)]
    # when
    (level,) = mixing_by_lambda(answers)
    # then c has no variance, so Pearson is undefined; the SD of c is 0, not None
    assert level.error_confidence_correlation is None
    assert level.sd_confidence == 0.0


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        ([1.0, 2.0, 3.0], [2.0, 4.0, 6.0], 1.0),
        ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], -1.0),
        ([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0], 0.8),  # Σdxdy = 4, Σdx² = Σdy² = 5
        ([1.0], [1.0], None),
        ([1.0, 1.0], [1.0, 2.0], None),
    ],
)
def test_pearson(x: list[float], y: list[float], expected: float | None) -> None:
    # given / when
    r = pearson(x, y)
    # then
    assert r == (None if expected is None else pytest.approx(expected, rel=1e-15))


def test_pearson_rejects_unpaired_values() -> None:
    # given / when / then
    with pytest.raises(ValueError, match="pair up"):
        pearson([1.0, 2.0], [1.0])


# ---------------------------------------------------------------------------------------------
# Interfaces C and D: midpoints
# ---------------------------------------------------------------------------------------------

MIDPOINTS = [
    mid("Cat-Dog", "p1", CONSTRUCT, 1, 5),
    mid("Cat-Dog", "p2", CONSTRUCT, 1, 5),
    mid("Cat-Dog", "p3", CONSTRUCT, 1, 4),
    mid("Cat-Dog", "p4", CONSTRUCT, 9, 6),
    mid("Cat-Dog", "p5", CONSTRUCT, 9, 7),
    mid("Car-Ship", "p1", CONSTRUCT, 1, 5),
    mid("Cat-Dog", "p6", SELECT, None, 5),
    mid("Cat-Dog", "p7", SELECT, None, 3),
    # repeats: Δ = 1, 0 (construct) and 0, 2 (select)
    mid("Cat-Dog", "p1", CONSTRUCT, 1, 6, is_repeat=True),
    mid("Car-Ship", "p1", CONSTRUCT, 1, 5, is_repeat=True),
    mid("Cat-Dog", "p6", SELECT, None, 5, is_repeat=True),
    mid("Cat-Dog", "p7", SELECT, None, 5, is_repeat=True),
]


def hist(**counts: int) -> tuple[int, ...]:
    return tuple(counts.get(f"s{step}", 0) for step in range(11))


def test_midpoint_summaries_groups_and_order() -> None:
    # given the main answers of MIDPOINTS
    # when
    result = midpoint_summaries(MIDPOINTS, include_repeats=False)
    # then per interface: pooled start steps (None) first, then by step; ALL before the pairs.
    # Interface D has no start step, so it has only the pooled groups.
    assert [(s.interface, s.start_step, s.pair, s.n) for s in result] == [
        (CONSTRUCT, None, ALL, 6),
        (CONSTRUCT, None, "Car-Ship", 1),
        (CONSTRUCT, None, "Cat-Dog", 5),
        (CONSTRUCT, 1, ALL, 4),
        (CONSTRUCT, 1, "Car-Ship", 1),
        (CONSTRUCT, 1, "Cat-Dog", 3),
        (CONSTRUCT, 9, ALL, 2),
        (CONSTRUCT, 9, "Cat-Dog", 2),
        (SELECT, None, ALL, 2),
        (SELECT, None, "Cat-Dog", 2),
    ]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param(
            (CONSTRUCT, None, "Cat-Dog"),
            # steps 5, 5, 4, 6, 7: Σ = 27 → mean 27/50 = 0.54; Σs² = 151, 5·151 − 27² = 26
            #   → variance 26 / (5·4·100) = 0.013; sorted 4 5 5 6 7 → median 0.5
            #   exactly 0.5: 2/5; within [0.4, 0.6] (steps 4..6): 4/5
            MidpointSummary(
                interface=CONSTRUCT,
                start_step=None,
                pair="Cat-Dog",
                n=5,
                mean=0.54,
                sd=math.sqrt(0.013),
                median=0.5,
                share_half=0.4,
                share_near_half=0.8,
                histogram=hist(s4=1, s5=2, s6=1, s7=1),
            ),
            id="construct-pooled-start-one-pair",
        ),
        pytest.param(
            (CONSTRUCT, 9, ALL),
            # steps 6, 7: mean 0.65; 2·85 − 13² = 1 → variance 1/200 = 0.005; median 13/20
            MidpointSummary(
                interface=CONSTRUCT,
                start_step=9,
                pair=ALL,
                n=2,
                mean=0.65,
                sd=math.sqrt(0.005),
                median=0.65,
                share_half=0.0,
                share_near_half=0.5,
                histogram=hist(s6=1, s7=1),
            ),
            id="construct-start-nine-all-pairs",
        ),
        pytest.param(
            (CONSTRUCT, 1, "Car-Ship"),
            # one answer at step 5: no SD
            MidpointSummary(
                interface=CONSTRUCT,
                start_step=1,
                pair="Car-Ship",
                n=1,
                mean=0.5,
                sd=None,
                median=0.5,
                share_half=1.0,
                share_near_half=1.0,
                histogram=hist(s5=1),
            ),
            id="single-answer",
        ),
        pytest.param(
            (SELECT, None, ALL),
            # steps 5, 3: mean 0.4; 2·34 − 8² = 4 → variance 4/200 = 0.02; median 8/20 = 0.4
            MidpointSummary(
                interface=SELECT,
                start_step=None,
                pair=ALL,
                n=2,
                mean=0.4,
                sd=math.sqrt(0.02),
                median=0.4,
                share_half=0.5,
                share_near_half=0.5,
                histogram=hist(s3=1, s5=1),
            ),
            id="select-all-pairs",
        ),
    ],
)
def test_midpoint_summary_values(
    key: tuple[str, int | None, str], expected: MidpointSummary
) -> None:
    # given the main answers of MIDPOINTS
    # when
    result = {
        (s.interface, s.start_step, s.pair): s
        for s in midpoint_summaries(MIDPOINTS, include_repeats=False)
    }
    # then
    assert result[key] == expected


def test_midpoint_summaries_count_repeats_by_default() -> None:
    # given every answer of MIDPOINTS, repeats included
    # when
    result = {(s.interface, s.start_step, s.pair): s for s in midpoint_summaries(MIDPOINTS)}
    # then (construct, start 1, Cat-Dog) gains p1's repeat at step 6: steps 5, 5, 4, 6
    assert result[(CONSTRUCT, 1, "Cat-Dog")].histogram == hist(s4=1, s5=2, s6=1)
    assert result[(CONSTRUCT, None, ALL)].n == 8
    assert result[(SELECT, None, ALL)].n == 4


def test_midpoint_near_half_band_includes_both_ends() -> None:
    # given answers at λ = 0.3, 0.4, 0.6 and 0.7
    answers = [mid("A-B", f"p{s}", SELECT, None, s) for s in (3, 4, 6, 7)]
    # when
    (pooled, _pair) = midpoint_summaries(answers)
    # then 0.4 and 0.6 are inside [0.4, 0.6], 0.3 and 0.7 are not; nothing is exactly 0.5
    assert (pooled.share_near_half, pooled.share_half) == (0.5, 0.0)


def test_midpoint_histogram_covers_both_ends_of_the_series() -> None:
    # given answers at λ = 0.0 and 1.0 (the original interface could not show them)
    answers = [mid("A-B", "p1", CONSTRUCT, 1, 0), mid("A-B", "p2", CONSTRUCT, 9, 10)]
    # when
    (pooled, *_rest) = midpoint_summaries(answers)
    # then
    assert pooled.histogram == hist(s0=1, s10=1)
    assert (pooled.mean, pooled.median) == (0.5, 0.5)


@pytest.mark.parametrize(
    "field",
    [
        {"interface": "slider"},
        {"chosen_step": 11},
        {"chosen_step": -1},
        {"chosen_step": 5.0},
        {"chosen_step": True},
        {"start_step": 11},
        {"start_step": 0.1},
        {"pair": ALL},
    ],
)
def test_midpoint_answer_rejects_bad_fields(field: dict[str, object]) -> None:
    # given
    values: dict[str, object] = {
        "pair": "A-B",
        "annotator": "p",
        "interface": CONSTRUCT,
        "start_step": 1,
        "chosen_step": 5,
        "is_repeat": False,
        **field,
    }
    # when / then
    with pytest.raises(ValueError, match=r"interface|step|reserved"):
        MidpointAnswer(**values)


def test_midpoint_consistency() -> None:
    # given MIDPOINTS: construct repeats differ by 1 and 0 steps, select repeats by 0 and 2;
    # p2..p5 have no repeat and are skipped
    # when
    result = midpoint_consistency(reversed(MIDPOINTS))
    # then mean |Δλ| = steps / 10 / n: construct 1/20, select 2/20, pooled 3/40
    assert result == [
        ConsistencySummary(interface=ALL, n_pairs=4, mean_abs_diff=0.075, share_identical=0.5),
        ConsistencySummary(interface=CONSTRUCT, n_pairs=2, mean_abs_diff=0.05, share_identical=0.5),
        ConsistencySummary(interface=SELECT, n_pairs=2, mean_abs_diff=0.1, share_identical=0.5),
    ]


def test_midpoint_consistency_without_repeats_is_empty() -> None:
    # given / when / then
    assert midpoint_consistency([a for a in MIDPOINTS if not a.is_repeat]) == []


@pytest.mark.parametrize("is_repeat", [True, False])
def test_midpoint_consistency_skips_a_key_with_two_answers_of_one_kind(is_repeat: bool) -> None:
    # given two mains (or two repeats) of the same annotator, pair and interface, plus the
    # other kind once; and a clean main + repeat of another annotator
    answers = [
        mid("A-B", "p", CONSTRUCT, 1, 5, is_repeat=is_repeat),
        mid("A-B", "p", CONSTRUCT, 9, 6, is_repeat=is_repeat),
        mid("A-B", "p", CONSTRUCT, 1, 7, is_repeat=not is_repeat),
        mid("A-B", "q", CONSTRUCT, 1, 4, is_repeat=False),
        mid("A-B", "q", CONSTRUCT, 1, 5, is_repeat=True),
    ]
    # when
    result = midpoint_consistency(answers)
    # then only q's pair counts: |Δλ| = 0.1
    assert [(c.interface, c.n_pairs) for c in result] == [(ALL, 1), (CONSTRUCT, 1)]
    assert result[0].mean_abs_diff == pytest.approx(0.1)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

unit = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]) | st.floats(0, 1)
# The stimulus fixes λ, as in a real study.
stimuli = st.sampled_from([("s1", 0.1), ("s2", 0.5), ("s3", 0.5)])
mixing_answers = st.lists(
    st.builds(
        lambda stimulus, annotator, lam_hat, confidence, is_repeat: MixingAnswer(
            stimulus[0], annotator, stimulus[1], lam_hat, confidence, is_repeat
        ),
        stimuli,
        st.sampled_from("abc"),
        unit,
        unit,
        st.booleans(),
    ),
    max_size=12,
)
midpoint_answers = st.lists(
    st.builds(
        MidpointAnswer,
        pair=st.sampled_from(["A-B", "C-D"]),
        annotator=st.sampled_from("pqr"),
        interface=st.sampled_from([CONSTRUCT, SELECT]),
        start_step=st.sampled_from([None, 1, 9]),
        chosen_step=st.integers(0, 10),
        is_repeat=st.booleans(),
    ),
    max_size=12,
    # midpoint_consistency needs at most one main and one repeat per (interface, annotator, pair)
    unique_by=lambda a: (a.interface, a.annotator, a.pair, a.is_repeat),
)


@settings(deadline=None)
@given(answers=mixing_answers, include_repeats=st.booleans(), data=st.data())
def test_mixing_summaries_do_not_depend_on_input_order(
    answers: list[MixingAnswer], include_repeats: bool, data: st.DataObject
) -> None:
    # given the same answers in another order
    shuffled = data.draw(st.permutations(answers))
    # when / then: exactly equal (fsum makes every sum exactly rounded, so order-free)
    assert mixing_by_stimulus(shuffled, include_repeats=include_repeats) == mixing_by_stimulus(
        answers, include_repeats=include_repeats
    )
    assert mixing_by_lambda(shuffled, include_repeats=include_repeats) == mixing_by_lambda(
        answers, include_repeats=include_repeats
    )


@settings(deadline=None)
@given(answers=midpoint_answers, include_repeats=st.booleans(), data=st.data())
def test_midpoint_summaries_do_not_depend_on_input_order(
    answers: list[MidpointAnswer], include_repeats: bool, data: st.DataObject
) -> None:
    # given the same answers in another order
    shuffled = data.draw(st.permutations(answers))
    # when / then
    assert midpoint_summaries(shuffled, include_repeats=include_repeats) == midpoint_summaries(
        answers, include_repeats=include_repeats
    )
    assert midpoint_consistency(shuffled) == midpoint_consistency(answers)


@settings(deadline=None)
@given(answers=midpoint_answers)
def test_midpoint_summaries_are_internally_consistent(answers: list[MidpointAnswer]) -> None:
    # given any answers
    # when
    result = midpoint_summaries(answers)
    # then each histogram adds up to n, and every pooled group is the sum of its split groups
    by_key = {(s.interface, s.start_step, s.pair): s for s in result}
    for s in result:
        assert sum(s.histogram) == s.n
        assert 0.0 <= s.mean <= 1.0
        assert 0.0 <= s.share_half <= s.share_near_half <= 1.0
    for (interface, step, pair), s in by_key.items():
        if pair == ALL:
            parts = [v.n for (i, st_, p), v in by_key.items() if (i, st_) == (interface, step)]
            assert sum(parts) == 2 * s.n  # the pairs, plus the ALL group itself
        if step is None:
            splits = [v for (i, st_, p), v in by_key.items() if (i, p) == (interface, pair)]
            assert sum(v.n for v in splits if v.start_step is not None) <= s.n


def test_summaries_module_imports_nothing_from_django() -> None:
    # given
    tree = ast.parse(Path(summaries.__file__).read_text())
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
