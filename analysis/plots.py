# Result plots for the researcher dashboard (issue 5, item 4). ORM-free like summaries.py and
# scoring.py (docs/architecture.md#layers): the caller reads the stored analysis results
# (AnalysisResult / SoftLabel rows), builds the plain records below and renders the figure, so a
# plot is never recomputed from responses per request.
#
# Figures are built on matplotlib.figure.Figure directly, never through pyplot: no global figure
# registry to leak into or race on when a web worker renders several plots at once.
#
# Output is deterministic: the same records give byte-identical SVG (fixed svg.hashsalt, no
# date in the metadata), so a rendered plot can be cached or compared in tests.
from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Final, Literal, TypeGuard, overload

import matplotlib

# Before anything else from matplotlib is imported, so no interactive backend is ever loaded.
matplotlib.use("Agg")

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.rcsetup import cycler  # validating wrapper; cycler itself is not a direct dep
from matplotlib.typing import RcKeyType

NO_DATA: Final = "No data yet"

# 600 × 400 px at 100 dpi: readable in the dashboard column and as a download.
WIDTH_IN: Final = 6.0
HEIGHT_IN: Final = 4.0
DPI: Final = 100

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision
# deficiencies. Black first for the main series; the reference lines use grey.
OKABE_ITO: Final = (
    "#000000",
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
)
MAIN: Final = "#0072B2"  # blue
ACCENT: Final = "#D55E00"  # vermillion
SECOND: Final = "#E69F00"  # orange
REFERENCE: Final = "#555555"
MISSING_CELL: Final = "#DDDDDD"
# cividis is designed to read the same with and without colour-vision deficiency (Nuñez et al.
# 2018, PLOS ONE 13(7): e0199239).
HEATMAP_CMAP: Final = "cividis"

_STYLE: Final[dict[RcKeyType, Any]] = {
    "axes.prop_cycle": cycler(color=list(OKABE_ITO)),
    # DejaVu Sans is bundled with matplotlib, so the PNG looks the same everywhere; the SVG names
    # the generic family too, for browsers without DejaVu.
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.labelsize": 10,
    "figure.titlesize": 12,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    # Class names and model labels come from researchers; a "$" must not start mathtext.
    "text.parse_math": False,
    # Real <text> elements instead of glyph outlines: the SVG stays small, searchable and
    # readable by screen readers; browsers fall back to their sans-serif font.
    "svg.fonttype": "none",
    # Clip-path and marker ids are hashes; a fixed salt makes them the same on every run.
    "svg.hashsalt": "hmix",
    "svg.image_inline": True,
}


# rcParams are process-global and rc_context swaps them in and back out, so two threads styling
# at once could restore each other's values; the lock serialises building and rendering.
_STYLE_LOCK: Final = threading.RLock()


@contextmanager
def _style() -> Iterator[None]:
    # rc_context rather than rcParams.update: importing this module must not restyle plots that
    # other code in the same process makes.
    with _STYLE_LOCK, matplotlib.rc_context(_STYLE):
        yield


# --------------------------------------------------------------------------------------------
# Records the caller builds from stored results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LambdaLevel:
    """One stored `mixing-lambda` result: answers to the mixed images of one true λ.

    λ̂ and confidence are fractions in [0, 1]; an SD is None when n < 2 (sample SD).
    """

    lam_true: float | None
    n: int | None
    mean_lam_hat: float | None
    sd_lam_hat: float | None = None
    mean_confidence: float | None = None
    sd_confidence: float | None = None


@dataclass(frozen=True)
class EntropyPoint:
    """One mixed stimulus: its true λ and the entropy (nats) of its stored soft label."""

    lam: float | None
    entropy: float | None


@dataclass(frozen=True)
class HistogramGroup:
    """One stored `midpoint` result: answers over the steps 0..10 (λ = step / 10)."""

    label: str
    histogram: Sequence[int | None]


@dataclass(frozen=True)
class ModelAlignment:
    """One stored `iri-alignment` result, in percent: the score and its interval."""

    label: str
    mean_score: float | None
    low: float | None
    high: float | None
    n_annotators: int | None = None


@dataclass(frozen=True)
class ConsistencyRow:
    """One stored `midpoint-consistency` result."""

    interface: str
    mean_abs_diff: float | None  # mean |Δλ| between the main and the repeat answer
    share_identical: float | None
    n_pairs: int | None = None


