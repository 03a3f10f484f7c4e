# Pure soft-label maths: responses -> per-annotation vectors -> per-stimulus soft label.
# ORM-free by design (docs/architecture.md#layers): services do the I/O around these functions.
# Every formula below is defined, with worked examples, in docs/methods/soft-labels.md; sections
# are cited inline.
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

# docs/methods/soft-labels.md#clean-top2-clamp: clean is the default for new studies, the legacy
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
    """One categorical response (docs/methods/soft-labels.md#input-record).

    Class fields are indices into the study's ordered class list; percents are as given (0-100).
    """

    top: int
    p1: float
    second: int | None
    p2: float | None
    impossible: frozenset[int]


# --------------------------------------------------------------------------------------------
# Annotation batches: the constructions work on whole N x K arrays
# --------------------------------------------------------------------------------------------

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class AnnotationBatch:
    """N annotations as arrays: the input of every vectorised construction.

    `second` is -1 where there is no second class; `p2` is NaN where no p2 was given and
    `p2_given` says which p2 were given (a stored NaN is bad input, not "no p2"); `impossible`
    is an N x K mask. Indices are not range-checked here: the constructions do it, as the
    per-annotation ones did.
    """

    top: IntArray
    p1: FloatArray
    second: IntArray
    p2: FloatArray
    p2_given: BoolArray
    impossible: BoolArray

    @classmethod
    def from_arrays(
        cls,
        *,
        top: npt.ArrayLike,
        p1: npt.ArrayLike,
        second: npt.ArrayLike,
        p2: npt.ArrayLike,
        impossible: npt.ArrayLike,
        p2_given: npt.ArrayLike | None = None,
    ) -> Self:
        p2_arr = np.asarray(p2, dtype=np.float64)
        batch = cls(
            top=np.asarray(top, dtype=np.int64),
            p1=np.asarray(p1, dtype=np.float64),
            second=np.asarray(second, dtype=np.int64),
            p2=p2_arr,
            p2_given=~np.isnan(p2_arr) if p2_given is None else np.asarray(p2_given, dtype=bool),
            impossible=np.asarray(impossible, dtype=bool),
        )
        n = batch.top.shape[0]
        vectors = (batch.top, batch.p1, batch.second, batch.p2, batch.p2_given)
        if any(a.shape != (n,) for a in vectors) or batch.impossible.ndim != 2:
            raise ValueError("top, p1, second, p2 and p2_given must be 1-D of one length N")
        if batch.impossible.shape[0] != n:
            raise ValueError(f"impossible must be an N x K mask with N = {n}")
        return batch

    @classmethod
    def from_annotations(cls, annotations: Sequence[Annotation], k: int) -> Self:
        _check_k(k)
        impossible = np.zeros((len(annotations), k), dtype=bool)
        for row, a in enumerate(annotations):
            # The mask cannot hold an out-of-range index, and -1 means "no second class" in the
            # arrays, so those two are range-checked here with the constructions' message.
            if a.second is not None and a.second < 0:
                _raise_outside(a.second, k)
            for index in a.impossible:
                if not 0 <= index < k:
                    _raise_outside(index, k)
            impossible[row, list(a.impossible)] = True
        return cls.from_arrays(
            top=[a.top for a in annotations],
            p1=[a.p1 for a in annotations],
            second=[-1 if a.second is None else a.second for a in annotations],
            p2=[math.nan if a.p2 is None else a.p2 for a in annotations],
            p2_given=[a.p2 is not None for a in annotations],
            impossible=impossible,
        )

    def __len__(self) -> int:
        return int(self.top.shape[0])

    @property
    def k(self) -> int:
        return int(self.impossible.shape[1])

    @property
    def has_second(self) -> BoolArray:
        # "if s is a class and p2 is given"; the same rule is used by every construction.
        result: BoolArray = (self.second >= 0) & self.p2_given
        return result

    def without_second(self) -> Self:
        none = np.zeros(len(self), dtype=bool)
        return dataclasses.replace(
            self,
            second=np.full(len(self), -1, dtype=np.int64),
            p2=np.full(len(self), math.nan),
            p2_given=none,
        )


