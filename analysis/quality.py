"""Quality-control rule sets over categorical responses (pure; no Django).

`cifar10s-exclusions` is the CIFAR-10S rule set (docs/methods/soft-labels.md#quality-control): per
participant, over all their categorical trials (repeats included),
- "double select": a trial whose top or second class is also ticked impossible;
- "zero probability": a trial whose raw (typed) p1 is 0;
- excluded if either count is above 1, or if either is at least 1 and the top-1 accuracy
  against the images' ground-truth class is below 0.75;
- excluded on any probability outside 0-100.
The report says who would be excluded and why; excluding is the researcher's decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

CIFAR10S_EXCLUSIONS: Final = "cifar10s-exclusions"
RULE_SETS: Final = (CIFAR10S_EXCLUSIONS,)

MAX_FLAGGED_TRIALS: Final = 1  # "either count > 1"
MIN_ACCURACY: Final = 0.75  # "≥ 1 together with top-1 accuracy < 0.75"

DOUBLE_SELECT: Final = "double-select"
ZERO_PROBABILITY: Final = "zero-probability"
LOW_ACCURACY: Final = "flagged-with-low-accuracy"
OUT_OF_RANGE: Final = "probability-out-of-range"


@dataclass(frozen=True)
class QualityTrial:
    """One categorical response as the rules see it (classes are indices).

    p1/p2 are the stored percentages, p1_raw the number the participant typed for p1 (legacy
    data store 100 for a typed 0); true_class is the image's ground truth, None when it has
    none (mixed images), in which case the trial does not count towards the accuracy.
    """

    participant: int
    top: int
    p1: float
    p1_raw: float
    second: int | None
    p2: float | None
    impossible: frozenset[int]
    true_class: int | None


@dataclass(frozen=True)
class ParticipantQuality:
    participant: int
    n_trials: int
    double_select: int
    zero_probability: int
    out_of_range: int
    n_scored: int  # trials with a ground-truth class
    accuracy: float | None  # top-1 accuracy over the scored trials; None when there are none
    excluded: bool
    # Every rule that excludes the participant, in the order above; () when kept.
    reasons: tuple[str, ...]


def is_double_select(t: QualityTrial) -> bool:
    return t.top in t.impossible or (t.second is not None and t.second in t.impossible)


def is_out_of_range(t: QualityTrial) -> bool:
    return any(p is not None and not 0 <= p <= 100 for p in (t.p1, t.p2, t.p1_raw))


def _participant(participant: int, trials: list[QualityTrial]) -> ParticipantQuality:
    double = sum(is_double_select(t) for t in trials)
    zero = sum(t.p1_raw == 0 for t in trials)
    out = sum(is_out_of_range(t) for t in trials)
    scored = [t for t in trials if t.true_class is not None]
    accuracy = sum(t.top == t.true_class for t in scored) / len(scored) if scored else None
    reasons = []
    if double > MAX_FLAGGED_TRIALS:
        reasons.append(DOUBLE_SELECT)
    if zero > MAX_FLAGGED_TRIALS:
        reasons.append(ZERO_PROBABILITY)
    if (double or zero) and accuracy is not None and accuracy < MIN_ACCURACY:
        reasons.append(LOW_ACCURACY)
    if out:
        reasons.append(OUT_OF_RANGE)
    return ParticipantQuality(
        participant=participant,
        n_trials=len(trials),
        double_select=double,
        zero_probability=zero,
        out_of_range=out,
        n_scored=len(scored),
        accuracy=accuracy,
        excluded=bool(reasons),
        reasons=tuple(reasons),
    )


def cifar10s_exclusions(trials: Iterable[QualityTrial]) -> list[ParticipantQuality]:
    """One report per participant who has trials, sorted by participant."""
    groups: dict[int, list[QualityTrial]] = {}
    for t in trials:
        groups.setdefault(t.participant, []).append(t)
    return [_participant(p, groups[p]) for p in sorted(groups)]


def excluded_participants(reports: Iterable[ParticipantQuality]) -> set[int]:
    return {r.participant for r in reports if r.excluded}
