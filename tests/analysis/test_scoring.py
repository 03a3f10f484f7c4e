# Pure IRI alignment maths (interfaces E and F): no database, no Django. Expected numbers follow
# docs/methods/iri-alignment.md and are derived by hand in the comments.
import ast
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import scoring
from analysis.scoring import (
    CLUSTERING_CHANCE,
    AlignmentSummary,
    IriJudgment,
    annotator_scores,
    catch_flags,
    rank_models,
    spearman,
    summarise,
    summarise_by_group,
    wilson_interval,
)


def judgments(
    annotator: str, correct: int, total: int, *, group: tuple[str, ...] = ()
) -> list[IriJudgment]:
    """`total` judgments by one annotator on items i0, i1, ...; the first `correct` are right."""
    return [
        IriJudgment(item=f"i{k}", annotator=annotator, correct=k < correct, group=group)
        for k in range(total)
    ]


# docs/methods/iri-alignment.md#score: annotator scores {0, 0, 16} give 5.33 ± 7.54 (here 0/25,
# 0/25 and 4/25).
PAPER_EXAMPLE = judgments("a1", 0, 25) + judgments("a2", 0, 25) + judgments("a3", 4, 25)


# ---------------------------------------------------------------------------------------------
# Annotator scores and the papers' summary
# ---------------------------------------------------------------------------------------------


def test_annotator_scores() -> None:
    # given b: 2 of 2 right, a: 1 of 4 right
    rows = judgments("b", 2, 2) + judgments("a", 1, 4)
    # when
    scores = annotator_scores(rows)
    # then A_a = 100 · right / judged, keyed in annotator order
    assert scores == {"a": 25.0, "b": 100.0}
    assert list(scores) == ["a", "b"]


def test_paper_example_mean_and_population_sd() -> None:
    # given annotator scores 0, 0 and 16
    # when
    summary = summarise(PAPER_EXAMPLE, n_boot=0)
    # then mean = 16/3 = 5.33 and population SD = √(((16/3)²·2 + (32/3)²) / 3) = √(512/9)
    #   = 16√2/3 = 7.54 (the sample SD, ddof = 1, would be 9.24)
    assert round(summary.mean_score, 2) == 5.33
    assert round(summary.sd_score, 2) == 7.54
    assert summary.mean_score == pytest.approx(16 / 3, rel=1e-15)
    assert summary.sd_score == pytest.approx(16 * math.sqrt(2) / 3, rel=1e-15)


def test_summarise_counts_and_pooled_percentage() -> None:
    # given the paper example: 75 judgments of 25 items by 3 annotators, 4 right
    # when
    summary = summarise(PAPER_EXAMPLE, n_boot=0)
    # then pooled = 100 · 4 / 75 = 5.33 (equal to the mean here: every annotator judged 25)
    assert (summary.n_judgments, summary.n_annotators, summary.n_items) == (75, 3, 25)
    assert summary.n_correct == 4
    assert summary.pooled_percent == 400 / 75
    assert (summary.chance, summary.chance_corrected) == (None, None)
    assert (summary.boot_low, summary.boot_high, summary.n_boot_used) == (None, None, 0)


def test_pooled_percentage_differs_from_mean_of_annotators_when_unbalanced() -> None:
    # given a: 1 of 1 right (100), b: 0 of 3 right (0)
    rows = judgments("a", 1, 1) + judgments("b", 0, 3)
    # when
    summary = summarise(rows, n_boot=0)
    # then the mean of annotator scores is (100 + 0) / 2 = 50, the pooled percentage 1/4 = 25
    assert (summary.mean_score, summary.pooled_percent) == (50.0, 25.0)


# ---------------------------------------------------------------------------------------------
# Wilson interval
# ---------------------------------------------------------------------------------------------


def test_wilson_interval_eight_of_ten() -> None:
    # given 8 right of 10, 95%: z = 1.959964, z² = 3.841459, z²/n = 0.3841459
    # when
    low, high = wilson_interval(8, 10)
    # then centre = (0.8 + 0.3841459/2) / 1.3841459 = 0.9920729 / 1.3841459 = 0.7167402
    #   half-width = 1.959964 / 1.3841459 · √(0.8·0.2/10 + 3.841459/400)
    #              = 1.4160053 · √0.0256036 = 1.4160053 · 0.1600114 = 0.2265777
    #   → (0.4901625, 0.9433179), the textbook (0.490, 0.943) for 8/10
    assert low == pytest.approx(49.01625, abs=1e-5)
    assert high == pytest.approx(94.33178, abs=1e-5)


