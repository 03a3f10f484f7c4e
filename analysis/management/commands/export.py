from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis import exports
from analysis.management.commands._method import add_method_arguments, study_and_method


def index_path(out: Path) -> Path:
    """Where the row index of an .npy export goes: labels.npy -> labels.index.csv."""
    return out.with_suffix(".index.csv")


class Command(BaseCommand):
    help = (
        "Export responses, per-annotation soft labels, aggregated soft labels, or the stored "
        "analyses (mixing-factor, midpoints, iri-alignment). Streams: memory does not grow with "
        "the study. npy also writes <out>.index.csv naming each row."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_method_arguments(parser)
        parser.add_argument("--what", required=True, choices=exports.WHATS)
        parser.add_argument("--format", required=True, choices=["csv", "json", "jsonl", "npy"])
        parser.add_argument("--out", required=True, type=Path)
        parser.add_argument(
            "--raw-ids",
            action="store_true",
            help="Also write the participants' platform ids (PROLIFIC_PID, workerId): personal "
            "data. Without it participants are named by their pseudonym only.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study, method = study_and_method(options)
        out: Path = options["out"]
        fmt = options["format"]
        # One bound for the array and its index, so they list the same rows on a live study.
        until = exports.export_until(study=study, what=options["what"])
        try:
            rows = _write(
                out,
                exports.export_stream(
                    study=study,
                    what=options["what"],
                    fmt=fmt,
                    method=method,
                    until=until,
                    raw_ids=options["raw_ids"],
                ),
            )
            if fmt == "npy":
                _write(
                    index_path(out),
                    exports.export_stream(
                        study=study,
                        what=options["what"],
                        fmt="npy-index",
                        method=method,
                        until=until,
                    ),
                )
        except exports.ExportError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Wrote {out} ({rows} bytes)")


def _write(path: Path, chunks: Any) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with path.open("wb") as fh:
        for chunk in chunks:
            data = chunk.encode() if isinstance(chunk, str) else chunk
            fh.write(data)
            size += len(data)
    return size
