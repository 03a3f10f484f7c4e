# Result plots (issue 5, item 4): pure functions from stored-result records to SVG and PNG. No
# database. The SVGs are our own output, parsed with the standard library (hence the S314 noqa).
import ast
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import matplotlib
import pytest
from matplotlib.artist import Artist
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from PIL import Image

from analysis import plots
from analysis.plots import (
    NO_DATA,
    ConsistencyRow,
    EntropyPoint,
    HistogramGroup,
    LambdaLevel,
    ModelAlignment,
    class_pair_heatmap,
    confidence_by_lam,
    entropy_by_lam,
    iri_alignment,
    lam_hat_vs_lam,
    midpoint_histograms,
    render,
    repeat_consistency,
)

SVG = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# λ 0.25 has no mean (left out) and λ 0.5 has a single answer (no SD, so no error bar).
LEVELS = [
    LambdaLevel(
        lam_true=1.0,
        n=4,
        mean_lam_hat=0.8,
        sd_lam_hat=0.2,
        mean_confidence=0.9,
        sd_confidence=0.05,
    ),
    LambdaLevel(lam_true=0.25, n=0, mean_lam_hat=None),
    LambdaLevel(
        lam_true=0.0,
        n=3,
        mean_lam_hat=0.1,
        sd_lam_hat=0.1,
        mean_confidence=0.7,
        sd_confidence=None,
    ),
    LambdaLevel(
        lam_true=0.5,
        n=1,
        mean_lam_hat=0.5,
        sd_lam_hat=None,
        mean_confidence=0.4,
        sd_confidence=None,
    ),
]
ENTROPY_POINTS = [
    EntropyPoint(lam=0.5, entropy=0.6),
    EntropyPoint(lam=0.2, entropy=0.3),
    EntropyPoint(lam=0.5, entropy=0.7),
    EntropyPoint(lam=None, entropy=0.1),
    EntropyPoint(lam=0.2, entropy=0.5),
    EntropyPoint(lam=0.2, entropy=None),
    EntropyPoint(lam=0.5, entropy=0.5),
]
CLASSES = ["cat", "dog", "frog"]
MATRIX: list[list[float | None]] = [
    [None, 0.25, 0.5],
    [0.75, None, math.nan],
    [0.125, 1.0, None],
]
HISTOGRAMS = [
    HistogramGroup("construct, start 1", [0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 0]),
    HistogramGroup("select", [1, 0, 0, 0, 0, 3, None, 0, 0, 0, 1]),
]
MODELS = [
    ModelAlignment("ResNet18 adversarial", mean_score=96.0, low=92.0, high=99.0, n_annotators=20),
    ModelAlignment("VGG16", mean_score=None, low=None, high=None, n_annotators=0),
    ModelAlignment("ResNet18 standard", mean_score=5.0, low=1.0, high=None, n_annotators=18),
]
CONSISTENCY = [
    ConsistencyRow("All interfaces", mean_abs_diff=0.1, share_identical=0.5, n_pairs=10),
    ConsistencyRow("construct", mean_abs_diff=0.2, share_identical=None, n_pairs=4),
]

# (plot, figure from the data above, title, axis labels)
PLOTS: list[tuple[str, Callable[[], Figure], str, list[str]]] = [
    (
        "lam_hat_vs_lam",
        lambda: lam_hat_vs_lam(LEVELS),
        "Perceived vs true mixing factor",
        ["True λ (weight of image 1)", "Perceived λ̂ (mean ± SD)"],
    ),
    (
        "confidence_by_lam",
        lambda: confidence_by_lam(LEVELS),
        "Confidence by mixing factor",
        ["True λ (weight of image 1)", "Confidence (mean ± SD)"],
    ),
    (
        "entropy_by_lam",
        lambda: entropy_by_lam(ENTROPY_POINTS),
        "Soft-label entropy by mixing factor",
        ["True λ (weight of image 1)", "Soft-label entropy (nats)"],
    ),
    (
        "class_pair_heatmap",
        lambda: class_pair_heatmap(CLASSES, MATRIX),
        "Mean soft label per class pair",
        ["Class 2", "Class 1 (mass shown)", "Mean soft-label mass"],
    ),
    (
        "midpoint_histograms",
        lambda: midpoint_histograms(HISTOGRAMS),
        "Chosen midpoints per interface and start step",
        ["Chosen λ (weight of class 1)", "Answers"],
    ),
    (
        "iri_alignment",
        lambda: iri_alignment(MODELS, chance=33.3),
        "IRI alignment per model",
        ["Model", "Alignment score (%)"],
    ),
    (
        "repeat_consistency",
        lambda: repeat_consistency(CONSISTENCY),
        "Repeat consistency per interface",
        ["Interface", "Mean |Δλ|", "Share identical"],
    ),
]