def test_summarise_reports_the_wilson_interval_on_pooled_trials() -> None:
    # given two annotators with 4/5 each: 8 right of 10 pooled
    rows = judgments("a", 4, 5) + judgments("b", 4, 5)
    # when
    summary = summarise(rows, n_boot=0)
    # then
    assert (summary.wilson_low, summary.wilson_high) == wilson_interval(8, 10)


@pytest.mark.parametrize(
    ("correct", "total", "expected"),
    [
        # p = 0: centre = half-width = (z²/2n) / (1 + z²/n), so the lower end is exactly 0 and
        # the upper one 2·(z²/2n) / (1 + z²/n) = 0.3841459 / 1.3841459
        (0, 10, (0.0, pytest.approx(100 * 0.3841459 / 1.3841459, abs=1e-5))),
        # p = 1 mirrors it: the lower end is 1 − 0.3841459 / 1.3841459 = 1 / 1.3841459
        (10, 10, (pytest.approx(100 / 1.3841459, abs=1e-5), 100.0)),
    ],
)
def test_wilson_interval_at_the_ends(
    correct: int, total: int, expected: tuple[float, float]
) -> None:
    # given / when
    interval = wilson_interval(correct, total)
    # then
    assert interval == expected


def test_wilson_interval_narrows_with_lower_confidence() -> None:
    # given / when
    wide = wilson_interval(8, 10, confidence=0.99)
    narrow = wilson_interval(8, 10, confidence=0.8)
    # then
    assert wide[0] < narrow[0] < 80 < narrow[1] < wide[1]


@pytest.mark.parametrize(
    ("correct", "total", "confidence"), [(1, 0, 0.95), (-1, 5, 0.95), (6, 5, 0.95), (1, 2, 1.0)]
)
def test_wilson_interval_rejects_bad_input(correct: int, total: int, confidence: float) -> None:
    # given / when / then
    with pytest.raises(ValueError, match=r"total|confidence"):
        wilson_interval(correct, total, confidence=confidence)


# ---------------------------------------------------------------------------------------------
# Chance correction (clustering)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("correct", "expected"),
    [
        (6, 1.0),  # (100 − 100/3) / (100 − 100/3)
        (3, 0.25),  # (50 − 100/3) / (200/3) = (50/3) / (200/3)
        (2, 0.0),  # 100·2/6 is the same double as 100/3
        (0, -0.5),  # (0 − 100/3) / (200/3)
    ],
)
def test_clustering_chance_corrected(correct: int, expected: float) -> None:
    # given two annotators with `correct` of 6 rows each (two IRIs per column, three columns)
    rows = judgments("a", correct, 6) + judgments("b", correct, 6)
    # when
    summary = summarise(rows, chance=CLUSTERING_CHANCE, n_boot=0)
    # then (A − chance) / (100 − chance), chance = 100/3
    assert summary.chance == CLUSTERING_CHANCE
    assert summary.chance_corrected == pytest.approx(expected, abs=1e-15)


# ---------------------------------------------------------------------------------------------
# Two-way cluster bootstrap
# ---------------------------------------------------------------------------------------------


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    # given
    # when
    first = summarise(PAPER_EXAMPLE, n_boot=300, seed=7)
    second = summarise(PAPER_EXAMPLE, n_boot=300, seed=7)
    # then
    assert first == second
    assert (first.n_boot, first.n_boot_used, first.seed) == (300, 300, 7)
    assert first.boot_low is not None
    assert first.boot_high is not None
    assert 0.0 <= first.boot_low < first.boot_high <= 100.0


@pytest.mark.parametrize(("correct", "expected"), [(5, 100.0), (0, 0.0)])
def test_bootstrap_of_a_constant_outcome_is_a_point(correct: int, expected: float) -> None:
    # given every judgment right (or every one wrong)
    rows = judgments("a", correct, 5) + judgments("b", correct, 5)
    # when
    summary = summarise(rows, n_boot=200, seed=3)
    # then every replicate is that value
    assert (summary.boot_low, summary.boot_high) == (expected, expected)


