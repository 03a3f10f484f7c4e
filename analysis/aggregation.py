# Pure soft-label maths: responses -> per-annotation vectors -> per-stimulus soft label.
# ORM-free by design (house-style.md convention 12): services do the I/O around these functions.
# Every formula below follows /work/shared/design/soft-labels.md; section names are cited inline.
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Self

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

CIFAR10S_TOP2_CLAMP: Final = "cifar10s-top2-clamp"
HMIX_2023: Final = "hmix-2023"
CLEAN_TOP2_CLAMP: Final = "clean-top2-clamp"
TOP1: Final = "top1"
UNIFORM: Final = "uniform"
RENORMALISE: Final = "renormalise"
SIMSELECT2: Final = "simselect2"

# soft-labels.md "Other constructions": clean is the default for new studies, the legacy
# construction the default for imported (published) data.
DEFAULT_NEW_STUDY_CONSTRUCTION: Final = CLEAN_TOP2_CLAMP
DEFAULT_IMPORTED_CONSTRUCTION: Final = CIFAR10S_TOP2_CLAMP

DEFAULT_GAMMA: Final = 0.1

# Tolerance used by the *new* constructions when deciding whether the stated mass reaches 1.
# The legacy ones compare exactly on purpose (quirk Q3): 92.3 % + 7.7 % sums to
# 0.9999999999999999 in floating point and would otherwise be treated as "less than 1".
_ONE_TOLERANCE: Final = 1e-9


@dataclass(frozen=True)
class Annotation:
    """One categorical response (soft-labels.md "Input record").

    Class fields are indices into the study's ordered class list; percents are as given (0-100).
    """

    top: int
    p1: float
    second: int | None
    p2: float | None
    impossible: frozenset[int]


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def _check_indices(a: Annotation, k: int) -> None:
    _check_k(k)
    # numpy would silently wrap a negative index onto the last class, so range-check explicitly.
    indices = [a.top, *([] if a.second is None else [a.second]), *a.impossible]
    for index in indices:
        if not 0 <= index < k:
            raise ValueError(f"class index {index} is outside 0..{k - 1}")


def _check_percents(a: Annotation, *, allow_above_100: bool) -> None:
    # Legacy constructions accept typed values above 100 so that any stored raw response can be
    # recomputed as the published pipeline would; the new ones require a real percentage.
    for label, value in (("p1", a.p1), ("p2", a.p2)):
        if value is None:
            continue
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{label} must be a finite percentage >= 0, got {value}")
        if not allow_above_100 and value > 100:
            raise ValueError(f"{label} must be at most 100, got {value}")


def _check_gamma(gamma: float) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")


def _reject_same_second(a: Annotation) -> None:
    # soft-labels.md "Other constructions": "s == t is rejected at input" (the fix of Q1).
    if a.second is not None and a.second == a.top:
        raise ValueError(f"second class equals top class ({a.top})")


def _second(a: Annotation) -> tuple[int, float] | None:
    # Pseudo-code: "if s is a class and p2 is given"; the same rule is used by every construction.
    if a.second is None or a.p2 is None:
        return None
    return a.second, a.p2


def _stated(a: Annotation, k: int) -> FloatArray:
    """The stated probabilities: v[t] = p1, v[s] = p2, divided by 100."""
    v = np.zeros(k, dtype=np.float64)
    v[a.top] = a.p1
    second = _second(a)
    if second is not None:
        v[second[0]] = second[1]  # Q1 in the legacy constructions: overwrites p1 when s == t
    return v / 100


def _one_hot(index: int, k: int) -> FloatArray:
    v = np.zeros(k, dtype=np.float64)
    v[index] = 1.0
    return v