# The midpoint series, λ = 0.0, 0.1, …, 1.0 (docs/user-guide/interfaces.md#conventions).
N_STEPS: Final = 11


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


@overload
def render(fig: Figure, fmt: Literal["svg"]) -> str: ...
@overload
def render(fig: Figure, fmt: Literal["png"]) -> bytes: ...
def render(fig: Figure, fmt: Literal["svg", "png"]) -> str | bytes:
    """The figure as an SVG document (str) or a PNG image (bytes) of 600 × 400 px or taller.

    The SVG is byte-identical for the same figure content: no creation date, fixed id salt.
    """
    buffer = BytesIO()
    with _style():
        if fmt == "svg":
            fig.savefig(
                buffer, format="svg", metadata={"Date": None, "Title": fig.get_label() or None}
            )
            return buffer.getvalue().decode("utf-8")
        if fmt == "png":
            fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
            return buffer.getvalue()
    raise ValueError(f"fmt must be 'svg' or 'png', got {fmt!r}")


_STYLE_ATTRIBUTE = re.compile(r' style="([^"]*)"')
# matplotlib's one stylesheet rule, "*{stroke-linejoin: round; stroke-linecap: butt}"
_STYLE_ELEMENT = re.compile(r"<style[^>]*>.*?</style>\s*", re.DOTALL)


def _as_attributes(match: re.Match[str]) -> str:
    declarations = (d.split(":", 1) for d in match.group(1).split(";") if ":" in d)
    return "".join(f' {name.strip()}="{value.strip()}"' for name, value in declarations)


def svg_for_html(svg: str) -> str:
    """An SVG from render() made fit to sit inline in a page under a Content-Security-Policy
    without 'unsafe-inline' styles (settings CONTENT_SECURITY_POLICY).

    matplotlib writes its styling as style attributes and one <style> element, which such a
    policy refuses. Every property it writes (fill, stroke, stroke-width, font-size, text-anchor
    ...) is also an SVG presentation attribute, which the policy leaves alone: each style
    attribute becomes those attributes, and the stylesheet's rule becomes inherited defaults on
    the root element. The download (render) keeps matplotlib's own form.
    """
    svg = _STYLE_ELEMENT.sub("", svg, count=1)
    svg = _STYLE_ATTRIBUTE.sub(_as_attributes, svg)
    return svg.replace("<svg ", '<svg stroke-linejoin="round" stroke-linecap="butt" ', 1)


def _figure(title: str, *, height_in: float = HEIGHT_IN) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    fig.set_label(title)  # becomes the SVG <title> in render()
    return fig