# (plot, figure from input with nothing to draw)
EMPTY: list[tuple[str, Callable[[], Figure]]] = [
    ("lam_hat_vs_lam", lambda: lam_hat_vs_lam([])),
    ("lam_hat_vs_lam, no means", lambda: lam_hat_vs_lam([LambdaLevel(0.5, 2, None)])),
    ("lam_hat_vs_lam, no λ", lambda: lam_hat_vs_lam([LambdaLevel(None, 2, 0.5, 0.1)])),
    ("confidence_by_lam", lambda: confidence_by_lam([])),
    ("confidence_by_lam, no means", lambda: confidence_by_lam([LambdaLevel(0.5, 2, 0.5)])),
    ("entropy_by_lam", lambda: entropy_by_lam([])),
    ("entropy_by_lam, all None", lambda: entropy_by_lam([EntropyPoint(None, None)])),
    ("entropy_by_lam, NaN", lambda: entropy_by_lam([EntropyPoint(0.5, math.nan)])),
    ("class_pair_heatmap", lambda: class_pair_heatmap([], [])),
    ("class_pair_heatmap, all None", lambda: class_pair_heatmap(["a", "b"], [[None] * 2] * 2)),
    ("midpoint_histograms", lambda: midpoint_histograms([])),
    (
        "midpoint_histograms, no answers",
        lambda: midpoint_histograms([HistogramGroup("x", [0] * 11)]),
    ),
    ("iri_alignment", lambda: iri_alignment([], chance=33.3)),
    ("iri_alignment, no scores", lambda: iri_alignment([ModelAlignment("m", None, 1.0, 2.0)])),
    ("repeat_consistency", lambda: repeat_consistency([])),
    ("repeat_consistency, all None", lambda: repeat_consistency([ConsistencyRow("c", None, None)])),
]

PLOT_IDS = [name for name, *_ in PLOTS]
EMPTY_IDS = [name for name, _ in EMPTY]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 (our own output, not untrusted input)


def texts(root: ET.Element) -> list[str]:
    return ["".join(el.itertext()) for el in root.iter(f"{SVG}text")]


def group(root: ET.Element, gid: str) -> ET.Element:
    found = [el for el in root.iter() if el.get("id") == gid]
    assert len(found) == 1, f"expected one element with id {gid!r}, found {len(found)}"
    return found[0]


def ids_with_prefix(root: ET.Element, prefix: str) -> list[str]:
    return sorted(el.get("id", "") for el in root.iter() if el.get("id", "").startswith(prefix))


def count(el: ET.Element, tag: str) -> int:
    return sum(1 for _ in el.iter(f"{SVG}{tag}"))


def artists_by_gid(fig: Figure, gid: str) -> list[Artist]:
    return fig.findobj(lambda artist: artist.get_gid() == gid)


def line_data(fig: Figure, gid: str) -> tuple[list[float], list[float]]:
    (line,) = artists_by_gid(fig, gid)
    assert isinstance(line, Line2D)
    return [float(v) for v in line.get_xdata()], [float(v) for v in line.get_ydata()]