# --------------------------------------------------------------------------------------------
# Validation (raises the first problem found, with the per-annotation messages)
# --------------------------------------------------------------------------------------------


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def _raise_outside(index: int, k: int) -> None:
    raise ValueError(f"class index {index} is outside 0..{k - 1}")


def _check_indices(b: AnnotationBatch, k: int) -> None:
    _check_k(k)
    if b.k != k:
        raise ValueError(f"impossible mask has {b.k} classes, expected {k}")
    # numpy would silently wrap a negative index onto the last class, so range-check explicitly.
    bad_top = (b.top < 0) | (b.top >= k)
    if bad_top.any():
        _raise_outside(int(b.top[bad_top][0]), k)
    bad_second = (b.second < -1) | (b.second >= k)
    if bad_second.any():
        _raise_outside(int(b.second[bad_second][0]), k)


def _check_percents(b: AnnotationBatch, *, allow_above_100: bool) -> None:
    # Legacy constructions accept typed values above 100 so that any stored raw response can be
    # recomputed as the published pipeline would; the new ones require a real percentage.
    for label, values, given in (("p1", b.p1, None), ("p2", b.p2, b.p2_given)):
        checked = values if given is None else values[given]
        bad = ~np.isfinite(checked) | (checked < 0)
        if bad.any():
            raise ValueError(f"{label} must be a finite percentage >= 0, got {checked[bad][0]}")
        if not allow_above_100 and (checked > 100).any():
            raise ValueError(f"{label} must be at most 100, got {checked[checked > 100][0]}")


def _check_gamma(gamma: float) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")


def _reject_same_second(b: AnnotationBatch) -> None:
    # docs/methods/soft-labels.md#clean-top2-clamp: a second class equal to the top class is
    # refused (Q1 fixed). A second class without p2 (kept by the legacy import for the
    # exclusion rules) is no second class to any construction, so it cannot clash.
    same = b.has_second & (b.second == b.top)
    if same.any():
        raise ValueError(f"second class equals top class ({int(b.top[same][0])})")


# --------------------------------------------------------------------------------------------
# Shared steps
#
# A response states at most two classes, so every construction's vector is: the (at most two)
# stated entries, one per-row value on the classes "at zero" that receive mass, and 0 elsewhere.
# The kernels below compute the stated entries as per-row scalars and fill the N x K matrix
# once, instead of running every step of the per-annotation algorithm over the whole matrix.
# Each entry still goes through the same floating-point operations in the same order as in the
# per-annotation algorithm (docs/methods/soft-labels.md), so the results are the same to the last
# bit except for the final sum, whose order numpy chooses.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Stated:
    """The stated entries v[t] = p1 / 100 and v[s] = p2 / 100, Q1 (s == t) resolved."""

    top_value: FloatArray  # v[t]: p2 / 100 where s == t overwrote it (Q1)
    second_ok: BoolArray  # a second entry at another class than t
    second_index: IntArray  # t where there is none (never read there)
    second_value: FloatArray  # 0 where there is none


def _stated(b: AnnotationBatch) -> _Stated:
    has = b.has_second
    overwritten = has & (b.second == b.top)  # Q1 in the legacy constructions
    second_ok = has & ~overwritten
    return _Stated(
        top_value=np.where(overwritten, b.p2, b.p1) / 100,
        second_ok=second_ok,
        second_index=np.where(second_ok, b.second, b.top),
        second_value=np.where(second_ok, b.p2, 0.0) / 100,
    )


def _rows(n: int) -> IntArray:
    return np.arange(n)


def _flat(top: IntArray, index: IntArray, k: int, rows: BoolArray | None = None) -> IntArray:
    """Flat positions of (row, index) in a C-ordered N x K array (fancy 2-D indexing is slower)."""
    n = np.arange(top.shape[0]) if rows is None else np.flatnonzero(rows)
    result: IntArray = n * k + (index if rows is None else index[rows])
    return result


def _zero_possible(
    possible: BoolArray, top: IntArray, st: _Stated, top_value: FloatArray, second_value: FloatArray
) -> BoolArray:
    """Possible classes whose entry is 0: every possible class but the stated non-zero ones."""
    k = possible.shape[1]
    at_zero = possible.copy()
    flat = at_zero.reshape(-1)
    at_top = _flat(top, top, k)
    flat[at_top] &= top_value == 0
    at_second = _flat(top, st.second_index, k, st.second_ok)
    flat[at_second] &= second_value[st.second_ok] == 0
    return at_zero


