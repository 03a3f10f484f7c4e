# Pure IRI alignment scores (interfaces E, 2AFC, and F, clustering).
# ORM-free by design (docs/architecture.md#layers): services turn responses into judgments and
# store the results. The formulas are defined in docs/methods/iri-alignment.md.
#
# Items and annotators are sorted before anything is indexed or drawn, and sums go through
# math.fsum or integer arithmetic, so a summary (bootstrap included) is bit-identical however the
# judgments are ordered.
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final

import numpy as np
import numpy.typing as npt

from analysis.summaries import pearson

# docs/methods/iri-alignment.md#score: clustering picks one of three columns, so chance is 1/3 (the
# papers print 33.3).
CLUSTERING_CHANCE: Final = 100 / 3
DEFAULT_CATCH_THRESHOLD: Final = 80.0


@dataclass(frozen=True)
class IriJudgment:
    """One 2AFC trial, or one clustering row: did the annotator pick the IRI's target?

    group identifies what is being scored, e.g. (model, layer, regime, regulariser).
    """

    item: str
    annotator: str
    correct: bool
    group: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlignmentSummary:
    n_judgments: int
    n_annotators: int
    n_items: int
    n_correct: int
    # docs/methods/iri-alignment.md#score: mean of the annotator scores A_a ± their population SD
    # (ddof = 0), in percent.
    mean_score: float
    sd_score: float
    pooled_percent: float  # 100 · all correct / all judgments
    wilson_low: float  # Wilson score interval on the pooled trials, percent
    wilson_high: float
    # Two-way cluster bootstrap percentile interval for mean_score, percent; None when n_boot is
    # 0 or no replicate drew an item judged by a drawn annotator.
    boot_low: float | None
    boot_high: float | None
    n_boot: int  # replicates requested
    n_boot_used: int  # replicates with at least one judgment
    seed: int
    confidence: float
    chance: float | None
    chance_corrected: float | None  # (mean_score − chance) / (100 − chance), a fraction


def _counts(judgments: Iterable[IriJudgment]) -> dict[str, tuple[int, int]]:
    totals: dict[str, tuple[int, int]] = {}
    for j in judgments:
        correct, judged = totals.get(j.annotator, (0, 0))
        totals[j.annotator] = (correct + bool(j.correct), judged + 1)
    return totals


def annotator_scores(judgments: Iterable[IriJudgment]) -> dict[str, float]:
    """A_a = 100 · (judgments a got right) / (judgments a made), keyed and ordered by annotator."""
    totals = _counts(judgments)
    return {a: 100 * totals[a][0] / totals[a][1] for a in sorted(totals)}


