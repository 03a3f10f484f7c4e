"""Every link of the documentation resolves, and nothing in the repository points outside it.

Walks every Markdown link of README.md, CONTRIBUTING.md and docs/**/*.md (relative files, and
#anchors of Markdown targets) and every `docs/<page>.md#anchor` reference in the code's comments
and strings, and fails on a missing target. A fresh clone must explain itself: the checkers are
unit-tested on bad examples below, so a checker that stopped finding problems would fail too.
"""

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The slug MkDocs gives a heading; Python-Markdown ships no type stubs.
from markdown.extensions.toc import slugify  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = [
    "README.md",
    "CONTRIBUTING.md",
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md")),
]
CODE_SUFFIXES = (".py", ".html", ".js", ".css")
# This file's bad examples below are broken on purpose: the repository scans leave it out.
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()
# Built from parts, so this file does not match its own patterns.
OUTSIDE_PATTERNS = (
    re.compile(re.escape("..") + "/shared"),
    re.compile("/" + "work/"),
    re.compile("shared" + "/design"),
    re.compile("/" + "home/[a-z]"),
    re.compile("/" + "Users/[A-Za-z]"),
)

# The design notes the code used to cite by bare name; a citation names its docs/ page instead.
BARE_NOTE = re.compile(
    r"(?<![\w/.-])(?:soft-labels|analysis|interfaces|legacy-formats|house-style)\.md"
)

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"`+[^`]*`+")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_EXPLICIT_ID = re.compile(r"\s*\{[^}]*#([\w-]+)[^}]*\}\s*$")
_DOCS_REF = re.compile(r"(?<![\w/.-])(docs/[\w./-]+?\.md)(#[\w-]+)?")


@dataclass(frozen=True)
class Link:
    target: str
    line: int


def _prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines outside fenced code blocks, with inline code spans blanked out."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, _CODE_SPAN.sub("", line)


def markdown_links(text: str) -> list[Link]:
    """Inline links and images, outside code; external URLs and mail links left out."""
    links = []
    for number, line in _prose_lines(text):
        for match in _LINK.finditer(line):
            target = match.group(1)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):
                links.append(Link(target, number))
    return links


def heading_anchors(text: str) -> set[str]:
    """The ids MkDocs gives the headings: an explicit {#id}, else Python-Markdown's slug."""
    anchors = set()
    for _, line in _prose_lines(text.replace("`", "")):
        match = _HEADING.match(line)
        if match is None:
            continue
        title = match.group(2)
        explicit = _EXPLICIT_ID.search(title)
        if explicit:
            anchors.add(explicit.group(1))
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title).replace("*", "")
        anchors.add(slugify(title, "-"))
    return anchors


def target_problem(root: Path, source: Path, target: str) -> str | None:
    """Why `target`, linked from `source` (a file under `root`), does not resolve; None if it
    does."""
    path_part, _, anchor = target.partition("#")
    resolved = (source.parent / path_part).resolve() if path_part else source.resolve()
    if not resolved.is_relative_to(root.resolve()):
        return f"{target} points outside the repository"
    if not resolved.exists():
        return f"{target}: no such file"
    if (
        anchor
        and resolved.suffix == ".md"
        and anchor not in heading_anchors(resolved.read_text(encoding="utf-8"))
    ):
        return f"{target}: no heading with the anchor #{anchor}"
    return None


def markdown_problems(root: Path, relative: str) -> list[str]:
    source = root / relative
    return [
        f"{relative}:{link.line}: {problem}"
        for link in markdown_links(source.read_text(encoding="utf-8"))
        if (problem := target_problem(root, source, link.target)) is not None
    ]


def code_doc_refs(text: str) -> list[Link]:
    """`docs/<page>.md` and `docs/<page>.md#anchor` references anywhere in a file's text."""
    return [
        Link(match.group(1) + (match.group(2) or ""), text.count("\n", 0, match.start()) + 1)
        for match in _DOCS_REF.finditer(text)
    ]


def code_problems(root: Path, relative: str) -> list[str]:
    text = (root / relative).read_text(encoding="utf-8")
    return [
        f"{relative}:{ref.line}: {problem}"
        for ref in code_doc_refs(text)
        if (problem := target_problem(root, root / "README.md", ref.target)) is not None
    ]


def outside_references(text: str) -> list[str]:
    return [m.group(0) for pattern in OUTSIDE_PATTERNS for m in pattern.finditer(text)]


def _tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    names = listed.split("\0")
    return [name for name in names if name and name != SELF and (ROOT / name).is_file()]


# --- the repository -----------------------------------------------------------------------------


@pytest.mark.parametrize("relative", MARKDOWN)
def test_every_markdown_link_resolves(relative: str) -> None:
    # when
    problems = markdown_problems(ROOT, relative)
    # then
    assert problems == []