def _assemble(
    at_zero: BoolArray,
    add: FloatArray,
    top: IntArray,
    st: _Stated,
    top_value: FloatArray,
    second_value: FloatArray,
) -> FloatArray:
    """v with `add` on the classes at zero and the stated values at t and s."""
    k = at_zero.shape[1]
    v = at_zero * add[:, None]  # 4x faster than np.where(at_zero, add, 0.0)
    v += 0.0  # a negative `add` (legacy quirk Q2) leaves -0.0 off the mask; store it as 0.0
    flat, zero = v.reshape(-1), at_zero.reshape(-1)
    at_top = _flat(top, top, k)
    flat[at_top] = np.where(zero[at_top], add, top_value)
    ok = st.second_ok
    at_second = _flat(top, st.second_index, k, ok)
    flat[at_second] = np.where(zero[at_second], add[ok], second_value[ok])
    return v


def _row_counts(mask: BoolArray) -> IntArray:
    # True entries per row. count_nonzero(axis=1) copies the mask first; einsum over its bytes
    # does not (a third of the time on 250,000 x 10, bench/aggregate.py's maths section).
    counts: IntArray = np.einsum("ij->i", mask.view(np.uint8), dtype=np.int64)
    return counts


def _row_sums(v: FloatArray) -> FloatArray:
    # Row sums of an N x K array: einsum adds each row left to right, about 4x faster than
    # sum(axis=1) for small K; the two differ in the last bits only (pairwise vs sequential),
    # far inside the 1e-12 every construction is tested to.
    sums: FloatArray = np.einsum("ij->i", v)
    return sums


def _one_hot(index: IntArray, k: int) -> FloatArray:
    v = np.zeros((index.shape[0], k), dtype=np.float64)
    v[_rows(index.shape[0]), index] = 1.0
    return v


def _normalise_or_top(v: FloatArray, top: IntArray) -> FloatArray:
    """Final `v = v / sum(v)`, falling back to all mass on the top class when the sum is 0.

    A zero sum only arises from degenerate responses (every class ticked impossible with no stated
    mass, or the legacy negative-k quirk cancelling exactly); the top class is the one thing the
    participant positively chose, so it is the least surprising place for the mass, and it keeps
    NaN out of every stored label.
    """
    total = _row_sums(v)
    fallback = (total == 0.0) | ~np.isfinite(total)
    v /= np.where(fallback, 1.0, total)[:, None]
    if fallback.any():
        v[fallback] = _one_hot(top[fallback], v.shape[1])
    return v


def _reaches_one(s: FloatArray) -> BoolArray:
    result: BoolArray = (s >= 1.0) | (np.abs(s - 1.0) <= _ONE_TOLERANCE)
    return result


def _shrunk(value: FloatArray, shrink: BoolArray, factor: FloatArray) -> FloatArray:
    # `v[stated] *= 1 - r`; a zero entry is not "stated" and stays 0.
    result: FloatArray = np.where(shrink & (value != 0), value * factor, value)
    return result


# --------------------------------------------------------------------------------------------
# Vectorised constructions (docs/methods/soft-labels.md, one section each)
# --------------------------------------------------------------------------------------------


def _legacy_start(
    b: AnnotationBatch, k: int, gamma: float
) -> tuple[_Stated, BoolArray, IntArray, FloatArray]:
    _check_gamma(gamma)
    _check_indices(b, k)
    _check_percents(b, allow_above_100=True)
    st = _stated(b)
    possible = ~b.impossible
    n_stated = (st.top_value > 0).astype(np.int64) + (st.second_value > 0)
    # Q2: a count, not a set, so it is wrong (even 0 or negative) when t or s is ticked impossible.
    k_count = (k - _row_counts(b.impossible)) - n_stated
    # At most two entries are non-zero, so this sum is exact whatever the summation order.
    s = st.top_value + st.second_value
    return st, possible, k_count, s