def test_bootstrap_weights_annotator_copies_by_multiplicity() -> None:
    # given one item judged right by a and wrong by b: the item is always drawn, and the
    # annotator draws {a, a}, {a, b}, {b, b} (probabilities 1/4, 1/2, 1/4) give 100, 50 and 0
    rows = [IriJudgment("i", "a", True), IriJudgment("i", "b", False)]
    # when
    summary = summarise(rows, n_boot=2000, seed=0)
    # then about 500 replicates sit at each end, so both 2.5% and 97.5% quantiles are the ends
    assert (summary.boot_low, summary.boot_high) == (0.0, 100.0)


def test_bootstrap_skips_replicates_without_judgments() -> None:
    # given a judged only i and b only j: drawing {i, i} with {b, b} (or {j, j} with {a, a})
    # leaves no judgment, probability 2 · 1/4 · 1/4 = 1/8
    rows = [IriJudgment("i", "a", True), IriJudgment("j", "b", False)]
    # when
    summary = summarise(rows, n_boot=400, seed=1)
    # then roughly 50 of 400 replicates are skipped
    assert 300 < summary.n_boot_used < summary.n_boot == 400


def test_bootstrap_interval_can_exclude_the_mean_when_annotators_drop_out() -> None:
    # given a documented limitation of the two-way bootstrap with the mean of annotator scores:
    # 100 annotators judged one IRI each (own item, right), 100 judged the same 8 IRIs (wrong).
    # The point estimate weights every annotator equally: 50. A replicate keeps an annotator only
    # if one of their items was drawn, which for the one-item annotators happens with probability
    # 1 − (1 − 1/108)^108 ≈ 0.63, so the replicates centre near 100·63/163 ≈ 39 with a spread of a
    # few points, and even the exact percentile interval misses 50. Real 2AFC designs (pages of
    # 10 queries or more per annotator) make such drop-out negligible.
    rows = [IriJudgment(f"x{k}", f"X{k}", True) for k in range(100)]
    rows += [IriJudgment(f"y{i}", f"Y{k}", False) for k in range(100) for i in range(8)]
    # when
    summary = summarise(rows, n_boot=1000, seed=0)
    # then
    assert summary.mean_score == 50.0
    assert summary.boot_high is not None
    assert summary.boot_high < 50.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"confidence": 1.0},
        {"confidence": 0.0},
        {"n_boot": -1},
        {"seed": -1},
        {"chance": 100.0},
        {"chance": -1.0},
    ],
)
def test_summarise_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    # given / when / then
    with pytest.raises(ValueError, match="must be"):
        summarise(PAPER_EXAMPLE, **kwargs)


def test_summarise_rejects_no_judgments() -> None:
    # given / when / then
    with pytest.raises(ValueError, match="no judgments"):
        summarise([])


# ---------------------------------------------------------------------------------------------
# Groups, catch trials, rankings
# ---------------------------------------------------------------------------------------------


def test_summarise_by_group() -> None:
    # given judgments of two models
    robust = judgments("a", 9, 10, group=("resnet18", "adversarial"))
    standard = judgments("a", 1, 10, group=("resnet18", "standard"))
    # when
    result = summarise_by_group(standard + robust, n_boot=50, seed=2)
    # then one summary per full group tuple, in group order, each as if summarised alone
    assert list(result) == [("resnet18", "adversarial"), ("resnet18", "standard")]
    assert result[("resnet18", "adversarial")] == summarise(robust, n_boot=50, seed=2)
    assert result[("resnet18", "standard")].mean_score == 10.0


@pytest.mark.parametrize(
    ("results", "threshold", "flagged"),
    [
        ([True, True, True, True, False], 80.0, False),  # exactly 80% is not below 80%
        ([True, True, True, False, False], 80.0, True),  # 60%
        ([True, True, True, False, False], 60.0, False),
        ([True] * 10, 100.0, False),
        ([True] * 9 + [False], 100.0, True),
        ([False], 0.0, False),  # nothing is below 0%
        ([], 80.0, False),  # no catch trials: no evidence against the annotator
    ],
)
def test_catch_flags(results: list[bool], threshold: float, flagged: bool) -> None:
    # given
    # when
    flags = catch_flags({"p": results}, threshold=threshold)
    # then
    assert flags == {"p": flagged}


def test_catch_flags_default_threshold_is_80_percent() -> None:
    # given 7 of 9 right (77.8%) and 4 of 5 right (80%)
    catch = {"q": [True] * 4 + [False], "p": [True] * 7 + [False] * 2}
    # when
    flags = catch_flags(catch)
    # then
    assert flags == {"p": True, "q": False}
    assert list(flags) == ["p", "q"]


