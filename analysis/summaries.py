# Pure summaries of the mixing-factor (interface B) and midpoint (interfaces C and D) responses.
# ORM-free by design (docs/architecture.md#layers): services load the responses, build the
# answer records below and store the results. The formulas are defined in
# docs/methods/interface-analyses.md (sections #mixing-factor and #midpoints).
#
# Every sum goes through math.fsum, which is exactly rounded, and every group is sorted by its
# key, so a summary is bit-identical however the database happens to order the rows.
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

CONSTRUCT: Final = "construct"  # interface C: walk the series to the 50/50 point
SELECT: Final = "select"  # interface D: pick the 50/50 image from the shuffled series
INTERFACES: Final = frozenset({CONSTRUCT, SELECT})

# Key of the "overall" groups: every pair pooled (midpoint_summaries) and every interface pooled
# (midpoint_consistency). Reserved, so no class pair may be called this.
ALL: Final = "__all__"

# docs/user-guide/interfaces.md#conventions: the midpoint series is λ = step / 10 for the integer
# steps 0..10.
N_STEPS: Final = 11
_HALF_STEP: Final = 5
_NEAR_HALF_STEPS: Final = range(4, 7)  # λ in [0.4, 0.6], compared on integer steps: no rounding


# --------------------------------------------------------------------------------------------
# Small exact statistics shared by both interfaces
# --------------------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _sd(values: Sequence[float], *, ddof: int) -> float | None:
    """Standard deviation with the given delta degrees of freedom; None when n <= ddof."""
    n = len(values)
    if n <= ddof:
        return None
    m = _mean(values)
    return math.sqrt(math.fsum((x - m) ** 2 for x in values) / (n - ddof))


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None when it is undefined (n < 2, or either side has no variance)."""
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} values and y {len(y)}; they must pair up")
    if len(x) < 2:
        return None
    mx, my = _mean(x), _mean(y)
    dx = [v - mx for v in x]
    dy = [v - my for v in y]
    sxx = math.fsum(d * d for d in dx)
    syy = math.fsum(d * d for d in dy)
    if sxx == 0.0 or syy == 0.0:
        return None
    r = math.fsum(a * b for a, b in zip(dx, dy, strict=True)) / math.sqrt(sxx * syy)
    # Rounding can push a perfect correlation a hair past ±1.
    return max(-1.0, min(1.0, r))


def _check_unit(label: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{label} must be a number, got {value!r}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{label} must be in [0, 1], got {value!r}")


def _check_step(label: str, value: int) -> None:
    # bool is an int subclass, and a float step is exactly the float-string parsing the spec bans.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{label} must be an integer step 0..10, got {value!r}")
    if not 0 <= value < N_STEPS:
        raise ValueError(f"{label} must be in 0..10, got {value}")


# --------------------------------------------------------------------------------------------
# Interface B: inferring the mixing factor, with confidence
# --------------------------------------------------------------------------------------------


def _slider_fraction(label: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{label} slider must be a number, got {value!r}")
    if not (math.isfinite(value) and 0 <= value <= 100):
        raise ValueError(f"{label} slider must be in 0..100, got {value!r}")
    return value / 100


def lam_hat_from_slider(value: float) -> float:
    """λ̂ = 1 − value/100: the slider reads 100% class 1 at the left
    (docs/user-guide/interfaces.md#mixing-factor)."""
    _slider_fraction("mixing", value)
    # (100 − v) / 100 is one correctly rounded division for whole-number sliders, so slider 10
    # gives exactly 0.9 (1 − 0.1 would too, but 1 − 0.07 gives 0.9299999999999999).
    return (100 - value) / 100


def confidence_from_slider(value: float) -> float:
    """c = value/100 (docs/user-guide/interfaces.md#mixing-factor)."""
    return _slider_fraction("confidence", value)


@dataclass(frozen=True)
class MixingAnswer:
    """One interface-B response; lam_hat and confidence are already fractions in [0, 1]."""

    stimulus: str
    annotator: str
    lam_true: float
    lam_hat: float
    confidence: float
    is_repeat: bool

    def __post_init__(self) -> None:
        _check_unit("lam_true", self.lam_true)
        _check_unit("lam_hat", self.lam_hat)
        _check_unit("confidence", self.confidence)


@dataclass(frozen=True)
class MixingStimulusSummary:
    stimulus: str
    lam_true: float
    n: int
    n_annotators: int
    mean_lam_hat: float
    sd_lam_hat: float  # population SD (ddof = 0), as the spec asks per stimulus
    mean_confidence: float
    relabel_difference: float  # λ − mean λ̂
    confidence_weighted_mean: float | None  # Σ λ̂·c / Σ c; None when every c is 0
    # docs/methods/interface-analyses.md#mixing-per-stimulus: the unnormalised mean of λ̂·c that
    # the published H-Mix summaries report; it is kept for comparison with them, not because it
    # estimates λ (it shrinks towards 0).
    hmix_weighted_relabel: float
    hmix_weighted_difference: float  # λ − hmix_weighted_relabel


@dataclass(frozen=True)
class MixingLevelSummary:
    lam_true: float
    n: int
    mean_lam_hat: float
    sd_lam_hat: float | None  # sample SD (ddof = 1); None when n < 2
    median_lam_hat: float
    mean_abs_error: float  # mean |λ̂ − λ|
    mean_confidence: float
    sd_confidence: float | None  # sample SD (ddof = 1); None when n < 2
    share_extreme: float  # share of answers with λ̂ exactly 0 or 1
    error_confidence_correlation: float | None  # Pearson(|λ̂ − λ|, c); None when undefined


def _used(answers: Iterable[MixingAnswer], include_repeats: bool) -> list[MixingAnswer]:
    return [a for a in answers if include_repeats or not a.is_repeat]


def mixing_by_stimulus(
    answers: Iterable[MixingAnswer], *, include_repeats: bool = True
) -> list[MixingStimulusSummary]:
    """One summary per stimulus, sorted by stimulus key.

    Repeats count as extra answers unless include_repeats=False (as for soft labels). A stimulus
    whose answers disagree on the true λ is corrupt input and raises ValueError.
    """
    groups: dict[str, list[MixingAnswer]] = {}
    for a in _used(answers, include_repeats):
        groups.setdefault(a.stimulus, []).append(a)
    summaries = []
    for stimulus in sorted(groups):
        rows = groups[stimulus]
        lams = {a.lam_true for a in rows}
        if len(lams) != 1:
            raise ValueError(f"stimulus {stimulus!r} has answers with different λ: {sorted(lams)}")
        lam = lams.pop()
        lam_hat = [a.lam_hat for a in rows]
        conf = [a.confidence for a in rows]
        mean_lam_hat = _mean(lam_hat)
        sd_lam_hat = _sd(lam_hat, ddof=0)
        assert sd_lam_hat is not None  # a group is never empty, and ddof is 0
        conf_total = math.fsum(conf)
        products = [h * c for h, c in zip(lam_hat, conf, strict=True)]
        weighted = None if conf_total == 0.0 else math.fsum(products) / conf_total
        hmix = _mean(products)
        summaries.append(
            MixingStimulusSummary(
                stimulus=stimulus,
                lam_true=lam,
                n=len(rows),
                n_annotators=len({a.annotator for a in rows}),
                mean_lam_hat=mean_lam_hat,
                sd_lam_hat=sd_lam_hat,
                mean_confidence=_mean(conf),
                relabel_difference=lam - mean_lam_hat,
                confidence_weighted_mean=weighted,
                hmix_weighted_relabel=hmix,
                hmix_weighted_difference=lam - hmix,
            )
        )
    return summaries


def mixing_by_lambda(
    answers: Iterable[MixingAnswer], *, include_repeats: bool = True
) -> list[MixingLevelSummary]:
    """One summary per true λ level (grouped on the exact float), sorted by λ."""
    groups: dict[float, list[MixingAnswer]] = {}
    for a in _used(answers, include_repeats):
        groups.setdefault(a.lam_true, []).append(a)
    summaries = []
    for lam in sorted(groups):
        rows = groups[lam]
        lam_hat = [a.lam_hat for a in rows]
        conf = [a.confidence for a in rows]
        errors = [abs(h - lam) for h in lam_hat]
        summaries.append(
            MixingLevelSummary(
                lam_true=lam,
                n=len(rows),
                mean_lam_hat=_mean(lam_hat),
                sd_lam_hat=_sd(lam_hat, ddof=1),
                median_lam_hat=_median(lam_hat),
                mean_abs_error=_mean(errors),
                mean_confidence=_mean(conf),
                sd_confidence=_sd(conf, ddof=1),
                share_extreme=sum(h in (0.0, 1.0) for h in lam_hat) / len(rows),
                error_confidence_correlation=pearson(errors, conf),
            )
        )
    return summaries


def human_relabel(summary: MixingStimulusSummary) -> tuple[float, float]:
    """The 2-class human label (weight of class 1, weight of class 2) = (mean λ̂, 1 − mean λ̂).

    For the per-annotator vectors, summarise one annotator's answers with mixing_by_stimulus.
    """
    return summary.mean_lam_hat, 1.0 - summary.mean_lam_hat


# --------------------------------------------------------------------------------------------
# Interfaces C and D: the 50/50 point of a class pair
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MidpointAnswer:
    """One interface-C ("construct") or D ("select") response.

    start_step is where interface C began (1 or 9 in the standard design); D has none.
    """

    pair: str
    annotator: str
    interface: str
    start_step: int | None
    chosen_step: int
    is_repeat: bool

    def __post_init__(self) -> None:
        if self.interface not in INTERFACES:
            raise ValueError(
                f"interface must be one of {sorted(INTERFACES)}, got {self.interface!r}"
            )
        if self.pair == ALL:
            raise ValueError(f"{ALL!r} is reserved for the pooled groups and cannot name a pair")
        if self.start_step is not None:
            _check_step("start_step", self.start_step)
        _check_step("chosen_step", self.chosen_step)


@dataclass(frozen=True)
class MidpointSummary:
    interface: str
    # None: pooled over start steps. For interface D every answer has no start step, so its
    # split and pooled groups coincide and are reported once, under None.
    start_step: int | None
    pair: str  # a class pair, or ALL for every pair pooled
    n: int
    mean: float  # of the chosen λ
    sd: float | None  # sample SD (ddof = 1); None when n < 2
    median: float
    share_half: float  # λ exactly 0.5
    share_near_half: float  # λ in [0.4, 0.6], both ends included
    histogram: tuple[int, ...]  # counts of steps 0..10 (λ = 0.0 .. 1.0)


@dataclass(frozen=True)
class ConsistencySummary:
    interface: str  # or ALL for every interface pooled
    n_pairs: int  # (annotator, pair) combinations answered both as main and as repeat
    mean_abs_diff: float  # mean |Δλ| between the main and the repeat answer
    share_identical: float


def _midpoint_summary(key: tuple[str, int | None, str], steps: Sequence[int]) -> MidpointSummary:
    # Everything is computed on the integer steps and divided by 10 once at the end, so the
    # statistics carry no rounding from λ = step / 10 (sums of squares are exact integers).
    n = len(steps)
    total = sum(steps)
    sd: float | None = None
    if n >= 2:
        squares = n * sum(s * s for s in steps) - total * total  # n² · population variance
        sd = math.sqrt(squares / (n * (n - 1) * 100))
    ordered = sorted(steps)
    mid = n // 2
    median = ordered[mid] / 10 if n % 2 else (ordered[mid - 1] + ordered[mid]) / 20
    histogram = [0] * N_STEPS
    for s in steps:
        histogram[s] += 1
    interface, start_step, pair = key
    return MidpointSummary(
        interface=interface,
        start_step=start_step,
        pair=pair,
        n=n,
        mean=total / (10 * n),
        sd=sd,
        median=median,
        share_half=histogram[_HALF_STEP] / n,
        share_near_half=sum(histogram[s] for s in _NEAR_HALF_STEPS) / n,
        histogram=tuple(histogram),
    )


def _midpoint_order(key: tuple[str, int | None, str]) -> tuple[str, int, str]:
    # Pooled before split, and ALL before the pairs: -1 sorts before steps, "" before any name.
    interface, start_step, pair = key
    return interface, -1 if start_step is None else start_step, "" if pair == ALL else pair


def midpoint_summaries(
    answers: Iterable[MidpointAnswer], *, include_repeats: bool = True
) -> list[MidpointSummary]:
    """Summaries per (interface, start step, pair), with start steps and pairs also pooled.

    Each answer counts in (interface, its start step, its pair), (interface, its start step,
    ALL), (interface, None, its pair) and (interface, None, ALL); when its start step is None
    the split and pooled keys are the same group and it is counted there once. Sorted by
    interface, then start step (pooled first), then pair (ALL first).
    """
    groups: dict[tuple[str, int | None, str], list[int]] = {}
    for a in answers:
        if a.is_repeat and not include_repeats:
            continue
        keys = {
            (a.interface, step, pair) for step in (a.start_step, None) for pair in (a.pair, ALL)
        }
        for key in keys:
            groups.setdefault(key, []).append(a.chosen_step)
    return [_midpoint_summary(key, groups[key]) for key in sorted(groups, key=_midpoint_order)]


def midpoint_consistency(answers: Iterable[MidpointAnswer]) -> list[ConsistencySummary]:
    """Self-consistency from repeat trials, per interface and pooled (ALL first, then by name).

    An (interface, annotator, pair) counts when it has exactly one main and one repeat answer;
    one with either missing is skipped (its repeat was not shown, or the session ended early).
    Two mains or two repeats for the same key (possible in imported legacy files) cannot be
    paired without guessing, so that key is skipped too rather than failing the whole analysis.
    Interfaces without any counted pair are left out; no pairs at all gives [].
    """
    mains: dict[tuple[str, str, str], int] = {}
    repeats: dict[tuple[str, str, str], int] = {}
    ambiguous: set[tuple[str, str, str]] = set()
    for a in answers:
        key = (a.interface, a.annotator, a.pair)
        target = repeats if a.is_repeat else mains
        if key in target:
            ambiguous.add(key)
        target[key] = a.chosen_step
    diffs: dict[str, list[int]] = {}
    for key in sorted((mains.keys() & repeats.keys()) - ambiguous):
        diff = abs(mains[key] - repeats[key])
        diffs.setdefault(key[0], []).append(diff)
        diffs.setdefault(ALL, []).append(diff)
    return [
        ConsistencySummary(
            interface=interface,
            n_pairs=len(steps),
            mean_abs_diff=sum(steps) / (10 * len(steps)),
            share_identical=steps.count(0) / len(steps),
        )
        for interface, steps in sorted(diffs.items(), key=lambda kv: (kv[0] != ALL, kv[0]))
    ]