def _normalise_or_top(v: FloatArray, top: int) -> FloatArray:
    """Final `v = v / sum(v)`, falling back to all mass on the top class when the sum is 0.

    A zero sum only arises from degenerate responses (every class ticked impossible with no stated
    mass, or the legacy negative-k quirk cancelling exactly); the top class is the one thing the
    participant positively chose, so it is the least surprising place for the mass, and it keeps
    NaN out of every stored label.
    """
    total = float(np.sum(v))
    if total == 0.0 or not math.isfinite(total):
        return _one_hot(top, v.shape[0])
    return v / total


def _reaches_one(s: float) -> bool:
    return s >= 1.0 or math.isclose(s, 1.0, rel_tol=0.0, abs_tol=_ONE_TOLERANCE)


# --------------------------------------------------------------------------------------------
# Constructions (soft-labels.md "Construction ..." sections)
# --------------------------------------------------------------------------------------------


def _legacy_start(a: Annotation, k: int, gamma: float) -> tuple[FloatArray, list[int], int, float]:
    _check_gamma(gamma)
    _check_indices(a, k)
    _check_percents(a, allow_above_100=True)
    v = _stated(a, k)
    possible = [j for j in range(k) if j not in a.impossible]
    # Q2: a count, not a set, so it is wrong (even 0 or negative) when t or s is ticked impossible.
    k_count = len(possible) - int(np.count_nonzero(v > 0))
    s = float(np.sum(v))
    return v, possible, k_count, s


def cifar10s_top2_clamp(a: Annotation, k: int, gamma: float = DEFAULT_GAMMA) -> FloatArray:
    """The published CIFAR-10S construction, line by line, quirks Q1-Q3 included.

    Because Q2 lets k be negative, a response whose top and second classes are both ticked
    impossible, with exactly one other possible class, yields negative entries. That is what the
    published algorithm does, so it is reproduced, not repaired (use `clean-top2-clamp`).
    """
    v, possible, k_count, s = _legacy_start(a, k, gamma)
    # Q3: exact float comparisons throughout.
    if s < 1:
        r = 1 - s
        shrink = False
    else:
        v = v / s
        if k_count != 0:
            r = gamma
            shrink = True
        else:
            r = 0.0
            shrink = False
    if k_count != 0:
        at_zero = [j for j in possible if v[j] == 0]
        stated = v != 0  # "before the additions"
        for j in at_zero:
            v[j] += r / k_count
        if shrink:
            v[stated] *= 1 - r
    return _normalise_or_top(v, a.top)


def hmix_2023(a: Annotation, k: int, gamma: float = DEFAULT_GAMMA) -> FloatArray:
    """The variant used for the published H-Mix categorical labels.

    Identical to `cifar10s_top2_clamp` except when k != 0 and S >= 1 (soft-labels.md
    "Construction hmix-2023"). Where the spec is silent: the classes "at zero" that receive
    gamma/k are those at zero in the response, before the subtraction; an entry floored to 0 by
    the subtraction does not receive any (k was counted on the response too).
    """
    v, possible, k_count, s = _legacy_start(a, k, gamma)
    if k_count == 0 or s < 1:
        return cifar10s_top2_clamp(a, k, gamma)
    at_zero = [j for j in possible if v[j] == 0]
    if s != 1:  # S > 1: no renormalisation first; take gamma off the stated entries instead
        stated = v > 0
        v[stated] = np.maximum(v[stated] - gamma / int(np.count_nonzero(stated)), 0.0)
    for j in at_zero:
        v[j] += gamma / k_count
    return _normalise_or_top(v, a.top)