def wilson_interval(correct: int, total: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion, in percent.

    Wilson (1927), JASA 22(158): with p = k/n and z the two-sided normal quantile,
    centre = (p + z²/2n) / (1 + z²/n), half-width = z / (1 + z²/n) · √(p(1 − p)/n + z²/4n²).
    """
    if total <= 0 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total > 0, got {correct}/{total}")
    _check_confidence(confidence)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = correct / total
    z2n = z * z / total
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / total + z2n / (4 * total))
    # At p = 0 (p = 1) the lower (upper) bound is exactly 0 (1) in exact arithmetic, but
    # centre − half leaves a rounding residue of order 1e-17: state it exactly.
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == total else min(1.0, centre + half)
    return 100 * low, 100 * high


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


IntMatrix = npt.NDArray[np.int64]


def _cell_matrices(
    judgments: Sequence[IriJudgment],
) -> tuple[IntMatrix, IntMatrix]:
    """(correct, judged) counts per (item, annotator), rows and columns in sorted key order."""
    items = {item: i for i, item in enumerate(sorted({j.item for j in judgments}))}
    annotators = {a: i for i, a in enumerate(sorted({j.annotator for j in judgments}))}
    correct = np.zeros((len(items), len(annotators)), dtype=np.int64)
    judged = np.zeros_like(correct)
    for j in judgments:
        cell = items[j.item], annotators[j.annotator]
        correct[cell] += bool(j.correct)
        judged[cell] += 1
    return correct, judged


def _bootstrap(
    correct: IntMatrix, judged: IntMatrix, *, n_boot: int, seed: int
) -> npt.NDArray[np.float64]:
    """Replicates of the mean of annotator scores under a two-way cluster bootstrap.

    Items and annotators are drawn with replacement, independently (the design is crossed, so
    resampling only one of them understates the uncertainty). A replicate's score for annotator a
    is 100 · Σ_i m_i·correct[i, a] / Σ_i m_i·judged[i, a], where m_i counts the draws of item i;
    annotator copies are then averaged with weight w_a (their draw count), over the annotators
    with at least one judgment on a drawn item. A replicate with none of those is skipped.
    """
    n_items, n_annotators = correct.shape
    rng = np.random.default_rng(seed)
    stats: list[float] = []
    for _ in range(n_boot):
        m = np.bincount(rng.integers(0, n_items, n_items), minlength=n_items)
        w = np.bincount(rng.integers(0, n_annotators, n_annotators), minlength=n_annotators)
        num = m @ correct  # integer matrix products: exact
        den = m @ judged
        present = (w > 0) & (den > 0)
        if not present.any():
            continue
        scores = 100 * num[present] / den[present]
        weights = w[present]
        stats.append(math.fsum(scores * weights) / int(weights.sum()))
    return np.asarray(stats, dtype=np.float64)


def summarise(
    judgments: Iterable[IriJudgment],
    *,
    chance: float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> AlignmentSummary:
    """The summary (docs/methods/iri-alignment.md) of one set of judgments (one model, or one
    group).

    chance (percent) adds the chance-corrected score; pass CLUSTERING_CHANCE for interface F.
    n_boot = 0 skips the bootstrap. Raises ValueError on no judgments.
    """
    rows = list(judgments)
    if not rows:
        raise ValueError("no judgments to summarise")
    _check_confidence(confidence)
    if isinstance(n_boot, bool) or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if chance is not None and not 0.0 <= chance < 100.0:
        raise ValueError(f"chance must be a percentage in [0, 100), got {chance}")

    scores = list(annotator_scores(rows).values())
    mean = math.fsum(scores) / len(scores)
    sd = math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / len(scores))
    n_correct = sum(bool(j.correct) for j in rows)
    wilson_low, wilson_high = wilson_interval(n_correct, len(rows), confidence=confidence)

    correct, judged = _cell_matrices(rows)
    stats = _bootstrap(correct, judged, n_boot=n_boot, seed=seed)
    boot_low: float | None = None
    boot_high: float | None = None
    if stats.size:
        alpha = 1 - confidence
        low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
        boot_low, boot_high = float(low), float(high)

    return AlignmentSummary(
        n_judgments=len(rows),
        n_annotators=correct.shape[1],
        n_items=correct.shape[0],
        n_correct=n_correct,
        mean_score=mean,
        sd_score=sd,
        pooled_percent=100 * n_correct / len(rows),
        wilson_low=wilson_low,
        wilson_high=wilson_high,
        boot_low=boot_low,
        boot_high=boot_high,
        n_boot=n_boot,
        n_boot_used=int(stats.size),
        seed=seed,
        confidence=confidence,
        chance=chance,
        chance_corrected=None if chance is None else (mean - chance) / (100 - chance),
    )


def summarise_by_group(
    judgments: Iterable[IriJudgment],
    *,
    chance: float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[tuple[str, ...], AlignmentSummary]:
    """summarise() per distinct full `group` tuple, ordered by group.

    Coarser groupings (by model alone, say) are the caller's: build the judgments with the
    shorter group tuple. Every group uses the same seed, so each is reproducible on its own.
    """
    groups: dict[tuple[str, ...], list[IriJudgment]] = {}
    for j in judgments:
        groups.setdefault(j.group, []).append(j)
    return {
        key: summarise(groups[key], chance=chance, n_boot=n_boot, seed=seed, confidence=confidence)
        for key in sorted(groups)
    }


def catch_flags(
    catch_results: Mapping[str, Sequence[bool]], *, threshold: float = DEFAULT_CATCH_THRESHOLD
) -> dict[str, bool]:
    """Annotator → True when their catch-trial accuracy (percent) is below threshold.

    An annotator with no catch trials has no evidence against them and is not flagged.
    """
    if not 0.0 <= threshold <= 100.0:
        raise ValueError(f"threshold must be a percentage in [0, 100], got {threshold}")
    flags = {}
    for annotator in sorted(catch_results):
        results = catch_results[annotator]
        # 100·k/n < t compared as 100·k < t·n, so 4/5 against 80 is not flagged by rounding.
        right = sum(map(bool, results))
        flags[annotator] = bool(results) and 100 * right < threshold * len(results)
    return flags


def _check_scores(scores: Mapping[str, float]) -> None:
    bad = sorted(name for name, value in scores.items() if not math.isfinite(value))
    if bad:
        raise ValueError(f"scores must be finite numbers; not for {', '.join(bad)}")


def rank_models(scores: Mapping[str, float]) -> list[str]:
    """Model names by score, highest first; equal scores in name order."""
    _check_scores(scores)
    return sorted(scores, key=lambda name: (-scores[name], name))


def _average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of the ranks they span (as scipy.stats.rankdata)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(a: Mapping[str, float], b: Mapping[str, float]) -> float | None:
    """Spearman rank correlation over the keys both share (Pearson on average ranks).

    None when fewer than two keys are shared or either side ranks them all equal.
    """
    _check_scores(a)
    _check_scores(b)
    common = sorted(a.keys() & b.keys())
    if len(common) < 2:
        return None
    return pearson(_average_ranks([a[k] for k in common]), _average_ranks([b[k] for k in common]))