# --------------------------------------------------------------------------------------------
# Every plot
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "make", "title", "labels"), PLOTS, ids=PLOT_IDS)
def test_the_inline_svg_keeps_every_style_as_presentation_attributes(
    name: str, make: Callable[[], Figure], title: str, labels: list[str]
) -> None:
    # given: the download, with matplotlib's style attributes and stylesheet
    svg = render(make(), "svg")
    original = parse(svg)
    assert "<style" in svg
    styled = [el for el in original.iter() if el.get("style")]
    assert styled
    # when
    inline = plots.svg_for_html(svg)
    root = parse(inline)
    # then: still the same parseable drawing, with no <style> and no style attribute (which
    # the Content-Security-Policy would refuse), each declaration now an attribute
    assert "<style" not in inline
    assert [el for el in root.iter() if el.get("style") is not None] == []
    assert (root.get("stroke-linejoin"), root.get("stroke-linecap")) == ("round", "butt")
    converted = [el for el in root.iter() if el.tag != f"{SVG}svg" and el.get("fill")]
    kept = [el for el in original.iter() if el.tag != f"{SVG}style"]
    for before, after in zip(kept, root.iter(), strict=True):
        assert after.tag == before.tag
        for declaration in filter(None, (before.get("style") or "").split(";")):
            prop, value = (part.strip() for part in declaration.split(":", 1))
            assert after.get(prop) == value
    assert converted
    assert texts(root) == texts(original)


@pytest.mark.parametrize(("name", "make", "title", "labels"), PLOTS, ids=PLOT_IDS)
def test_svg_parses_with_title_and_axis_labels(
    name: str, make: Callable[[], Figure], title: str, labels: list[str]
) -> None:
    # given
    fig = make()
    # when
    root = parse(render(fig, "svg"))
    # then
    assert root.tag == f"{SVG}svg"
    assert root.findtext(f"{SVG}title") == title
    shown = texts(root)
    assert shown.count(title) == 1
    assert [label for label in labels if label not in shown] == []
    assert NO_DATA not in shown


@pytest.mark.parametrize(("name", "make", "title", "labels"), PLOTS, ids=PLOT_IDS)
def test_png_is_600_by_400(
    name: str, make: Callable[[], Figure], title: str, labels: list[str]
) -> None:
    # given
    fig = make()
    # when
    png = render(fig, "png")
    # then
    assert png[:8] == PNG_SIGNATURE
    with Image.open(BytesIO(png)) as image:
        image.load()
        assert (image.format, image.size) == ("PNG", (600, 400))


@pytest.mark.parametrize(("name", "make", "title", "labels"), PLOTS, ids=PLOT_IDS)
def test_same_input_gives_identical_bytes(
    name: str, make: Callable[[], Figure], title: str, labels: list[str]
) -> None:
    # given
    first, second = make(), make()
    # when
    svgs = (render(first, "svg"), render(second, "svg"))
    pngs = (render(first, "png"), render(second, "png"))
    # then
    assert svgs[0] == svgs[1]
    assert pngs[0] == pngs[1]
    assert "<dc:date>" not in svgs[0]


@pytest.mark.parametrize(("name", "make"), EMPTY, ids=EMPTY_IDS)
def test_input_without_data_says_no_data_yet(name: str, make: Callable[[], Figure]) -> None:
    # given
    fig = make()
    # when
    root = parse(render(fig, "svg"))
    png = render(fig, "png")
    # then
    assert NO_DATA in texts(root)
    assert root.findtext(f"{SVG}title") in texts(root)
    with Image.open(BytesIO(png)) as image:
        assert image.size == (600, 400)


def test_render_refuses_an_unknown_format() -> None:
    # given
    fig = lam_hat_vs_lam(LEVELS)
    # when / then
    with pytest.raises(ValueError, match="fmt must be 'svg' or 'png', got 'pdf'"):
        render(fig, "pdf")  # type: ignore[call-overload]


def test_rendering_leaves_the_global_matplotlib_style_alone() -> None:
    # given
    before = (matplotlib.rcParams["svg.fonttype"], matplotlib.rcParams["svg.hashsalt"])
    # when
    render(lam_hat_vs_lam(LEVELS), "svg")
    # then
    assert (matplotlib.rcParams["svg.fonttype"], matplotlib.rcParams["svg.hashsalt"]) == before
    assert matplotlib.get_backend().lower() == "agg"


def test_plots_module_imports_nothing_from_django() -> None:
    # given
    tree = ast.parse(Path(plots.__file__).read_text())
    # when
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    # then
    assert "matplotlib" in imported
    assert [name for name in imported if name.split(".")[0] == "django"] == []


