"""IRI manifests: parse and validate the CSV/JSON that describes an imported IRI set (pure).

One manifest row names an IRI (docs/user-guide/interfaces.md#iri-2afc; columns:
docs/formats/import.md#iri-manifest) and where it came from: the PNG of the IRI,
its target image, its start image (noise or another image), the model and layer whose
representation was matched, the model's training regime, the regulariser and the seed.
Every row is checked and every problem is collected, so a researcher fixes a manifest in one
pass instead of one error per upload. Nothing here touches Django; the service
`stimulus_services.iri_import` does the decoding and the writes around it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import stat
import unicodedata
import zipfile
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal

from elicitation import imaging

ManifestFormat = Literal["csv", "json"]

PATH_COLUMNS: Final = ("iri", "target", "start")
TEXT_COLUMNS: Final = ("model", "layer", "regime")
COLUMNS: Final = (*PATH_COLUMNS, *TEXT_COLUMNS, "regulariser", "seed")
# docs/formats/import.md#iri-manifest: the regulariser is one of these three.
REGULARISERS: Final = ("none", "human-aligned", "adversarial")
# The IRI path becomes Stimulus.key (a 255-character column).
MAX_PATH_LENGTH: Final = 255
# Interface F: three target columns, two IRIs of each target as rows.
CLUSTER_TARGETS: Final = 3
IRIS_PER_TARGET: Final = 2

_COLUMN_ORDER: Final = {name: i for i, name in enumerate(COLUMNS)}
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")


# ---------------------------------------------------------------------------------------------
# Results and errors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """One problem of a manifest.

    row is the CSV line number (the header is line 1) or the index in the JSON list (from 0);
    None means the file as a whole. column is None when the problem is not one column's.
    """

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = "manifest" if self.row is None else f"row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.message}"


class ManifestError(ValueError):
    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  {error}" for error in self.errors)
        super().__init__(f"{len(self.errors)} problem(s) in the IRI manifest:\n{lines}")


@dataclass(frozen=True, order=True)
class ClusterGroup:
    """IRIs that may share a clustering set: same model, layer, regime and regulariser."""

    model: str
    layer: str
    regime: str
    regulariser: str


@dataclass(frozen=True)
class IriEntry:
    row: int
    iri: str
    target: str
    start: str
    model: str
    layer: str
    regime: str
    regulariser: str
    seed: int

    @property
    def group(self) -> ClusterGroup:
        return ClusterGroup(self.model, self.layer, self.regime, self.regulariser)

    @property
    def meta(self) -> dict[str, Any]:
        """Stimulus.meta of an IRI stimulus (docs/formats/import.md#iri-manifest)."""
        return {
            "model": self.model,
            "layer": self.layer,
            "regime": self.regime,
            "regulariser": self.regulariser,
            "seed": self.seed,
            "target": self.target,
            "start": self.start,
        }


@dataclass(frozen=True)
class ImageRef:
    """A row's reference to a file of the set (what the service decodes and checks)."""

    row: int
    column: str
    path: str


@dataclass(frozen=True)
class ManifestCheck:
    """Everything found in a manifest: the rows without problems, and every problem.

    references lists every well-formed path of every row (valid or not) that is present in the
    file set, so image problems can be reported together with the manifest's own.
    """

    entries: tuple[IriEntry, ...]
    errors: tuple[RowError, ...]
    warnings: tuple[str, ...]
    references: tuple[ImageRef, ...]


@dataclass(frozen=True)
class Manifest:
    entries: tuple[IriEntry, ...]
    warnings: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------


def normalise_path(raw: str) -> str | None:
    """The canonical form of a path inside the folder/zip, or None if it is unusable.

    "/" separators ("\\" from Windows tools too), no "." or empty parts, NFC (macOS stores
    decomposed names). Absolute paths and ".." are refused, as the zip importer refuses them.
    """
    path = raw.strip().replace("\\", "/")
    if imaging._unsafe_member(path):
        return None
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts:
        return None
    return unicodedata.normalize("NFC", "/".join(parts))


def _missing_hint(path: str, files: Collection[str]) -> str:
    # A zip made by "compress folder" puts everything under one top-level folder, which the
    # manifest's paths usually leave out: say so instead of only "missing".
    roots = {name.split("/", 1)[0] for name in files if "/" in name}
    if len(roots) == 1:
        candidate = f"{next(iter(roots))}/{path}"
        if candidate in files:
            return f" (did you mean {candidate!r}?)"
    return ""


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


@dataclass
class _Raw:
    row: int
    # Field name → value as found (str from CSV; any JSON value).
    fields: dict[str, object]
    # Required columns absent from this row, with the message to report for each.
    absent: dict[str, str]


def _decode_text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        # utf-8-sig: spreadsheet programs often start a CSV export with a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError([RowError(None, None, f"not UTF-8 text ({exc})")]) from exc


def _csv_rows(text: str) -> tuple[list[_Raw], list[RowError], list[str]]:
    errors: list[RowError] = []
    warnings: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[tuple[int, list[str]]] = []
    previous_line = 0
    try:
        for cells in reader:
            start_line = previous_line + 1
            previous_line = reader.line_num
            if any(cell.strip() for cell in cells):
                records.append((start_line, cells))
    except csv.Error as exc:
        raise ManifestError(
            [RowError(reader.line_num, None, f"not a readable CSV row ({exc})")]
        ) from exc
    if not records:
        raise ManifestError([RowError(None, None, "the CSV file is empty (a header is required)")])

    header_line, raw_header = records[0]
    header = [name.strip().lower() for name in raw_header]
    seen: set[str] = set()
    for name in header:
        if name in seen and name in COLUMNS:
            errors.append(RowError(header_line, name, "column appears more than once"))
        seen.add(name)
    missing = [name for name in COLUMNS if name not in seen]
    errors.extend(RowError(header_line, name, "missing column") for name in missing)
    extra = [name or "(unnamed)" for name in header if name not in COLUMNS]
    if extra:
        warnings.append(f"ignored column(s): {', '.join(extra)}")

    rows: list[_Raw] = []
    for line, cells in records[1:]:
        if len(cells) > len(header):
            errors.append(
                RowError(
                    line, None, f"{len(cells)} values, but the header has {len(header)} columns"
                )
            )
        fields: dict[str, object] = {}
        absent: dict[str, str] = {}
        for index, name in enumerate(header):
            if name not in COLUMNS or name in fields:
                continue
            if index < len(cells):
                fields[name] = cells[index]
            else:
                absent[name] = f"missing value (the row has {len(cells)} of {len(header)} values)"
        rows.append(_Raw(row=line, fields=fields, absent=absent))
    return rows, errors, warnings


def _json_rows(text: str) -> tuple[list[_Raw], list[RowError], list[str]]:
    errors: list[RowError] = []
    warnings: list[str] = []
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError([RowError(None, None, f"not valid JSON ({exc})")]) from exc
    if isinstance(document, dict):
        if not isinstance(document.get("iris"), list):
            raise ManifestError(
                [RowError(None, None, 'expected a list of objects or {"iris": [...]}')]
            )
        others = sorted(str(key) for key in document if key != "iris")
        if others:
            warnings.append(f"ignored top-level key(s): {', '.join(others)}")
        items = document["iris"]
    elif isinstance(document, list):
        items = document
    else:
        raise ManifestError([RowError(None, None, 'expected a list of objects or {"iris": [...]}')])

    rows: list[_Raw] = []
    unknown: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(RowError(index, None, f"expected an object, got {type(item).__name__}"))
            continue
        unknown.update(str(key) for key in item if key not in COLUMNS)
        fields = {name: item[name] for name in COLUMNS if name in item}
        absent = {name: "missing key" for name in COLUMNS if name not in item}
        rows.append(_Raw(row=index, fields=fields, absent=absent))
    if unknown:
        warnings.append(f"ignored key(s): {', '.join(sorted(unknown))}")
    return rows, errors, warnings


def _text(value: object, *, allow_int: bool) -> str | None:
    """The stripped text of a value, or None if its type is wrong."""
    if isinstance(value, str):
        return value.strip()
    # JSON writers naturally emit "layer": 4; a bool is an int in Python but never meant here.
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _check_value(row: int, name: str, value: object) -> tuple[Any, RowError | None]:
    if name == "seed":
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        text = _text(value, allow_int=False)
        if text == "":
            return None, RowError(row, name, "empty value")
        if text is None or not _INTEGER.fullmatch(text):
            return None, RowError(row, name, f"seed must be an integer, got {value!r}")
        return int(text), None

    text = _text(value, allow_int=name in TEXT_COLUMNS)
    if text is None:
        return None, RowError(row, name, f"must be a string, got {type(value).__name__}")
    if not text:
        return None, RowError(row, name, "empty value")
    if name == "regulariser":
        if text not in REGULARISERS:
            expected = ", ".join(REGULARISERS)
            return None, RowError(
                row, name, f"unknown regulariser {text!r} (expected one of: {expected})"
            )
        return text, None
    if name not in PATH_COLUMNS:
        return text, None

    path = normalise_path(text)
    if path is None:
        return None, RowError(row, name, f"unsafe path {text!r} (absolute or containing '..')")
    if len(path) > MAX_PATH_LENGTH:
        return None, RowError(row, name, f"path longer than {MAX_PATH_LENGTH} characters")
    return path, None


def check_manifest(
    data: bytes | str,
    *,
    manifest_format: ManifestFormat,
    files: Collection[str] | None = None,
) -> ManifestCheck:
    """Parse and validate every row; collect every problem instead of stopping at the first.

    files is the set of paths in the folder/zip (already normalised, see normalise_path);
    None skips the "image missing from the file set" check. Raises ManifestError only when the
    file cannot be read as a manifest at all (not UTF-8, not CSV/JSON, empty).
    """
    text = _decode_text(data)
    if manifest_format == "csv":
        raws, errors, warnings = _csv_rows(text)
    elif manifest_format == "json":
        raws, errors, warnings = _json_rows(text)
    else:
        raise ValueError(f"manifest_format must be 'csv' or 'json', got {manifest_format!r}")
    if not raws and not errors:
        errors.append(RowError(None, None, "the manifest lists no IRIs"))

    file_set = None if files is None else frozenset(files)
    references: list[ImageRef] = []
    candidates: list[tuple[_Raw, dict[str, Any], bool]] = []
    for raw in raws:
        values: dict[str, Any] = {}
        ok = True
        for name in COLUMNS:
            if name in raw.absent:
                errors.append(RowError(raw.row, name, raw.absent[name]))
                ok = False
                continue
            if name not in raw.fields:  # a column missing from the CSV header: reported once
                ok = False
                continue
            value, error = _check_value(raw.row, name, raw.fields[name])
            if error is not None:
                errors.append(error)
                ok = False
                continue
            values[name] = value
            if name in PATH_COLUMNS:
                if file_set is not None and value not in file_set:
                    hint = _missing_hint(value, file_set)
                    errors.append(
                        RowError(raw.row, name, f"image {value!r} is not in the folder/zip{hint}")
                    )
                    ok = False
                else:
                    references.append(ImageRef(raw.row, name, value))
        candidates.append((raw, values, ok))

    first_row: dict[str, int] = {}
    entries: list[IriEntry] = []
    for raw, values, ok in candidates:
        iri, target, start = (values.get(name) for name in PATH_COLUMNS)
        if iri is not None:
            if iri in first_row:
                errors.append(
                    RowError(
                        raw.row, "iri", f"duplicate IRI {iri!r} (also on row {first_row[iri]})"
                    )
                )
                ok = False
            else:
                first_row[iri] = raw.row
            if iri in (target, start):
                which = "target" if iri == target else "start"
                errors.append(RowError(raw.row, "iri", f"the IRI is the same file as its {which}"))
                ok = False
        if target is not None and target == start:
            errors.append(
                RowError(raw.row, "start", "the start image is the same file as the target")
            )
            ok = False
        if ok:
            entries.append(IriEntry(row=raw.row, **values))

    errors.sort(key=error_sort_key)
    return ManifestCheck(
        entries=tuple(entries),
        errors=tuple(errors),
        warnings=tuple(warnings),
        references=tuple(references),
    )


def error_sort_key(error: RowError) -> tuple[int, int]:
    """File-level problems first, then by row, then in column order."""
    row = -1 if error.row is None else error.row
    column = -1 if error.column is None else _COLUMN_ORDER.get(error.column, len(COLUMNS))
    return (row, column)


def parse_manifest(
    data: bytes | str,
    *,
    manifest_format: ManifestFormat,
    files: Collection[str] | None = None,
) -> Manifest:
    """The manifest's IRIs in file order; raises ManifestError listing every problem."""
    checked = check_manifest(data, manifest_format=manifest_format, files=files)
    if checked.errors:
        raise ManifestError(checked.errors)
    return Manifest(entries=checked.entries, warnings=checked.warnings)


def manifest_format_for(path: str | Path) -> ManifestFormat:
    """The manifest format ("csv" or "json") from the file extension."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "json"
    raise ValueError(f"{Path(path).name}: a manifest must be a .csv or .json file")


# ---------------------------------------------------------------------------------------------
# Clustering sets (interface F)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterRow:
    column: int  # index into ClusterSet.targets: the row's true column
    entry: IriEntry


@dataclass(frozen=True)
class ClusterSet:
    group: ClusterGroup
    targets: tuple[str, ...]  # the three column images
    rows: tuple[ClusterRow, ...]  # two IRIs of each target, grouped by column

    @property
    def iris(self) -> tuple[str, ...]:
        return tuple(row.entry.iri for row in self.rows)


def cluster_sets(entries: Iterable[IriEntry], *, seed: int) -> list[ClusterSet]:
    """Sets of 3 distinct targets × 2 IRIs each, within each (model, layer, regime, regulariser).

    Deterministic in (the set of entries, seed): the row order of the manifest does not matter,
    and each group draws from its own generator, so adding one group leaves the others' sets
    unchanged. A target's IRIs are paired at random (an odd one is left over; a target with
    fewer than 2 IRIs is skipped), then sets are formed from the three targets with the most
    pairs left (ties at random), which yields as many sets as the pairs allow. Column order is
    random; rows are grouped by column (the trial display reshuffles both).
    Use cluster_leftover for the IRIs that are in no set.
    """
    groups: dict[ClusterGroup, list[IriEntry]] = defaultdict(list)
    for entry in entries:
        groups[entry.group].append(entry)

    sets: list[ClusterSet] = []
    for group in sorted(groups):
        # A str seed is hashed with SHA-512 by random.seed: stable across runs and platforms.
        rng = random.Random(json.dumps([seed, *_group_fields(group)]))  # noqa: S311 - not crypto
        by_target: dict[str, list[IriEntry]] = defaultdict(list)
        for entry in sorted(groups[group], key=lambda e: e.iri):
            by_target[entry.target].append(entry)
        pairs: dict[str, list[tuple[IriEntry, IriEntry]]] = {}
        for target in sorted(by_target):
            members = by_target[target]
            rng.shuffle(members)
            paired = [
                (members[i], members[i + 1])
                for i in range(0, len(members) - IRIS_PER_TARGET + 1, IRIS_PER_TARGET)
            ]
            if paired:
                pairs[target] = paired
        while True:
            available = [target for target in sorted(pairs) if pairs[target]]
            if len(available) < CLUSTER_TARGETS:
                break
            rng.shuffle(available)
            available.sort(key=lambda target: -len(pairs[target]))  # stable: keeps random ties
            chosen = available[:CLUSTER_TARGETS]
            rng.shuffle(chosen)
            rows: list[ClusterRow] = []
            for column, target in enumerate(chosen):
                rows.extend(ClusterRow(column, entry) for entry in pairs[target].pop())
            sets.append(ClusterSet(group=group, targets=tuple(chosen), rows=tuple(rows)))
    return sets


def cluster_leftover(entries: Iterable[IriEntry], sets: Iterable[ClusterSet]) -> list[IriEntry]:
    """The entries that are in none of the sets, in their original order."""
    used = {iri for cluster in sets for iri in cluster.iris}
    return [entry for entry in entries if entry.iri not in used]


def _group_fields(group: ClusterGroup) -> tuple[str, str, str, str]:
    return (group.model, group.layer, group.regime, group.regulariser)


# ---------------------------------------------------------------------------------------------
# Folder and zip readers
# ---------------------------------------------------------------------------------------------

DEFAULT_MAX_FILES: Final = 20_000
DEFAULT_MAX_TOTAL_BYTES: Final = 512 * 1024 * 1024


def read_folder(
    root: Path,
    *,
    max_files: int = DEFAULT_MAX_FILES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
) -> dict[str, bytes]:
    """Every file under root, by normalised relative path; hidden entries are skipped.

    A symlink pointing outside root is refused (as imaging.load_image_folder refuses it), and
    the file count and total size are checked before anything is read.
    """
    root = Path(root)
    if not root.is_dir():
        raise imaging.ImageImportError(f"{root} is not a folder")
    resolved_root = root.resolve()
    found: list[tuple[str, Path]] = []
    total = 0
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not imaging._is_hidden(d))
        for name in sorted(names):
            if imaging._is_hidden(name):
                continue
            path = Path(directory) / name
            label = path.relative_to(root).as_posix()
            if not path.resolve().is_relative_to(resolved_root):
                raise imaging.ImageImportError(f"{label}: links outside the folder")
            if not path.is_file():
                continue
            found.append((label, path))
            if len(found) > max_files:
                raise imaging.ImageImportError(
                    f"{root} has more than the limit of {max_files} files"
                )
            total += path.stat().st_size
            if total > max_total_bytes:
                raise imaging.ImageImportError(
                    f"{root} holds more than the limit of {max_total_bytes} bytes"
                )
    files: dict[str, bytes] = {}
    for label, path in found:
        key = normalise_path(label)
        if key is None:  # pragma: no cover - os.walk yields relative, ".."-free names
            raise imaging.ImageImportError(f"{label}: unusable path")
        files[key] = path.read_bytes()
    return files


def read_zip(
    source: Path | str | IO[bytes],
    *,
    max_files: int = DEFAULT_MAX_FILES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_member_bytes: int = imaging.DEFAULT_MAX_ZIP_MEMBER_BYTES,
) -> dict[str, bytes]:
    """Every file of a zip, by normalised path, with imaging.load_image_zip's safety rules.

    Refuses zip-slip paths, symbolic links, more than max_files entries, a member declared
    larger than max_member_bytes and more than max_total_bytes declared uncompressed, before
    decompressing anything; members are inflated in chunks, and one that decompresses to more
    than it declared is refused while reading, so what is read never exceeds the declared total.
    """
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise imaging.ImageImportError(f"not a readable zip file ({exc})") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > max_files:
            raise imaging.ImageImportError(
                f"zip has {len(infos)} entries, more than the limit of {max_files}"
            )
        members: list[tuple[str, zipfile.ZipInfo]] = []
        for info in infos:
            name = info.filename.replace("\\", "/")
            if imaging._unsafe_member(name):
                raise imaging.ImageImportError(f"{info.filename}: unsafe path in zip (zip-slip)")
            if info.is_dir():
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise imaging.ImageImportError(f"{info.filename}: symbolic links are not allowed")
            key = normalise_path(name)
            if key is None or any(imaging._is_hidden(part) for part in key.split("/")):
                continue
            imaging.zip_member_size_check(info, max_bytes=max_member_bytes)
            members.append((key, info))
        declared = sum(info.file_size for _, info in members)
        if declared > max_total_bytes:
            raise imaging.ImageImportError(
                f"zip files total {declared} bytes uncompressed, more than the limit of "
                f"{max_total_bytes} (possible zip bomb)"
            )
        files: dict[str, bytes] = {}
        for key, info in members:
            if key in files:
                raise imaging.ImageImportError(f"{info.filename}: appears twice in the zip")
            files[key] = imaging.read_zip_member(archive, info, max_bytes=max_member_bytes)
    return files


def files_normalised(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """A caller's file mapping keyed by normalised paths (unusable paths are dropped)."""
    out: dict[str, bytes] = {}
    for name, data in files.items():
        key = normalise_path(name)
        if key is not None:
            out[key] = data
    return out