def _cifar10s_rows(
    b: AnnotationBatch,
    st: _Stated,
    possible: BoolArray,
    k_count: IntArray,
    s: FloatArray,
    gamma: float,
) -> FloatArray:
    # Q3: exact float comparisons throughout.
    below = s < 1
    spread = k_count != 0
    # Dividing by 1.0 leaves the S < 1 rows bit-identical.
    divisor = np.where(below, 1.0, s)
    top_value, second_value = st.top_value / divisor, st.second_value / divisor
    r = np.where(below, 1 - s, np.where(spread, gamma, 0.0))
    # "at zero" after the renormalisation, before the shrink.
    at_zero = _zero_possible(possible, b.top, st, top_value, second_value)
    shrink = ~below & spread
    top_value = _shrunk(top_value, shrink, 1 - r)
    second_value = _shrunk(second_value, shrink, 1 - r)
    add = np.where(spread, r / np.where(spread, k_count, 1), 0.0)
    return _assemble(at_zero, add, b.top, st, top_value, second_value)


def cifar10s_top2_clamp_batch(
    b: AnnotationBatch, k: int, gamma: float = DEFAULT_GAMMA
) -> FloatArray:
    """The published CIFAR-10S construction, line by line, quirks Q1-Q3 included.

    Because Q2 lets k be negative, a response whose top and second classes are both ticked
    impossible, with exactly one other possible class, yields negative entries. That is what the
    published algorithm does, so it is reproduced, not repaired (use `clean-top2-clamp`).
    """
    st, possible, k_count, s = _legacy_start(b, k, gamma)
    return _normalise_or_top(_cifar10s_rows(b, st, possible, k_count, s, gamma), b.top)


def hmix_2023_batch(b: AnnotationBatch, k: int, gamma: float = DEFAULT_GAMMA) -> FloatArray:
    """The variant used for the published H-Mix categorical labels.

    Identical to `cifar10s_top2_clamp` except when k != 0 and S >= 1 (see
    docs/methods/soft-labels.md#hmix-2023). Where the spec is silent: the classes "at zero" that
    receive gamma/k are those at zero in the response, before the subtraction; an entry floored
    to 0 by the subtraction does not receive any (k was counted on the response too).
    """
    st, possible, k_count, s = _legacy_start(b, k, gamma)
    own = (k_count != 0) & ~(s < 1)
    legacy = None if own.all() else _cifar10s_rows(b, st, possible, k_count, s, gamma)
    if legacy is not None and not own.any():
        return _normalise_or_top(legacy, b.top)
    # "at zero" in the response, before the subtraction.
    at_zero = _zero_possible(possible, b.top, st, st.top_value, st.second_value) & own[:, None]
    n_stated = np.maximum((st.top_value > 0).astype(np.int64) + (st.second_value > 0), 1)
    # S > 1: no renormalisation first; take gamma off the stated entries instead.
    subtract = s != 1
    cut = gamma / n_stated

    def floored(value: FloatArray) -> FloatArray:
        result: FloatArray = np.where(subtract & (value > 0), np.maximum(value - cut, 0.0), value)
        return result

    add = gamma / np.where(own, k_count, 1)
    v = _assemble(at_zero, add, b.top, st, floored(st.top_value), floored(st.second_value))
    if legacy is not None:
        v[~own] = legacy[~own]  # v is this function's own array: no N x K np.where
    return _normalise_or_top(v, b.top)


def _clean(b: AnnotationBatch, k: int, gamma: float, *, reject_same_second: bool) -> FloatArray:
    _check_gamma(gamma)
    _check_indices(b, k)
    _check_percents(b, allow_above_100=False)
    if reject_same_second:
        _reject_same_second(b)
    st = _stated(b)
    rows = _rows(len(b))
    # v[I] = 0: a stated class that was also ticked impossible loses its mass.
    top_value = np.where(b.impossible[rows, b.top], 0.0, st.top_value)
    second_value = np.where(
        st.second_ok & b.impossible[rows, st.second_index], 0.0, st.second_value
    )
    possible = ~b.impossible
    at_zero = _zero_possible(possible, b.top, st, top_value, second_value)
    n_zero = _row_counts(at_zero)
    spread = n_zero > 0
    s = top_value + second_value  # at most two non-zero entries: exact in any order
    below = ~_reaches_one(s)
    divisor = np.where(below, 1.0, s)
    top_value, second_value = top_value / divisor, second_value / divisor
    r = np.where(below, 1 - s, np.where(spread, gamma, 0.0))
    shrink = ~below & spread
    top_value = _shrunk(top_value, shrink, 1 - r)
    second_value = _shrunk(second_value, shrink, 1 - r)
    add = np.where(spread, r / np.where(spread, n_zero, 1), 0.0)
    return _normalise_or_top(_assemble(at_zero, add, b.top, st, top_value, second_value), b.top)