def test_every_docs_reference_in_the_code_resolves() -> None:
    # given
    files = [name for name in _tracked_files() if name.endswith(CODE_SUFFIXES)]
    # when
    refs = {name: code_doc_refs((ROOT / name).read_text(encoding="utf-8")) for name in files}
    problems = [p for name in files for p in code_problems(ROOT, name)]
    # then: the code does cite the docs (the comments of the maths at least), and every citation
    # resolves
    assert sum(len(found) for found in refs.values()) > 50
    assert refs["analysis/aggregation.py"] != []
    assert problems == []


def test_no_tracked_file_points_outside_the_repository() -> None:
    # given
    files = _tracked_files()
    # when
    found = {}
    for name in files:
        data = (ROOT / name).read_bytes()
        if b"\0" in data:  # images and other binary files
            continue
        hits = outside_references(data.decode("utf-8", errors="replace"))
        if hits:
            found[name] = hits
    # then
    assert len(files) > 100
    assert found == {}


def test_code_cites_the_docs_by_path_not_by_a_bare_note_name() -> None:
    # given every tracked file but the Markdown pages (whose relative links are checked above)
    files = [name for name in _tracked_files() if not name.endswith(".md")]
    # when
    found = {}
    for name in files:
        data = (ROOT / name).read_bytes()
        if b"\0" not in data and (hits := BARE_NOTE.findall(data.decode("utf-8", "replace"))):
            found[name] = hits
    # then
    assert found == {}


# --- the checkers, on bad examples -------------------------------------------------------------

BAD_PAGE = """# Title

## Soft labels {#soft-labels}

## The `hmix-2023` variant

See [the labels](#soft-labels), [the variant](#the-hmix-2023-variant), [a typo](#sotf-labels),
[a page](other.md#present), [a missing page](missing.md), [a missing anchor](other.md#absent),
[outside](../../elsewhere.md), [the web](https://example.org/x.md) and ![a picture](img/a.png).

```sh
echo "[not a link](nowhere.md)"
```

Inline code is not a link either: `[x](nowhere.md)`.
"""


@pytest.fixture
def bad_repo(tmp_path: Path) -> Path:
    (tmp_path / "docs" / "img").mkdir(parents=True)
    (tmp_path / "docs" / "page.md").write_text(BAD_PAGE, encoding="utf-8")
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## Present\n", encoding="utf-8")
    (tmp_path / "README.md").write_text("[docs](docs/page.md)\n", encoding="utf-8")
    return tmp_path


def test_link_extractor_skips_code_and_external_urls() -> None:
    # when
    links = markdown_links(BAD_PAGE)
    # then
    assert [link.target for link in links] == [
        "#soft-labels",
        "#the-hmix-2023-variant",
        "#sotf-labels",
        "other.md#present",
        "missing.md",
        "other.md#absent",
        "../../elsewhere.md",
        "img/a.png",
    ]
    assert {link.line for link in links} == {7, 8, 9}


def test_heading_anchors_are_explicit_ids_or_slugs() -> None:
    # when
    anchors = heading_anchors(BAD_PAGE)
    # then
    assert anchors == {"title", "soft-labels", "the-hmix-2023-variant"}


def test_markdown_checker_reports_each_broken_link(bad_repo: Path) -> None:
    # when
    problems = markdown_problems(bad_repo, "docs/page.md")
    # then
    assert problems == [
        "docs/page.md:7: #sotf-labels: no heading with the anchor #sotf-labels",
        "docs/page.md:8: missing.md: no such file",
        "docs/page.md:8: other.md#absent: no heading with the anchor #absent",
        "docs/page.md:9: ../../elsewhere.md points outside the repository",
        "docs/page.md:9: img/a.png: no such file",
    ]
    assert markdown_problems(bad_repo, "README.md") == []


def test_code_checker_reports_missing_pages_and_anchors(bad_repo: Path) -> None:
    # given
    (bad_repo / "code.py").write_text(
        "# See docs/other.md#present and docs/page.md#soft-labels.\n"
        "# Also docs/gone.md, and docs/other.md#nope.\n"
        'URL = "https://example.org/docs/readme.md"\n',
        encoding="utf-8",
    )
    # when
    problems = code_problems(bad_repo, "code.py")
    # then
    assert problems == [
        "code.py:2: docs/gone.md: no such file",
        "code.py:2: docs/other.md#nope: no heading with the anchor #nope",
    ]


def test_bare_note_names_are_found_and_docs_paths_are_not() -> None:
    # given
    text = 'see soft-labels.md "Input record", (analysis.md) and docs/methods/soft-labels.md'
    # then
    assert BARE_NOTE.findall(text) == ["soft-labels.md", "analysis.md"]


def test_outside_reference_finder_flags_paths_outside_the_repository() -> None:
    # given
    text = (
        "see " + ".." + "/shared" + "/design/notes.md, or /" + "work/main/x.py, "
        "or /" + "home/alice/x; not docs/methods/soft-labels.md"
    )
    # when
    hits = outside_references(text)
    # then
    assert hits == [".." + "/shared", "/" + "work/", "shared" + "/design", "/" + "home/a"]
