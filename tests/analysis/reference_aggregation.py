"""Slow per-annotation reference of analysis/aggregation.py, in plain Python (lists, no numpy).

This is the per-annotation code the vectorised constructions replaced, written out once more
line by line from docs/methods/soft-labels.md so the property tests have something independent
to compare against; the bulk-aggregation benchmark uses it as its plain-Python baseline.
Validation is left out: the tests feed it valid input only.
"""

import math
from collections.abc import Hashable, Sequence

from analysis.aggregation import Annotation

_ONE_TOLERANCE = 1e-9


def _stated(a: Annotation, k: int) -> list[float]:
    v = [0.0] * k
    v[a.top] = a.p1
    if a.second is not None and a.p2 is not None:
        v[a.second] = a.p2  # Q1: overwrites p1 when s == t
    return [x / 100 for x in v]


def numpy_order_sum(v: Sequence[float]) -> float:
    """sum(v) in the order numpy's pairwise summation adds a short vector (8 partial sums).

    Only the final normalisation needs it: in the legacy negative-k quirk the total can cancel
    to about 1e-17, and then the summation order decides the result, not the construction.
    """
    if len(v) < 8:
        total = 0.0
        for x in v:
            total += x
        return total
    r = list(v[:8])
    i = 8
    while i + 8 <= len(v):
        for j in range(8):
            r[j] += v[i + j]
        i += 8
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for x in v[i:]:
        total += x
    return total


def _normalise_or_top(v: list[float], top: int) -> list[float]:
    total = numpy_order_sum(v)
    if total == 0.0 or not math.isfinite(total):
        return [1.0 if j == top else 0.0 for j in range(len(v))]
    return [x / total for x in v]


def _reaches_one(s: float) -> bool:
    return s >= 1.0 or abs(s - 1.0) <= _ONE_TOLERANCE


def cifar10s_top2_clamp(a: Annotation, k: int, gamma: float) -> list[float]:
    v = _stated(a, k)
    possible = [j for j in range(k) if j not in a.impossible]
    k_count = len(possible) - sum(1 for x in v if x > 0)  # Q2: a count, may be <= 0
    s = sum(v)
    if s < 1:  # Q3: exact
        r, shrink = 1 - s, False
    else:
        v = [x / s for x in v]
        r, shrink = (gamma, True) if k_count != 0 else (0.0, False)
    if k_count != 0:
        stated = [x != 0 for x in v]
        for j in possible:
            if v[j] == 0:
                v[j] += r / k_count
        if shrink:
            v = [x * (1 - r) if stated[j] else x for j, x in enumerate(v)]
    return _normalise_or_top(v, a.top)


def hmix_2023(a: Annotation, k: int, gamma: float) -> list[float]:
    v = _stated(a, k)
    possible = [j for j in range(k) if j not in a.impossible]
    k_count = len(possible) - sum(1 for x in v if x > 0)
    s = sum(v)
    if k_count == 0 or s < 1:
        return cifar10s_top2_clamp(a, k, gamma)
    at_zero = [j for j in possible if v[j] == 0]
    if s != 1:
        n_stated = sum(1 for x in v if x > 0)
        v = [max(x - gamma / n_stated, 0.0) if x > 0 else x for x in v]
    for j in at_zero:
        v[j] += gamma / k_count
    return _normalise_or_top(v, a.top)


def clean_top2_clamp(a: Annotation, k: int, gamma: float) -> list[float]:
    v = _stated(a, k)
    for j in a.impossible:
        v[j] = 0.0
    at_zero = [j for j in range(k) if j not in a.impossible and v[j] == 0]
    s = sum(v)
    if not _reaches_one(s):
        r, shrink = 1 - s, False
    else:
        v = [x / s for x in v]
        r, shrink = (gamma, True) if at_zero else (0.0, False)
    if at_zero:
        stated = [x != 0 for x in v]
        for j in at_zero:
            v[j] += r / len(at_zero)
        if shrink:
            v = [x * (1 - r) if stated[j] else x for j, x in enumerate(v)]
    return _normalise_or_top(v, a.top)


def top1(a: Annotation, k: int, gamma: float) -> list[float]:
    return clean_top2_clamp(Annotation(a.top, a.p1, None, None, a.impossible), k, 0.0)


def uniform(a: Annotation, k: int, gamma: float) -> list[float]:
    v = _stated(a, k)
    s = sum(v)
    at_zero = [j for j in range(k) if v[j] == 0]
    if not _reaches_one(s) and at_zero:
        for j in at_zero:
            v[j] = (1 - s) / len(at_zero)
    return _normalise_or_top(v, a.top)


def renormalise(a: Annotation, k: int, gamma: float) -> list[float]:
    return _normalise_or_top(_stated(a, k), a.top)


def simselect2(a: Annotation, k: int, gamma: float) -> list[float]:
    v = [0.0] * k
    if a.second is None or a.p2 is None:
        v[a.top] = 1.0
    else:
        v[a.top] = v[a.second] = 0.5
    return v


CONSTRUCTIONS = {
    "cifar10s-top2-clamp": cifar10s_top2_clamp,
    "hmix-2023": hmix_2023,
    "clean-top2-clamp": clean_top2_clamp,
    "top1": top1,
    "uniform": uniform,
    "renormalise": renormalise,
    "simselect2": simselect2,
}


def construct(a: Annotation, k: int, name: str, gamma: float, smoothing: float) -> list[float]:
    v = CONSTRUCTIONS[name](a, k, gamma)
    if smoothing > 0:
        v = [x * (1 - smoothing) + smoothing / k for x in v]
    return v


def aggregate(
    vectors: Sequence[list[float]],
    annotator_ids: Sequence[Hashable],
    is_repeat: Sequence[bool],
    *,
    include_repeats: bool,
) -> tuple[list[float], int, int] | None:
    """(mean vector, n_annotations, n_annotators), or None when no row is used."""
    used = [i for i in range(len(vectors)) if include_repeats or not is_repeat[i]]
    if not used:
        return None
    k = len(vectors[used[0]])
    mean = [math.fsum(vectors[i][j] for i in used) / len(used) for j in range(k)]
    return mean, len(used), len({annotator_ids[i] for i in used})