def clean_top2_clamp(a: Annotation, k: int, gamma: float = DEFAULT_GAMMA) -> FloatArray:
    """`cifar10s-top2-clamp` with its quirks fixed; the default for new studies.

    - Q1: s == t raises ValueError.
    - Q2: k is the number of possible classes currently at zero, and a class ticked impossible
      gets nothing, including a stated top/second class that was also ticked impossible (the
      "double select" of the exclusion rules): its stated probability is dropped.
    - Q3: "S < 1" allows for float rounding (92.3 % + 7.7 % counts as 1).
    """
    _check_gamma(gamma)
    _check_indices(a, k)
    _check_percents(a, allow_above_100=False)
    _reject_same_second(a)
    v = _stated(a, k)
    v[sorted(a.impossible)] = 0.0
    at_zero = [j for j in range(k) if j not in a.impossible and v[j] == 0]
    s = float(np.sum(v))
    if not _reaches_one(s):
        r = 1 - s
        shrink = False
    else:
        v = v / s
        r = gamma if at_zero else 0.0
        shrink = bool(at_zero)
    if at_zero:
        stated = v != 0
        v[at_zero] += r / len(at_zero)
        if shrink:
            v[stated] *= 1 - r
    return _normalise_or_top(v, a.top)


def top1(a: Annotation, k: int) -> FloatArray:
    # Choice (spec only says "ignore the second class"): clean-top2-clamp without the second class
    # and with gamma = 0, i.e. spread 1 - p1 over the possible classes at zero, no clamp at 100 %.
    _check_indices(a, k)  # an out-of-range second class is corrupt input even though it is ignored
    return clean_top2_clamp(dataclasses.replace(a, second=None, p2=None), k, gamma=0.0)


def uniform(a: Annotation, k: int) -> FloatArray:
    """Ignore I; if S < 1 spread 1 - S evenly over every class at zero; else renormalise."""
    _check_indices(a, k)
    _check_percents(a, allow_above_100=False)
    _reject_same_second(a)
    v = _stated(a, k)
    s = float(np.sum(v))
    at_zero = np.flatnonzero(v == 0)
    # With no class at zero (K <= 2, all stated) there is nowhere to spread: renormalise.
    if not _reaches_one(s) and at_zero.size > 0:
        v[at_zero] = (1 - s) / at_zero.size
    return _normalise_or_top(v, a.top)


def renormalise(a: Annotation, k: int) -> FloatArray:
    """v / sum(v) only (ignores I); a response with no stated mass falls back to the top class."""
    _check_indices(a, k)
    _check_percents(a, allow_above_100=False)
    _reject_same_second(a)
    return _normalise_or_top(_stated(a, k), a.top)


def simselect2(a: Annotation, k: int) -> FloatArray:
    """0.5 / 0.5 on t and s, or 1.0 on t without a second class (percents and I are ignored)."""
    _check_indices(a, k)
    _reject_same_second(a)
    second = _second(a)
    if second is None:
        return _one_hot(a.top, k)
    v = np.zeros(k, dtype=np.float64)
    v[[a.top, second[0]]] = 0.5
    return v


def label_smoothing(v: FloatArray, eps: float) -> FloatArray:
    """soft-labels.md "Other constructions": v * (1 - eps) + eps / K, after any construction."""
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {eps}")
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError("label_smoothing expects a non-empty 1-D vector")
    result: FloatArray = arr * (1.0 - eps) + eps / arr.shape[0]
    return result


Construction = Callable[..., FloatArray]

CONSTRUCTIONS: dict[str, Construction] = {
    CIFAR10S_TOP2_CLAMP: cifar10s_top2_clamp,
    HMIX_2023: hmix_2023,
    CLEAN_TOP2_CLAMP: clean_top2_clamp,
    TOP1: top1,
    UNIFORM: uniform,
    RENORMALISE: renormalise,
    SIMSELECT2: simselect2,
}

GAMMA_CONSTRUCTIONS: Final = frozenset({CIFAR10S_TOP2_CLAMP, HMIX_2023, CLEAN_TOP2_CLAMP})


def _unit_float(label: str, value: object, *, upper_inclusive: bool) -> float:
    # bool is an int subclass; a stored `true` for gamma is a bug, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{label} must be a number, got {value!r}")
    number = float(value)
    in_range = 0.0 <= number <= 1.0 if upper_inclusive else 0.0 <= number < 1.0
    if not in_range:
        bounds = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{label} must be in {bounds}, got {value!r}")
    return number


