"""The committed demo IRI set (iri/demo_set/) as data: read without PyTorch or Django, so that
`seed_demo` can show interfaces E and F on a machine without the `iri` extra."""

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

DEMO_SET_DIR: Final = Path(__file__).resolve().parent / "demo_set"
MANIFEST: Final = "manifest.csv"


@dataclass
class DemoSet:
    files: dict[str, bytes]
    rows: list[dict[str, Any]]
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    # TorchScript files of the models (models/<name>.pt), for the researcher's model list.
    model_files: dict[str, bytes] = field(default_factory=dict)
    seconds_per_iri: dict[str, float] = field(default_factory=dict)


def read_demo_set(directory: Path = DEMO_SET_DIR) -> DemoSet:
    """The committed set: its images (by relative path), manifest rows and model files."""
    files = {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*.png"))
    }
    with (directory / MANIFEST).open(newline="", encoding="utf-8") as fh:
        rows: list[dict[str, Any]] = list(csv.DictReader(fh))
    models = json.loads((directory / "models.json").read_text())
    model_files = {
        path.stem: path.read_bytes() for path in sorted((directory / "models").glob("*.pt"))
    }
    return DemoSet(files=files, rows=rows, models=models, model_files=model_files)