@pytest.mark.parametrize("threshold", [-1.0, 100.5])
def test_catch_flags_rejects_thresholds_outside_percentages(threshold: float) -> None:
    # given / when / then
    with pytest.raises(ValueError, match="threshold"):
        catch_flags({"p": [True]}, threshold=threshold)


def test_rank_models_highest_first_ties_by_name() -> None:
    # given
    scores = {"vgg": 50.0, "alexnet": 50.0, "resnet": 96.0, "vit": 3.0}
    # when / then
    assert rank_models(scores) == ["resnet", "alexnet", "vgg", "vit"]


def test_rank_models_rejects_nan() -> None:
    # given / when / then
    with pytest.raises(ValueError, match="finite"):
        rank_models({"a": math.nan, "b": 1.0})


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # ranks (1, 2, 3) against (1, 3, 2): Σd² = 2 → 1 − 6·2 / (3·(9 − 1)) = 0.5
        ({"m1": 1.0, "m2": 2.0, "m3": 3.0}, {"m1": 10.0, "m2": 30.0, "m3": 20.0}, 0.5),
        # ties share the average rank: (1, 2.5, 2.5, 4) against (1, 2, 3, 4), Pearson on ranks:
        # deviations (−1.5, 0, 0, 1.5) and (−1.5, −0.5, 0.5, 1.5): 4.5 / √(4.5 · 5) = √0.9
        (
            {"m1": 1.0, "m2": 2.0, "m3": 2.0, "m4": 3.0},
            {"m1": 5.0, "m2": 6.0, "m3": 7.0, "m4": 8.0},
            math.sqrt(0.9),
        ),
        # only the shared keys count; reversed order → −1
        ({"m1": 1.0, "m2": 2.0, "x": 0.0}, {"m1": 2.0, "m2": 1.0, "y": 9.0}, -1.0),
        ({"m1": 1.0, "m2": 2.0}, {"m1": 1.0, "m3": 2.0}, None),  # one shared key
        ({"m1": 1.0, "m2": 1.0}, {"m1": 1.0, "m2": 2.0}, None),  # no variance in a
    ],
)
def test_spearman(a: dict[str, float], b: dict[str, float], expected: float | None) -> None:
    # given / when
    rho = spearman(a, b)
    # then
    assert rho == (None if expected is None else pytest.approx(expected, rel=1e-15))


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

small_judgments = st.lists(
    st.builds(
        IriJudgment,
        item=st.sampled_from(["i1", "i2", "i3", "i4"]),
        annotator=st.sampled_from(["a", "b", "c"]),
        correct=st.booleans(),
        group=st.sampled_from([("m1",), ("m2",)]),
    ),
    min_size=1,
    max_size=12,
)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def cell_rates(rows: Sequence[IriJudgment]) -> list[float]:
    cells: dict[tuple[str, str], list[bool]] = {}
    for j in rows:
        cells.setdefault((j.item, j.annotator), []).append(j.correct)
    return [100 * sum(v) / len(v) for v in cells.values()]


@settings(deadline=None)
@given(rows=small_judgments, seed=seeds)
def test_bootstrap_interval_stays_within_the_cell_rates(rows: list[IriJudgment], seed: int) -> None:
    # given any small set of judgments and any seed
    # when
    summary = summarise(rows, n_boot=200, seed=seed)
    # then every replicate is a weighted average of the per-(item, annotator) rates, and so is the
    # point estimate: both ends, and the estimate, lie between the lowest and highest rate.
    # This holds for every design and seed (unlike containment of the estimate, below).
    rates = cell_rates(rows)
    assert summary.boot_low is not None
    assert summary.boot_high is not None
    assert 0 < summary.n_boot_used <= 200
    tolerance = 1e-9  # a weighted average computed in floating point may overshoot by an ulp
    assert min(rates) - tolerance <= summary.boot_low <= summary.boot_high
    assert summary.boot_high <= max(rates) + tolerance
    assert min(rates) - tolerance <= summary.mean_score <= max(rates) + tolerance