def clean_top2_clamp_batch(b: AnnotationBatch, k: int, gamma: float = DEFAULT_GAMMA) -> FloatArray:
    """`cifar10s-top2-clamp` with its quirks fixed; the default for new studies.

    - Q1: s == t raises ValueError.
    - Q2: k is the number of possible classes currently at zero, and a class ticked impossible
      gets nothing, including a stated top/second class that was also ticked impossible (the
      "double select" of the exclusion rules): its stated probability is dropped.
    - Q3: "S < 1" allows for float rounding (92.3 % + 7.7 % counts as 1).
    """
    return _clean(b, k, gamma, reject_same_second=True)


def top1_batch(b: AnnotationBatch, k: int) -> FloatArray:
    # Choice (spec only says "ignore the second class"): clean-top2-clamp without the second class
    # and with gamma = 0, i.e. spread 1 - p1 over the possible classes at zero, no clamp at 100 %.
    _check_indices(b, k)  # an out-of-range second class is corrupt input even though it is ignored
    return _clean(b.without_second(), k, 0.0, reject_same_second=False)


def uniform_batch(b: AnnotationBatch, k: int) -> FloatArray:
    """Ignore I; if S < 1 spread 1 - S evenly over every class at zero; else renormalise."""
    _check_indices(b, k)
    _check_percents(b, allow_above_100=False)
    _reject_same_second(b)
    st = _stated(b)
    s = st.top_value + st.second_value
    every = np.ones((len(b), k), dtype=bool)
    at_zero = _zero_possible(every, b.top, st, st.top_value, st.second_value)
    n_zero = k - (st.top_value != 0) - (st.second_value != 0)
    # With no class at zero (K <= 2, all stated) there is nowhere to spread: renormalise.
    fill = ~_reaches_one(s) & (n_zero > 0)
    share = np.where(fill, (1 - s) / np.where(fill, n_zero, 1), 0.0)
    v = _assemble(at_zero, share, b.top, st, st.top_value, st.second_value)
    return _normalise_or_top(v, b.top)


def renormalise_batch(b: AnnotationBatch, k: int) -> FloatArray:
    """v / sum(v) only (ignores I); a response with no stated mass falls back to the top class."""
    _check_indices(b, k)
    _check_percents(b, allow_above_100=False)
    _reject_same_second(b)
    st = _stated(b)
    # Only the stated values: no class at zero receives anything.
    v = np.zeros((len(b), k), dtype=np.float64)
    flat = v.reshape(-1)
    flat[_flat(b.top, b.top, k)] = st.top_value
    flat[_flat(b.top, st.second_index, k, st.second_ok)] = st.second_value[st.second_ok]
    return _normalise_or_top(v, b.top)


def simselect2_batch(b: AnnotationBatch, k: int) -> FloatArray:
    """0.5 / 0.5 on t and s, or 1.0 on t without a second class (percents and I are ignored)."""
    _check_indices(b, k)
    _reject_same_second(b)
    has = b.has_second
    v = _one_hot(b.top, k)
    rows = _rows(len(b))[has]
    v[rows, b.top[has]] = 0.5
    v[rows, b.second[has]] = 0.5
    return v


def label_smoothing_rows(v: FloatArray, eps: float) -> FloatArray:
    """docs/methods/soft-labels.md#label-smoothing: v * (1 - eps) + eps / K, row by row."""
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {eps}")
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError("label smoothing expects N x K vectors with K >= 1")
    result: FloatArray = arr * (1.0 - eps) + eps / arr.shape[1]
    return result