# --------------------------------------------------------------------------------------------
# Data marks per plot
# --------------------------------------------------------------------------------------------


def test_lam_hat_vs_lam_draws_one_point_per_level_with_a_mean_and_bars_where_an_sd_exists() -> None:
    # given
    fig = lam_hat_vs_lam(LEVELS)
    # when
    root = parse(render(fig, "svg"))
    # then
    assert count(group(root, "means"), "use") == 3
    assert count(group(root, "sd-bars"), "path") == 2
    assert count(group(root, "identity"), "path") == 1
    assert line_data(fig, "means") == ([0.0, 0.5, 1.0], [0.1, 0.5, 0.8])
    assert line_data(fig, "identity") == ([0.0, 1.0], [0.0, 1.0])


def test_lam_hat_vs_lam_without_any_sd_draws_points_and_no_bars() -> None:
    # given
    levels = [LambdaLevel(0.2, 1, 0.3, None), LambdaLevel(0.8, 1, 0.6, None)]
    # when
    root = parse(render(lam_hat_vs_lam(levels), "svg"))
    # then
    assert count(group(root, "means"), "use") == 2
    assert ids_with_prefix(root, "sd-bars") == []


def test_confidence_by_lam_has_no_identity_line() -> None:
    # given
    fig = confidence_by_lam(LEVELS)
    # when
    root = parse(render(fig, "svg"))
    # then
    assert count(group(root, "means"), "use") == 3
    assert count(group(root, "sd-bars"), "path") == 1
    assert ids_with_prefix(root, "identity") == []
    assert line_data(fig, "means") == ([0.0, 0.5, 1.0], [0.7, 0.4, 0.9])


def test_entropy_by_lam_scatters_every_point_and_draws_the_mean_per_lam() -> None:
    # given
    fig = entropy_by_lam(ENTROPY_POINTS)
    # when
    root = parse(render(fig, "svg"))
    # then
    assert count(group(root, "points"), "use") == 5
    assert count(group(root, "means"), "use") == 2
    xs, ys = line_data(fig, "means")
    assert xs == [0.2, 0.5]
    assert ys == pytest.approx([0.4, 0.6], rel=0, abs=1e-12)


def test_entropy_by_lam_pools_lams_that_differ_only_by_float_rounding() -> None:
    # given
    points = [EntropyPoint(0.1 + 0.2, 0.2), EntropyPoint(0.3, 0.4)]
    # when
    fig = entropy_by_lam(points)
    # then
    xs, ys = line_data(fig, "means")
    assert xs == [0.3]
    assert ys == pytest.approx([0.3], rel=0, abs=1e-12)


def test_class_pair_heatmap_annotates_only_the_pairs_with_data() -> None:
    # given
    fig = class_pair_heatmap(CLASSES, MATRIX)
    # when
    root = parse(render(fig, "svg"))
    # then
    cells = ids_with_prefix(root, "cell-")
    assert cells == ["cell-0-1", "cell-0-2", "cell-1-0", "cell-2-0", "cell-2-1"]
    assert [texts(group(root, cell)) for cell in cells] == [
        ["0.25"],
        ["0.50"],
        ["0.75"],
        ["0.12"],
        ["1.00"],
    ]
    shown = texts(root)
    assert [name for name in CLASSES if shown.count(name) != 2] == []  # once per axis


def test_class_pair_heatmap_refuses_a_matrix_that_does_not_match_the_classes() -> None:
    # given
    matrix = [[0.5, 0.5], [0.5, 0.5]]
    # when / then
    with pytest.raises(ValueError, match="matrix must be 3 × 3 to match the 3 classes"):
        class_pair_heatmap(CLASSES, matrix)


def test_class_pair_heatmap_draws_class_names_literally() -> None:
    # given: a "$" would start mathtext (and fail on an odd count) if parsing were on
    classes = ["$cat", "dog"]
    # when
    root = parse(render(class_pair_heatmap(classes, [[None, 0.5], [0.5, None]]), "svg"))
    # then
    assert texts(root).count("$cat") == 2