@dataclass(frozen=True)
class Method:
    """A named construction with the parameters stored beside every computed label."""

    name: str
    gamma: float = DEFAULT_GAMMA
    smoothing: float = 0.0
    include_repeats: bool = True

    def __post_init__(self) -> None:
        if self.name not in CONSTRUCTIONS:
            valid = ", ".join(sorted(CONSTRUCTIONS))
            raise ValueError(f"unknown construction {self.name!r}; valid names: {valid}")
        # Normalise ints to float so params() serialises the same JSON for 0 and 0.0.
        gamma = _unit_float("gamma", self.gamma, upper_inclusive=True)
        smoothing = _unit_float("smoothing", self.smoothing, upper_inclusive=False)
        if not isinstance(self.include_repeats, bool):
            raise ValueError(f"include_repeats must be a bool, got {self.include_repeats!r}")
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "smoothing", smoothing)

    @property
    def uses_gamma(self) -> bool:
        return self.name in GAMMA_CONSTRUCTIONS

    def params(self) -> dict[str, float | bool]:
        # Always all three keys, in this order, so stored JSON is stable and round-trips exactly;
        # gamma is kept even for constructions that ignore it.
        return {
            "gamma": self.gamma,
            "smoothing": self.smoothing,
            "include_repeats": self.include_repeats,
        }

    @classmethod
    def from_params(cls, name: str, params: Mapping[str, object]) -> Self:
        unknown = set(params) - {"gamma", "smoothing", "include_repeats"}
        if unknown:
            raise ValueError(f"unknown method parameters: {', '.join(sorted(unknown))}")
        gamma = _unit_float("gamma", params.get("gamma", DEFAULT_GAMMA), upper_inclusive=True)
        smoothing = _unit_float("smoothing", params.get("smoothing", 0.0), upper_inclusive=False)
        include_repeats = params.get("include_repeats", True)
        if not isinstance(include_repeats, bool):
            raise ValueError(f"include_repeats must be a bool, got {include_repeats!r}")
        return cls(name=name, gamma=gamma, smoothing=smoothing, include_repeats=include_repeats)


def construct(a: Annotation, k: int, method: Method) -> FloatArray:
    construction = CONSTRUCTIONS[method.name]
    v = construction(a, k, gamma=method.gamma) if method.uses_gamma else construction(a, k)
    if method.smoothing > 0:
        v = label_smoothing(v, method.smoothing)
    return v


def construct_many(annotations: Sequence[Annotation], k: int, method: Method) -> FloatArray:
    """One row per annotation (N x K); N may be 0."""
    _check_k(k)
    if not annotations:
        return np.zeros((0, k), dtype=np.float64)
    return np.stack([construct(a, k, method) for a in annotations])


# --------------------------------------------------------------------------------------------
# Aggregation (soft-labels.md "Aggregation across annotations")
# --------------------------------------------------------------------------------------------


# eq=False: the generated __eq__ would compare ndarrays with `==`, which raises on truth testing.
@dataclass(frozen=True, eq=False)
class AggregatedLabel:
    probs: FloatArray
    n_annotations: int
    n_annotators: int


def _column_mean(rows: Sequence[FloatArray]) -> FloatArray:
    # math.fsum is exactly rounded, so the mean does not depend on row order: the same stored
    # responses always give bit-identical labels, however the database returns them.
    stacked = np.stack(rows)
    sums = [math.fsum(stacked[:, j]) for j in range(stacked.shape[1])]
    return np.asarray(sums, dtype=np.float64) / len(rows)