# When does the percentile interval contain the point estimate T0 (the mean of annotator scores)?
# - For every seed only when the bootstrap distribution is a single point, i.e. every (item,
#   annotator) cell has the same proportion right; otherwise some draws of 200 replicates all
#   land on one side of T0. The strategy uses the all-right / all-wrong instances of that case,
#   where the arithmetic is exact (a shared rate such as 1/3 can be off by an ulp).
# - Not even in distribution in general: the replicate mean drops annotators none of whose items
#   were drawn, so it is biased when annotators judged very different numbers of items, and the
#   exact percentile interval can miss T0 (see the drop-out test above).
# - It does hold, with probability above 1 − 10⁻⁵⁰, in two non-degenerate designs where the
#   replicate is 100·X/n with X ~ Binomial(n, k/n) and T0 = 100·k/n: one annotator judging n
#   items once each (X = right items drawn; annotator weight always 1), and one item judged once
#   by each of n annotators (X = right annotators drawn; the item is always drawn). The median of
#   a binomial whose mean np is an integer is exactly np, so P(X ≤ k) ≥ 1/2 and P(X ≥ k) ≥ 1/2.
#   With 200 replicates the 2.5% quantile (numpy's linear rule, position 4.975) is ≤ T0 as soon
#   as 6 replicates are ≤ T0; failing that needs ≤ 5 of 200 fair coin flips: < 200⁵/2²⁰⁰ < 10⁻⁴⁸.
#   X = k gives the same double as T0 (both are 100·k/n computed once), so ties count exactly.
@st.composite
def designs_where_the_interval_contains_the_estimate(draw: st.DrawFn) -> list[IriJudgment]:
    n = draw(st.integers(min_value=1, max_value=12))
    outcomes = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    shape = draw(st.sampled_from(["one-annotator", "one-item", "constant"]))
    if shape == "one-annotator":
        return [IriJudgment(f"i{k}", "a", right) for k, right in enumerate(outcomes)]
    if shape == "one-item":
        return [IriJudgment("i", f"a{k}", right) for k, right in enumerate(outcomes)]
    rows = draw(small_judgments)
    right = draw(st.booleans())
    return [IriJudgment(j.item, j.annotator, right, j.group) for j in rows]


@settings(deadline=None)
@given(rows=designs_where_the_interval_contains_the_estimate(), seed=seeds)
def test_bootstrap_interval_contains_the_point_estimate(rows: list[IriJudgment], seed: int) -> None:
    # given a design from the strategy above, and any seed
    # when
    summary = summarise(rows, n_boot=200, seed=seed)
    # then
    assert summary.boot_low is not None
    assert summary.boot_high is not None
    assert summary.boot_low <= summary.mean_score <= summary.boot_high


@settings(deadline=None)
@given(rows=small_judgments, seed=seeds, data=st.data())
def test_scores_do_not_depend_on_input_order(
    rows: list[IriJudgment], seed: int, data: st.DataObject
) -> None:
    # given the same judgments in another order
    shuffled = data.draw(st.permutations(rows))
    # when / then: bit-identical, bootstrap included (items and annotators are sorted first)
    assert annotator_scores(shuffled) == annotator_scores(rows)
    kwargs = {"n_boot": 50, "seed": seed, "chance": CLUSTERING_CHANCE}
    assert summarise(shuffled, **kwargs) == summarise(rows, **kwargs)
    by_group: dict[tuple[str, ...], AlignmentSummary] = summarise_by_group(
        shuffled,
        n_boot=50,
        seed=seed,
    )
    assert by_group == summarise_by_group(rows, n_boot=50, seed=seed)


@settings(deadline=None)
@given(
    scores=st.dictionaries(
        st.sampled_from(["m1", "m2", "m3", "m4"]), st.sampled_from([0.0, 5.0, 50.0, 96.0])
    ),
    other=st.dictionaries(st.sampled_from(["m1", "m2", "m3", "m5"]), st.floats(0, 100)),
    catch=st.dictionaries(st.sampled_from("pqr"), st.lists(st.booleans(), max_size=5)),
    data=st.data(),
)
def test_rankings_and_flags_do_not_depend_on_mapping_order(
    scores: dict[str, float],
    other: dict[str, float],
    catch: dict[str, list[bool]],
    data: st.DataObject,
) -> None:
    # given the same mappings built in another order
    reordered = dict(data.draw(st.permutations(list(scores.items()))))
    reordered_catch = dict(data.draw(st.permutations(list(catch.items()))))
    # when / then
    assert rank_models(reordered) == rank_models(scores)
    assert spearman(reordered, other) == spearman(scores, other)
    assert catch_flags(reordered_catch) == catch_flags(catch)
    assert list(catch_flags(reordered_catch)) == list(catch_flags(catch))


def test_scoring_module_imports_nothing_from_django() -> None:
    # given
    tree = ast.parse(Path(scoring.__file__).read_text())
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
