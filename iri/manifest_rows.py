"""The IRI manifest that generation writes: the columns the IRI importer reads
(docs/formats/import.md#iri-manifest), then generation's own record of each image. One place for
the job's result zip and the committed demo set alike; no Django, so the demo builder can use it."""

import csv
import io
from collections.abc import Sequence
from typing import Any, Final

MANIFEST_COLUMNS: Final = (
    "iri",
    "target",
    "start",
    "model",
    "layer",
    "regime",
    "regulariser",
    "seed",
    "final_loss",
    "distance",
    "start_distance",
    "best_step",
    "settings",
)


def manifest_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    """The manifest as CSV bytes, header first, rows in the order given."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()