def label_smoothing(v: FloatArray, eps: float) -> FloatArray:
    """docs/methods/soft-labels.md#label-smoothing: v * (1 - eps) + eps / K, after any
    construction."""
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {eps}")
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError("label_smoothing expects a non-empty 1-D vector")
    return label_smoothing_rows(arr[None, :], eps)[0]


BatchConstruction = Callable[..., FloatArray]

BATCH_CONSTRUCTIONS: dict[str, BatchConstruction] = {
    CIFAR10S_TOP2_CLAMP: cifar10s_top2_clamp_batch,
    HMIX_2023: hmix_2023_batch,
    CLEAN_TOP2_CLAMP: clean_top2_clamp_batch,
    TOP1: top1_batch,
    UNIFORM: uniform_batch,
    RENORMALISE: renormalise_batch,
    SIMSELECT2: simselect2_batch,
}


# --------------------------------------------------------------------------------------------
# The per-annotation API: one-row batches, so there is one implementation of every formula
# --------------------------------------------------------------------------------------------


def _one(name: str, a: Annotation, k: int, **params: float) -> FloatArray:
    row: FloatArray = BATCH_CONSTRUCTIONS[name](
        AnnotationBatch.from_annotations([a], k), k, **params
    )[0]
    return row


def cifar10s_top2_clamp(a: Annotation, k: int, gamma: float = DEFAULT_GAMMA) -> FloatArray:
    return _one(CIFAR10S_TOP2_CLAMP, a, k, gamma=gamma)


def hmix_2023(a: Annotation, k: int, gamma: float = DEFAULT_GAMMA) -> FloatArray:
    return _one(HMIX_2023, a, k, gamma=gamma)


def clean_top2_clamp(a: Annotation, k: int, gamma: float = DEFAULT_GAMMA) -> FloatArray:
    return _one(CLEAN_TOP2_CLAMP, a, k, gamma=gamma)


def top1(a: Annotation, k: int) -> FloatArray:
    return _one(TOP1, a, k)


def uniform(a: Annotation, k: int) -> FloatArray:
    return _one(UNIFORM, a, k)


def renormalise(a: Annotation, k: int) -> FloatArray:
    return _one(RENORMALISE, a, k)


def simselect2(a: Annotation, k: int) -> FloatArray:
    return _one(SIMSELECT2, a, k)


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


def construct_batch(b: AnnotationBatch, k: int, method: Method) -> FloatArray:
    """One row per annotation of the batch (N x K), smoothing included; N may be 0."""
    construction = BATCH_CONSTRUCTIONS[method.name]
    v = construction(b, k, gamma=method.gamma) if method.uses_gamma else construction(b, k)
    if method.smoothing > 0:
        v = label_smoothing_rows(v, method.smoothing)
    return v


def construct(a: Annotation, k: int, method: Method) -> FloatArray:
    row: FloatArray = construct_batch(AnnotationBatch.from_annotations([a], k), k, method)[0]
    return row


def construct_many(annotations: Sequence[Annotation], k: int, method: Method) -> FloatArray:
    """One row per annotation (N x K); N may be 0."""
    return construct_batch(AnnotationBatch.from_annotations(annotations, k), k, method)


# --------------------------------------------------------------------------------------------
# Aggregation (docs/methods/soft-labels.md#aggregation)
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


@dataclass(frozen=True, eq=False)
class GroupedLabels:
    """One aggregated label per group (stimulus) that kept at least one annotation."""

    group_ids: IntArray
    probs: FloatArray  # G x K
    n_annotations: IntArray
    n_annotators: IntArray