def aggregate(
    vectors: FloatArray,
    annotator_ids: Sequence[Hashable],
    is_repeat: Sequence[bool],
    *,
    include_repeats: bool = True,
    per_annotator_first: bool = False,
) -> AggregatedLabel:
    """Arithmetic mean of the annotation vectors of one stimulus.

    Default as in the published files: repeats count as extra annotations. With
    include_repeats=False repeat rows are dropped; with per_annotator_first each annotator's rows
    are averaged first and the annotator means averaged. Excluded participants are the caller's
    to leave out. n_annotations counts the rows used, n_annotators the distinct ids among them.
    """
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (N x K) array, got shape {matrix.shape}")
    if not matrix.shape[0] == len(annotator_ids) == len(is_repeat):
        raise ValueError(
            f"{matrix.shape[0]} vectors, {len(annotator_ids)} annotator ids and "
            f"{len(is_repeat)} repeat flags must have the same length"
        )
    used = [i for i in range(matrix.shape[0]) if include_repeats or not is_repeat[i]]
    if not used:
        raise ValueError("no annotations to aggregate")
    groups: dict[Hashable, list[FloatArray]] = {}
    for i in used:
        groups.setdefault(annotator_ids[i], []).append(matrix[i])
    if per_annotator_first:
        probs = _column_mean([_column_mean(rows) for rows in groups.values()])
    else:
        probs = _column_mean([matrix[i] for i in used])
    probs.flags.writeable = False
    return AggregatedLabel(probs=probs, n_annotations=len(used), n_annotators=len(groups))


# --------------------------------------------------------------------------------------------
# Summaries (soft-labels.md "Useful summaries per stimulus")
# --------------------------------------------------------------------------------------------


def _as_vector(p: FloatArray) -> FloatArray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError("expected a non-empty 1-D probability vector")
    return arr


def entropy(p: FloatArray) -> float:
    """Shannon entropy in nats, with 0 * log 0 = 0."""
    arr = _as_vector(p)
    mass = arr[arr > 0]
    return float(-np.sum(mass * np.log(mass)))


def _kl(p: FloatArray, q: FloatArray) -> float:
    # Only called with q = (p + m) / 2, which is positive wherever p is.
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


@dataclass(frozen=True)
class LabelSummary:
    entropy: float
    max_prob: float
    argmax: int
    mass_class1: float | None
    mass_class2: float | None
    # KL(human || mixup) is infinite whenever people put mass outside the two endpoint classes,
    # so the divergence from the mixup label is reported as total variation and Jensen-Shannon
    # (nats, at most ln 2), both always finite.
    tv_from_mixup: float | None
    js_from_mixup: float | None


def label_summary(
    p: FloatArray,
    class1: int | None = None,
    class2: int | None = None,
    lam: float | None = None,
) -> LabelSummary:
    """Per-stimulus summaries; the mixup comparison needs class1, class2 and lam.

    The traditional mixup label puts lam on class1 (the weight of image 1) and 1 - lam on class2.
    argmax breaks ties towards the lower class index (numpy's rule).
    """
    arr = _as_vector(p)
    k = arr.shape[0]
    for label, index in (("class1", class1), ("class2", class2)):
        if index is not None and not 0 <= index < k:
            raise ValueError(f"{label} index {index} is outside 0..{k - 1}")
    tv: float | None = None
    js: float | None = None
    if lam is not None:
        if class1 is None or class2 is None:
            raise ValueError("lam needs both class1 and class2")
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {lam}")
        mixup = np.zeros(k, dtype=np.float64)
        mixup[class1] += lam
        mixup[class2] += 1.0 - lam
        tv = 0.5 * float(np.sum(np.abs(arr - mixup)))
        middle = (arr + mixup) / 2
        js = 0.5 * _kl(arr, middle) + 0.5 * _kl(mixup, middle)
    return LabelSummary(
        entropy=entropy(arr),
        max_prob=float(np.max(arr)),
        argmax=int(np.argmax(arr)),
        mass_class1=None if class1 is None else float(arr[class1]),
        mass_class2=None if class2 is None else float(arr[class2]),
        tv_from_mixup=tv,
        js_from_mixup=js,
    )
