"""bench/RESULTS.md is shared by several benchmarks: each one rewrites only its own section."""

from pathlib import Path

TITLE = "# Benchmark results\n"


def section_span(text: str, heading: str) -> tuple[int, int] | None:
    """Start and end offsets of the `## heading` section (up to the next `## `), if present."""
    start = text.find(heading)
    if start == -1:
        return None
    nxt = text.find("\n## ", start + len(heading))
    return start, len(text) if nxt == -1 else nxt + 1


def replace_section(out: Path, heading: str, body: str) -> str:
    """Put `heading` + `body` in place of that section (or at the end), keeping the others."""
    text = out.read_text() if out.exists() else TITLE
    section = f"{heading}\n\n{body.strip()}\n"
    span = section_span(text, heading)
    if span is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        start, end = span
        rest = text[end:]
        text = text[:start] + section + ("\n" + rest if rest else "")
    out.write_text(text)
    return text