def _single(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    fig = _figure(title)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig, ax


def _no_data(ax: Axes) -> None:
    ax.text(
        0.5,
        0.5,
        NO_DATA,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=14,
        color=REFERENCE,
        gid="no-data",
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _empty(title: str, xlabel: str, ylabel: str) -> Figure:
    with _style():
        fig, ax = _single(title, xlabel, ylabel)
        _no_data(ax)
    return fig


def _finite(value: float | None) -> TypeGuard[float]:
    """A usable number: not None, NaN or ±inf (stored results may hold any of them)."""
    return value is not None and math.isfinite(value)


def _n_text(n: int | None) -> str:
    return "n = ?" if n is None else f"n = {n}"


# --------------------------------------------------------------------------------------------
# Interface B: perceived mixing factor and confidence by λ
# --------------------------------------------------------------------------------------------

_LAM_TRUE_LABEL: Final = "True λ (weight of image 1)"


def _level_plot(
    rows: Sequence[tuple[float | None, float | None, float | None]],
    *,
    title: str,
    ylabel: str,
    mean_label: str,
    identity: bool,
) -> Figure:
    """rows are (true λ, mean, SD) per level."""
    # Sorted on λ alone: the SDs may be None, which do not compare.
    points = sorted(
        ((x, y, sd) for x, y, sd in rows if _finite(x) and _finite(y)), key=lambda row: row[0]
    )
    if not points:
        return _empty(title, _LAM_TRUE_LABEL, ylabel)
    with _style():
        fig, ax = _single(title, _LAM_TRUE_LABEL, ylabel)
        if identity:
            (line,) = ax.plot(
                [0, 1],
                [0, 1],
                linestyle="--",
                linewidth=1,
                color=REFERENCE,
                label="Identity (λ̂ = λ)",
            )
            line.set_gid("identity")
        with_sd = [(x, y, sd) for x, y, sd in points if _finite(sd)]
        if with_sd:
            bars = ax.errorbar(
                [x for x, _, _ in with_sd],
                [y for _, y, _ in with_sd],
                yerr=[sd for _, _, sd in with_sd],
                fmt="none",
                ecolor=MAIN,
                elinewidth=1.2,
                capsize=3,
                label="± 1 SD",
            )
            bars.lines[2][0].set_gid("sd-bars")
        (means,) = ax.plot(
            [x for x, _, _ in points],
            [y for _, y, _ in points],
            linestyle="-",
            linewidth=1,
            marker="o",
            markersize=6,
            color=MAIN,
            label=mean_label,
        )
        means.set_gid("means")
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-0.05, 1.05)
        ax.legend(loc="best", frameon=False)
    return fig


def lam_hat_vs_lam(levels: Sequence[LambdaLevel]) -> Figure:
    """Mean perceived λ̂ ± 1 SD against the true λ, with the identity line (interface B).

    Levels without a true λ or a mean are left out; a level without an SD gets no error bar.
    """
    return _level_plot(
        [(lv.lam_true, lv.mean_lam_hat, lv.sd_lam_hat) for lv in levels],
        title="Perceived vs true mixing factor",
        ylabel="Perceived λ̂ (mean ± SD)",
        mean_label="Mean λ̂",
        identity=True,
    )


def confidence_by_lam(levels: Sequence[LambdaLevel]) -> Figure:
    """Mean confidence ± 1 SD (as a fraction) at each true λ (interface B)."""
    return _level_plot(
        [(lv.lam_true, lv.mean_confidence, lv.sd_confidence) for lv in levels],
        title="Confidence by mixing factor",
        ylabel="Confidence (mean ± SD)",
        mean_label="Mean confidence",
        identity=False,
    )


# --------------------------------------------------------------------------------------------
# Soft labels of mixed stimuli
# --------------------------------------------------------------------------------------------


def entropy_by_lam(points: Sequence[EntropyPoint]) -> Figure:
    """Soft-label entropy (nats) of each mixed stimulus against its λ, with the mean per λ.

    Points are grouped on λ rounded to 6 decimals, so 0.1 + 0.2 and 0.3 share a mean.
    """
    title = "Soft-label entropy by mixing factor"
    xlabel = _LAM_TRUE_LABEL
    ylabel = "Soft-label entropy (nats)"
    rows = sorted((p.lam, p.entropy) for p in points if _finite(p.lam) and _finite(p.entropy))
    if not rows:
        return _empty(title, xlabel, ylabel)
    groups: dict[float, list[float]] = {}
    for lam, value in rows:
        groups.setdefault(round(lam, 6), []).append(value)
    lams = sorted(groups)
    means = [math.fsum(groups[lam]) / len(groups[lam]) for lam in lams]
    with _style():
        fig, ax = _single(title, xlabel, ylabel)
        (scatter,) = ax.plot(
            [lam for lam, _ in rows],
            [value for _, value in rows],
            linestyle="none",
            marker="o",
            markersize=4,
            alpha=0.45,
            color=MAIN,
            label="Stimulus",
        )
        scatter.set_gid("points")
        (mean_line,) = ax.plot(
            lams,
            means,
            linestyle="-",
            linewidth=1.5,
            marker="D",
            markersize=6,
            color=ACCENT,
            label="Mean per λ",
        )
        mean_line.set_gid("means")
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(bottom=0)
        ax.legend(loc="best", frameon=False)
    return fig


def class_pair_heatmap(
    classes: Sequence[str],
    matrix: Sequence[Sequence[float | None]],
    *,
    title: str = "Mean soft label per class pair",
    xlabel: str = "Class 2",
    ylabel: str = "Class 1 (mass shown)",
    value_label: str = "Mean soft-label mass",
) -> Figure:
    """A K × K heatmap; matrix[i][j] is the mean soft-label mass for the pair (classes[i],
    classes[j]), with None or NaN where the pair has no data (drawn grey, not annotated).

    Values are drawn on a fixed 0..1 scale, so two studies' heatmaps compare by eye. A matrix
    that is not K × K raises ValueError.
    """
    k = len(classes)
    if len(matrix) != k or any(len(row) != k for row in matrix):
        raise ValueError(f"matrix must be {k} × {k} to match the {k} classes")
    values = np.array(
        [[math.nan if v is None else float(v) for v in row] for row in matrix], dtype=np.float64
    ).reshape(k, k)
    present = np.isfinite(values)
    if k == 0 or not present.any():
        return _empty(title, xlabel, ylabel)
    masked = np.ma.masked_invalid(values)
    with _style():
        fig, ax = _single(title, xlabel, ylabel)
        cmap = matplotlib.colormaps[HEATMAP_CMAP].with_extremes(bad=MISSING_CELL)
        mesh = ax.pcolormesh(masked, cmap=cmap, vmin=0.0, vmax=1.0, edgecolors="white")
        mesh.set_gid("cells")
        ax.invert_yaxis()  # row 0 at the top, as the matrix reads
        ax.set_aspect("auto")
        ticks = np.arange(k) + 0.5
        ax.set_xticks(ticks, list(classes), rotation=45, ha="right", rotation_mode="anchor")
        ax.set_yticks(ticks, list(classes))
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        fontsize = max(6.0, min(10.0, 70.0 / k))
        for i in range(k):
            for j in range(k):
                if not present[i, j]:
                    continue
                value = float(values[i, j])
                # cividis runs dark blue → light yellow: dark text on the light half.
                colour = "black" if value > 0.55 else "white"
                ax.text(
                    j + 0.5,
                    i + 0.5,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color=colour,
                    gid=f"cell-{i}-{j}",
                )
        fig.colorbar(mesh, ax=ax, label=value_label)
    return fig


# --------------------------------------------------------------------------------------------
# Interfaces C and D: midpoints and their repeat consistency
# --------------------------------------------------------------------------------------------

_MAX_COLUMNS: Final = 3
_ROW_HEIGHT_IN: Final = 1.8  # each small-multiple row past the second adds this much height


def midpoint_histograms(groups: Sequence[HistogramGroup]) -> Figure:
    """One histogram over the 11 steps per group (e.g. "construct, start 1"), sharing the y axis.

    Up to six groups fit the 600 × 400 figure; each further row of three adds 180 px of
    height. A histogram without exactly 11 counts raises ValueError; None counts as 0.
    """
    title = "Chosen midpoints per interface and start step"
    xlabel = "Chosen λ (weight of class 1)"
    ylabel = "Answers"
    counts: list[list[int]] = []
    for group in groups:
        if len(group.histogram) != N_STEPS:
            raise ValueError(
                f"histogram of {group.label!r} has {len(group.histogram)} counts, not {N_STEPS}"
            )
        counts.append([0 if c is None else int(c) for c in group.histogram])
    if not counts or not any(any(row) for row in counts):
        return _empty(title, xlabel, ylabel)
    n_cols = min(len(counts), _MAX_COLUMNS)
    n_rows = math.ceil(len(counts) / n_cols)
    height = HEIGHT_IN + _ROW_HEIGHT_IN * max(0, n_rows - 2)
    steps = np.arange(N_STEPS) / 10
    with _style():
        fig = _figure(title, height_in=height)
        fig.suptitle(title)
        fig.supxlabel(xlabel, fontsize=10)
        fig.supylabel(ylabel, fontsize=10)
        axes = fig.subplots(n_rows, n_cols, sharex=True, sharey=True, squeeze=False)
        for index, ax in enumerate(axes.flat):
            if index >= len(counts):
                ax.set_visible(False)
                continue
            group, row = groups[index], counts[index]
            ax.axvline(0.5, linestyle="--", linewidth=0.8, color=REFERENCE)
            bars = ax.bar(steps, row, width=0.08, color=MAIN)
            for step, bar in enumerate(bars):
                bar.set_gid(f"hist-{index}-{step}")
            ax.set_title(f"{group.label} ({_n_text(sum(row))})", fontsize=9)
            ax.set_xticks([0, 0.5, 1])
            ax.tick_params(labelleft=True)
        axes.flat[0].set_xlim(-0.07, 1.07)
        axes.flat[0].set_ylim(bottom=0)
    return fig


def repeat_consistency(rows: Sequence[ConsistencyRow]) -> Figure:
    """Mean |Δλ| between main and repeat answers, and the share identical, per interface."""
    title = "Repeat consistency per interface"
    kept = [r for r in rows if _finite(r.mean_abs_diff) or _finite(r.share_identical)]
    if not kept:
        with _style():
            fig = _figure(title)
            fig.suptitle(title)
            for ax, ylabel in zip(
                fig.subplots(1, 2), ("Mean |Δλ|", "Share identical"), strict=True
            ):
                ax.set_xlabel("Interface")
                ax.set_ylabel(ylabel)
                _no_data(ax)
        return fig
    labels = [f"{r.interface}\n{_n_text(r.n_pairs)}" for r in kept]
    x = np.arange(len(kept))
    with _style():
        fig = _figure(title)
        fig.suptitle(title)
        left, right = fig.subplots(1, 2)
        panels = (
            (left, [r.mean_abs_diff for r in kept], "Mean |Δλ|", MAIN, "abs-diff"),
            (right, [r.share_identical for r in kept], "Share identical", SECOND, "identical"),
        )
        for ax, heights, ylabel, colour, gid in panels:
            bars = ax.bar(x, [h if _finite(h) else 0.0 for h in heights], width=0.6, color=colour)
            for i, (bar, h) in enumerate(zip(bars, heights, strict=True)):
                if _finite(h):
                    bar.set_gid(f"{gid}-{i}")
                    ax.annotate(
                        f"{h:.2f}",
                        (bar.get_x() + bar.get_width() / 2, h),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=8,
                    )
                else:
                    bar.set_visible(False)
                    ax.text(
                        bar.get_x() + bar.get_width() / 2,
                        0.01,
                        "n/a",
                        ha="center",
                        va="bottom",
                        fontsize=8,
                        color=REFERENCE,
                    )
            ax.set_xticks(x, labels)
            ax.set_xlabel("Interface")
            ax.set_ylabel(ylabel)
            ax.set_ylim(0, 1.05)
    return fig


# --------------------------------------------------------------------------------------------
# Interfaces E and F: IRI alignment per model
# --------------------------------------------------------------------------------------------


def iri_alignment(models: Sequence[ModelAlignment], *, chance: float | None = None) -> Figure:
    """Alignment score (percent) per model as bars with interval whiskers, in the given order.

    A model without a score is left out; one without both interval ends gets no whisker. chance
    (percent, e.g. 33.3 for clustering) draws a dashed line.
    """
    title = "IRI alignment per model"
    xlabel = "Model"
    ylabel = "Alignment score (%)"
    kept = [m for m in models if _finite(m.mean_score)]
    if not kept:
        return _empty(title, xlabel, ylabel)
    scores = [m.mean_score for m in kept if _finite(m.mean_score)]
    x = np.arange(len(kept))
    with _style():
        fig, ax = _single(title, xlabel, ylabel)
        bars = ax.bar(x, scores, width=0.6, color=MAIN, label="Mean score")
        for i, bar in enumerate(bars):
            bar.set_gid(f"bar-{i}")
        whiskers = [
            (i, score, m.low, m.high)
            for i, (m, score) in enumerate(zip(kept, scores, strict=True))
            if _finite(m.low) and _finite(m.high)
        ]
        if whiskers:
            container = ax.errorbar(
                [i for i, _, _, _ in whiskers],
                [s for _, s, _, _ in whiskers],
                # A percentile interval need not contain the mean; clamp so no whisker is negative.
                yerr=[
                    [max(0.0, s - low) for _, s, low, _ in whiskers],
                    [max(0.0, high - s) for _, s, _, high in whiskers],
                ],
                fmt="none",
                ecolor="black",
                elinewidth=1.2,
                capsize=4,
                label="95% interval",
            )
            container.lines[2][0].set_gid("intervals")
        if chance is not None and math.isfinite(chance):
            line = ax.axhline(
                chance,
                linestyle="--",
                linewidth=1,
                color=ACCENT,
                label=f"Chance ({chance:.1f}%)",
            )
            line.set_gid("chance")
        ax.set_xticks(x, [f"{m.label}\n{_n_text(m.n_annotators)}" for m in kept])
        if len(kept) > 4:
            ax.tick_params(axis="x", labelrotation=30)
        # Headroom above 100% for the legend, so it never covers a bar or whisker.
        ax.set_ylim(0, 118)
        ax.set_yticks(range(0, 101, 20))
        ax.legend(loc="upper left", frameon=False, ncols=3)
    return fig