@dataclass(frozen=True, eq=False)
class Groups:
    """The rows of each group (stimulus) that a mean uses, worked out once for many methods."""

    used: BoolArray | None  # None: every row
    starts: IntArray  # first used row of each group
    group_ids: IntArray
    n_annotations: IntArray
    n_annotators: IntArray

    @classmethod
    def build(
        cls,
        group_ids: npt.ArrayLike,
        annotator_ids: npt.ArrayLike,
        is_repeat: npt.ArrayLike,
        *,
        include_repeats: bool = True,
    ) -> Self:
        groups = np.asarray(group_ids, dtype=np.int64)
        annotators = np.asarray(annotator_ids, dtype=np.int64)
        repeats = np.asarray(is_repeat, dtype=bool)
        if not groups.ndim == 1 or not groups.shape == annotators.shape == repeats.shape:
            raise ValueError("group ids, annotator ids and repeat flags must have one length N")
        if groups.shape[0] and np.any(groups[1:] < groups[:-1]):
            raise ValueError("rows must be sorted by group id")
        used = None if include_repeats else ~repeats
        if used is not None:
            groups, annotators = groups[used], annotators[used]
        n = groups.shape[0]
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if n else groups[:0]
        # Distinct annotators per group: sort (group number, annotator) pairs and count changes.
        number = np.cumsum(np.r_[False, groups[1:] != groups[:-1]]) if n else groups[:0]
        if n:
            low = int(annotators.min())
            span = int(annotators.max()) - low + 1
            if int(number[-1]) * span < 2**62:  # one int64 key sorts faster than row pairs
                # np.sort, not np.unique: unique is an order of magnitude slower on 1M keys.
                keys = np.sort(number * span + (annotators - low))
                pairs = keys[np.r_[True, keys[1:] != keys[:-1]]] // span
            else:
                pairs = np.unique(np.stack([number, annotators], axis=1), axis=0)[:, 0]
            n_annotators = np.bincount(pairs, minlength=starts.shape[0])
        else:
            n_annotators = groups[:0]
        return cls(
            used=used,
            starts=starts,
            group_ids=groups[starts],
            n_annotations=np.diff(np.r_[starts, n]).astype(np.int64),
            n_annotators=n_annotators.astype(np.int64),
        )

    def labels(self, vectors: FloatArray) -> GroupedLabels:
        matrix = np.asarray(vectors, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(f"vectors must be a 2-D (N x K) array, got shape {matrix.shape}")
        if self.used is not None:
            if matrix.shape[0] != self.used.shape[0]:
                raise ValueError("vectors must have one row per row of the groups")
            matrix = matrix[self.used]
        if matrix.shape[0] != int(self.n_annotations.sum()):
            raise ValueError("vectors must have one row per row of the groups")
        if not self.starts.shape[0]:
            probs = np.zeros((0, matrix.shape[1]))
        else:
            # Plain sequential sums in row order, not math.fsum: with the rows in a fixed order
            # (the callers sort by (stimulus, response id)) the labels are still bit-identical
            # from run to run, and they differ from the exactly rounded mean by at most about
            # (n - 1) ulp of 1, i.e. under 1e-12 for any stimulus with fewer than 4,500 rows.
            probs = np.add.reduceat(matrix, self.starts, axis=0) / self.n_annotations[:, None]
        return GroupedLabels(self.group_ids, probs, self.n_annotations, self.n_annotators)


def aggregate_groups(
    vectors: FloatArray,
    group_ids: npt.ArrayLike,
    annotator_ids: npt.ArrayLike,
    is_repeat: npt.ArrayLike,
    *,
    include_repeats: bool = True,
) -> GroupedLabels:
    """`aggregate` for many stimuli at once: the mean vector of every group of rows.

    Rows must be sorted by group id. Groups left without rows by include_repeats=False are
    omitted. See `Groups.labels` for the summation order.
    """
    groups = Groups.build(group_ids, annotator_ids, is_repeat, include_repeats=include_repeats)
    return groups.labels(vectors)


# --------------------------------------------------------------------------------------------
# Summaries (docs/methods/soft-labels.md#summaries)
# --------------------------------------------------------------------------------------------


def _as_vector(p: FloatArray) -> FloatArray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError("expected a non-empty 1-D probability vector")
    return arr


def entropy_rows(p: FloatArray) -> FloatArray:
    """Shannon entropy in nats of every row, with 0 * log 0 = 0."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError("expected N x K probability vectors with K >= 1")
    positive = arr > 0
    terms = np.where(positive, arr * np.log(np.where(positive, arr, 1.0)), 0.0)
    result: FloatArray = -terms.sum(axis=1)
    return result


def entropy(p: FloatArray) -> float:
    """Shannon entropy in nats, with 0 * log 0 = 0."""
    return float(entropy_rows(_as_vector(p)[None, :])[0])


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