def test_midpoint_histograms_draws_eleven_bars_per_group_with_the_counts() -> None:
    # given
    fig = midpoint_histograms(HISTOGRAMS)
    # when
    root = parse(render(fig, "svg"))
    # then
    assert len(ids_with_prefix(root, "hist-0-")) == 11
    assert len(ids_with_prefix(root, "hist-1-")) == 11
    heights = []
    for g in range(2):
        row = []
        for step in range(11):
            (bar,) = artists_by_gid(fig, f"hist-{g}-{step}")
            assert isinstance(bar, Rectangle)
            row.append(bar.get_height())
        heights.append(row)
    assert heights == [[0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 3, 0, 0, 0, 0, 1]]
    shown = texts(root)
    assert "construct, start 1 (n = 4)" in shown
    assert "select (n = 5)" in shown


def test_midpoint_histograms_grows_taller_past_two_rows_of_three() -> None:
    # given
    groups = [HistogramGroup(f"group {i}", [1] * 11) for i in range(7)]
    # when
    fig = midpoint_histograms(groups)
    png = render(fig, "png")
    root = parse(render(fig, "svg"))
    # then
    with Image.open(BytesIO(png)) as image:
        assert image.size == (600, 580)
    assert len(ids_with_prefix(root, "hist-")) == 77


def test_midpoint_histograms_refuses_a_histogram_without_eleven_counts() -> None:
    # given
    groups = [HistogramGroup("select", [1, 2, 3])]
    # when / then
    with pytest.raises(ValueError, match="histogram of 'select' has 3 counts, not 11"):
        midpoint_histograms(groups)


def test_iri_alignment_draws_bars_for_scored_models_and_whiskers_where_an_interval_exists() -> None:
    # given
    fig = iri_alignment(MODELS, chance=33.3)
    # when
    root = parse(render(fig, "svg"))
    # then
    assert ids_with_prefix(root, "bar-") == ["bar-0", "bar-1"]
    assert count(group(root, "intervals"), "path") == 1
    assert count(group(root, "chance"), "path") == 1
    heights = []
    for i in range(2):
        (bar,) = artists_by_gid(fig, f"bar-{i}")
        assert isinstance(bar, Rectangle)
        heights.append(bar.get_height())
    assert heights == [96.0, 5.0]
    shown = texts(root)
    assert "ResNet18 adversarial" in shown
    assert "n = 20" in shown
    assert "VGG16" not in shown
    assert "Chance (33.3%)" in shown


def test_iri_alignment_without_chance_draws_no_chance_line() -> None:
    # given
    models = [ModelAlignment("m", 50.0, 40.0, 60.0, 5)]
    # when
    root = parse(render(iri_alignment(models), "svg"))
    # then
    assert ids_with_prefix(root, "chance") == []
    assert count(group(root, "intervals"), "path") == 1


def test_iri_alignment_clamps_an_interval_that_misses_the_mean() -> None:
    # given: a bootstrap percentile interval entirely above the mean
    models = [ModelAlignment("m", 10.0, 12.0, 20.0, 5)]
    # when
    fig = iri_alignment(models)
    # then
    (collection,) = artists_by_gid(fig, "intervals")
    assert isinstance(collection, LineCollection)
    segments = collection.get_segments()
    assert [[tuple(map(float, p)) for p in seg] for seg in segments] == [[(0.0, 10.0), (0.0, 20.0)]]


def test_repeat_consistency_draws_a_bar_per_interface_and_marks_missing_values() -> None:
    # given
    fig = repeat_consistency(CONSISTENCY)
    # when
    root = parse(render(fig, "svg"))
    # then
    assert ids_with_prefix(root, "abs-diff-") == ["abs-diff-0", "abs-diff-1"]
    assert ids_with_prefix(root, "identical-") == ["identical-0"]
    shown = texts(root)
    assert [t for t in shown if t in {"0.10", "0.20", "0.50", "n/a"}] == [
        "0.10",
        "0.20",
        "0.50",
        "n/a",
    ]
    assert shown.count("All interfaces") == 2  # once per panel
    assert "n = 10" in shown


def test_no_data_text_is_a_text_artist() -> None:
    # given
    fig = lam_hat_vs_lam([])
    # when
    found = artists_by_gid(fig, "no-data")
    # then
    assert len(found) == 1
    assert isinstance(found[0], Text)
    assert found[0].get_text() == NO_DATA
