"""The documentation says what the code does: its worked examples and column lists are checked.

Every worked-example table of docs/methods/soft-labels.md (header `| answer | I | <method> |`)
is recomputed with analysis.aggregation.construct, and the format pages must list every column
the exports and importers use. No database: these read the docs and call pure code.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from analysis import aggregation, bundle, exports
from analysis.aggregation import Annotation, Method
from elicitation import iri_manifest, legacy

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CLASSES = list(legacy.CIFAR10_CLASSES)
TOLERANCE = 5e-5 + 1e-12  # the docs round to 4 places


@dataclass(frozen=True)
class Example:
    method: str
    answer: str
    impossible: str
    output: str
    line: int


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def example_tables(text: str) -> list[Example]:
    """The rows of every table whose header is `| answer | I | <method> |`."""
    examples = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        header = _cells(line) if line.startswith("|") else []
        if len(header) != 3 or header[:2] != ["answer", "I"]:
            continue
        method = header[2]
        for j in range(i + 2, len(lines)):
            if not lines[j].startswith("|"):
                break
            answer, impossible, output = _cells(lines[j])
            examples.append(Example(method, answer, impossible, output, j + 1))
    return examples


def parse_answer(answer: str) -> tuple[int, float, int | None, float | None]:
    parts = [p.split() for p in answer.split(",")]
    (top, p1), *rest = parts
    second, p2 = (rest[0][0], float(rest[0][1])) if rest else (None, None)
    return (
        CLASSES.index(top),
        float(p1),
        None if second is None else CLASSES.index(second),
        p2,
    )


def parse_impossible(cell: str) -> frozenset[int]:
    if cell == "none":
        return frozenset()
    if cell.startswith("all but "):
        kept = {CLASSES.index(name.strip()) for name in cell.removeprefix("all but ").split(",")}
        return frozenset(set(range(len(CLASSES))) - kept)
    return frozenset(CLASSES.index(name.strip()) for name in cell.split(","))


def parse_output(cell: str) -> tuple[dict[int, float], float]:
    """Listed classes and the value of every class not listed ("others", else 0)."""
    listed: dict[int, float] = {}
    others = 0.0
    for part in cell.split(","):
        name, value = part.split()
        if name == "others":
            others = float(value)
        else:
            listed[CLASSES.index(name)] = float(value)
    return listed, others


def expected_vector(cell: str) -> np.ndarray:
    listed, others = parse_output(cell)
    expected = np.full(len(CLASSES), others)
    for index, value in listed.items():
        expected[index] = value
    return expected


def computed(example: Example) -> np.ndarray:
    top, p1, second, p2 = parse_answer(example.answer)
    annotation = Annotation(top, p1, second, p2, parse_impossible(example.impossible))
    return aggregation.construct(annotation, len(CLASSES), Method(example.method))


SOFT_LABELS_PAGE = (DOCS / "methods/soft-labels.md").read_text(encoding="utf-8")
EXAMPLES = example_tables(SOFT_LABELS_PAGE)


def test_every_construction_has_worked_examples() -> None:
    # then
    assert {e.method for e in EXAMPLES} == set(aggregation.CONSTRUCTIONS)
    assert len(EXAMPLES) >= 20


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.method}-line{e.line}" for e in EXAMPLES])
def test_worked_example_matches_the_code(example: Example) -> None:
    # when
    probs = computed(example)
    # then
    assert np.abs(probs - expected_vector(example.output)).max() <= TOLERANCE, probs.round(4)


def test_the_example_checker_catches_a_wrong_example() -> None:
    # given a row of the page with one digit changed
    right = Example(
        "hmix-2023", "Horse 100, Deer 10", "Dog", "Horse .8636, Deer .0455, Dog 0, others .0130", 0
    )
    wrong = Example(
        "hmix-2023", "Horse 100, Deer 10", "Dog", "Horse .8182, Deer .0455, Dog 0, others .0130", 0
    )
    # then
    assert np.abs(computed(right) - expected_vector(right.output)).max() <= TOLERANCE
    assert np.abs(computed(wrong) - expected_vector(wrong.output)).max() > TOLERANCE
    assert example_tables("| answer | I | top1 |\n|---|---|---|\n| Cat 100 | none | Cat 1 |\n") == [
        Example("top1", "Cat 100", "none", "Cat 1", 3)
    ]


def test_export_formats_page_lists_every_column() -> None:
    # given
    page = (DOCS / "formats" / "export.md").read_text(encoding="utf-8")
    columns = [
        *bundle.RESPONSE_COLUMNS,
        *bundle.SOFT_LABEL_COLUMNS,
        *bundle.INDEX_COLUMNS,
        *bundle.ANALYSIS_COLUMNS,
        *exports.RESPONSE_COLUMNS,
    ]
    # then
    missing = [c for c in columns if f"`{c}`" not in page]
    assert missing == []
    assert [w for w in exports.WHATS if f"`{w}`" not in page] == []


def test_import_formats_page_lists_every_format_and_column() -> None:
    # given
    page = (DOCS / "formats" / "import.md").read_text(encoding="utf-8")
    legacy_columns = {c for spec in legacy.SPECS.values() for c in spec.columns}
    # then
    assert [f for f in legacy.FORMATS if f"`{f}`" not in page] == []
    assert [c for c in (*legacy.COMMON_COLUMNS, *legacy_columns) if f"`{c}`" not in page] == []
    assert [c for c in iri_manifest.COLUMNS if f"`{c}`" not in page] == []
    assert [r for r in iri_manifest.REGULARISERS if f"`{r}`" not in page] == []
