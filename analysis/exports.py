"""Streaming exports: each writer yields text or bytes chunks and never holds the whole study.

The same generators serve `manage.py export` (written to a file), the REST API
(StreamingHttpResponse), export jobs and the dataset bundle, so all give byte-identical files.

On PostgreSQL the responses CSV and JSON Lines (and JSON) are rendered by the database with
COPY, a window of rows at a time (analysis/export_sql.py); the Python writers below stay as the
portable path (SQLite) and as the definition of the format the SQL reproduces.

Privacy: participants are named by their pseudonym (Participant.pseudonym, a keyed hash), never
by their session token (a credential); their platform ids (PROLIFIC_PID, workerId) are written
only when the export is asked for them (`raw_ids`). Withdrawn participants' responses are left
out of every export. Every CSV cell of text that a spreadsheet would run as a formula is
prefixed with a single quote (csv_safe).
"""

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Max, QuerySet

from analysis import aggregation, export_sql, selectors
from analysis.aggregation import Method
from analysis.models import AnalysisResult, SoftLabel
from elicitation import privacy_services
from elicitation.models import Response, Study, Trial

WHATS = (
    "responses",
    "annotation-soft-labels",
    "soft-labels",
    "mixing-factor",
    "midpoints",
    "iri-alignment",
)
# Which stored analysis kinds each analysis export contains.
ANALYSIS_KINDS = {
    "mixing-factor": (AnalysisResult.Kind.MIXING_STIMULUS, AnalysisResult.Kind.MIXING_LAMBDA),
    "midpoints": (AnalysisResult.Kind.MIDPOINT, AnalysisResult.Kind.MIDPOINT_CONSISTENCY),
    "iri-alignment": (AnalysisResult.Kind.IRI_ALIGNMENT,),
}
# The analysis export each interface's results go to; categorical studies (A) have soft labels
# instead (CATEGORICAL_WHATS).
ANALYSIS_WHAT = {
    Study.TrialType.MIXING_FACTOR: "mixing-factor",
    Study.TrialType.CONSTRUCT_MIDPOINT: "midpoints",
    Study.TrialType.SELECT_MIDPOINT: "midpoints",
    Study.TrialType.IRI_2AFC: "iri-alignment",
    Study.TrialType.IRI_CLUSTER: "iri-alignment",
}
CATEGORICAL_WHATS = ("annotation-soft-labels", "soft-labels")
FORMATS = ("csv", "json", "jsonl", "npy", "npy-index")
CONTENT_TYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "npy": "application/octet-stream",
    "npy-index": "text/csv",
}
CHUNK = 2000
# OWASP "CSV Injection": a cell starting with one of these is a formula to Excel, LibreOffice
# and Google Sheets (tab and carriage return because some of them strip those first).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class ExportError(ValueError):
    pass


def study_whats(*, study: Study) -> tuple[str, ...]:
    """The exports that hold something for the study's interface, in WHATS order: the
    responses, and either its soft labels (A) or its analysis results (B to F). The others
    would only ever be empty files."""
    if study.trial_type == Study.TrialType.CATEGORICAL:
        return ("responses", *CATEGORICAL_WHATS)
    return ("responses", ANALYSIS_WHAT[Study.TrialType(study.trial_type)])


@dataclass(frozen=True)
class AnnotationRow:
    stimulus_key: str
    participant: str
    kind: str
    response_id: int
    probs: np.ndarray


def csv_safe(value: Any) -> Any:
    """A text cell that would run as a formula, prefixed with a single quote; anything else (a
    number, including a negative one) as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _csv_line(values: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def _class_name(study: Study, index: int | None) -> str:
    return "" if index is None else study.classes[index]


def _raw(study: Study, r: Response, *, raw_ids: bool) -> Any:
    # An imported row's `subject` is the participant's platform id (export_sql._JSON_COLUMNS);
    # a live row's raw is the browser's answer, which holds no id.
    if export_sql.keeps_raw_subject(study=study, raw_ids=raw_ids) or not isinstance(r.raw, dict):
        return r.raw
    return {k: v for k, v in r.raw.items() if k != "subject"}


def response_record_dict(study: Study, r: Response, *, raw_ids: bool = False) -> dict[str, Any]:
    return {
        "id": r.id,
        "participant": r.participant.pseudonym,
        "platform": r.participant.platform,
        "external_id": r.participant.external_id if raw_ids else None,
        "batch": r.participant.batch.number if r.participant.batch else None,
        "stimulus": r.stimulus.key,
        "kind": r.kind,
        "position": r.position,
        "rt_ms": r.rt_ms,
        "top_class": _class_name(study, r.top_class),
        "p1": r.p1_pct,
        "second_class": _class_name(study, r.second_class) or None,
        "p2": r.p2_pct,
        "impossible": [study.classes[i] for i in r.impossible],
        "class_order": r.display.get("class_order"),
        "value": r.value,
        "raw": _raw(study, r, raw_ids=raw_ids),
        "client_key": str(r.client_key),
        "created_at": r.created_at.isoformat(),
    }


RESPONSE_COLUMNS = [
    "id",
    "participant",
    "platform",
    "external_id",
    "batch",
    "stimulus",
    "kind",
    "position",
    "rt_ms",
    "top_class",
    "p1",
    "second_class",
    "p2",
    "impossible",
    "class_order",
    "value",
    "raw",
    "client_key",
    "created_at",
]


def _responses(
    study: Study, *, until: int, after: int = 0, raw_ids: bool = False
) -> Iterator[dict[str, Any]]:
    qs = (
        Response.objects.filter(
            study=study, id__gt=after, id__lte=until, participant__withdrawn_at__isnull=True
        )
        .select_related("participant__batch", "stimulus")
        .order_by("id")
    )
    for r in qs.iterator(chunk_size=CHUNK):
        yield response_record_dict(study, r, raw_ids=raw_ids)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else csv_safe(value)


def _annotation_qs(study: Study, method: Method, until: int) -> QuerySet[Response]:
    # Bounded by response id, so the .npy header's row count, its rows and a separately
    # requested index describe the same responses even while new answers arrive.
    qs = selectors.categorical_responses(study=study).filter(id__lte=until)
    if not method.include_repeats:
        qs = qs.exclude(kind=Trial.Kind.REPEAT)
    return qs


# What one annotation row needs, read as plain tuples (no model instances).
_ANNOTATION_FIELDS = (
    "stimulus__key",
    "participant__pseudonym",
    "kind",
    "id",
    "top_class",
    "p1_pct",
    "second_class",
    "p2_pct",
    "impossible",
)
# Distinct annotations remembered with their vector: percents are typed whole numbers, so a
# study has few distinct (top, p1, second, p2, impossible) and most rows are a dictionary hit.
# Cleared when full, so memory stays bounded whatever the study.
_CONSTRUCTED_MAX = 50_000


@dataclass(frozen=True)
class _Constructed:
    probs: np.ndarray
    reprs: list[str]  # repr(float(p)) of each probability: the CSV cells
    json: str  # json.dumps(probs.tolist())


def _annotation_batches(
    study: Study, method: Method, until: int
) -> Iterator[list[tuple[AnnotationRow, _Constructed]]]:
    """The annotation rows in CHUNK-row batches, each with its (cached) construction."""
    qs = _annotation_qs(study, method, until).values_list(*_ANNOTATION_FIELDS)
    k = study.n_classes
    cache: dict[tuple[Any, ...], _Constructed] = {}
    batch: list[tuple[AnnotationRow, _Constructed]] = []
    for key, pseudonym, kind, rid, top, p1, second, p2, impossible in qs.iterator(chunk_size=CHUNK):
        ann_key = (top, p1, second, p2, tuple(impossible))
        built = cache.get(ann_key)
        if built is None:
            annotation = aggregation.Annotation(
                top=top, p1=p1, second=second, p2=p2, impossible=frozenset(impossible)
            )
            probs = aggregation.construct(annotation, k, method)
            values = probs.tolist()
            built = _Constructed(probs, [repr(float(p)) for p in values], json.dumps(values))
            if len(cache) >= _CONSTRUCTED_MAX:
                cache.clear()
            cache[ann_key] = built
        batch.append((AnnotationRow(key, pseudonym, kind, rid, built.probs), built))
        if len(batch) >= CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _safe(names: list[str]) -> list[str]:
    return [csv_safe(n) for n in names]


def _csv_lines(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def export_until(*, study: Study, what: str) -> int:
    """The id bound an export of `what` reads up to now: pass it to the .npy export and to its
    index (REST: ?until=...) so both list exactly the same rows."""
    model = SoftLabel if what == "soft-labels" else Response
    return model.objects.filter(study=study).aggregate(m=Max("id"))["m"] or 0


def _method_json(method: Method) -> dict[str, Any]:
    return {"name": method.name, **method.params()}


def _npy_header(n: int, k: int) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (n, k)}
    )
    return buf.getvalue()


def export_stream(
    *,
    study: Study,
    what: str,
    fmt: str,
    method: Method | None = None,
    until: int | None = None,
    raw_ids: bool = False,
) -> Iterator[str | bytes]:
    """The export `what` of the study as `fmt`, in chunks. Participants are named by their
    pseudonym; `raw_ids` adds their platform ids (responses only: no other export has them)."""
    if what not in WHATS:
        raise ExportError(f"Unknown export {what!r}; expected one of {list(WHATS)}.")
    if fmt not in FORMATS:
        raise ExportError(f"Unknown format {fmt!r}; expected one of {list(FORMATS)}.")
    method = method or selectors.study_default_method(study=study)
    if what == "responses":
        if fmt.startswith("npy"):
            raise ExportError("Responses export as csv, json or jsonl, not npy.")
        privacy_services.participant_pseudonyms_fill(study=study)
        return _export_responses(study, fmt, until, raw_ids)
    if what in ANALYSIS_KINDS:
        if fmt.startswith("npy"):
            raise ExportError(f"{what} exports as csv, json or jsonl, not npy.")
        return _export_analysis(study, what, fmt)
    if until is None:
        until = export_until(study=study, what=what)
    if what == "annotation-soft-labels":
        privacy_services.participant_pseudonyms_fill(study=study)
        return _export_annotations(study, fmt, method, until)
    return _export_soft_labels(study, fmt, method, until)


def uses_copy() -> bool:
    """Whether the database renders the responses exports (PostgreSQL's COPY)."""
    return connection.vendor == "postgresql"


def _export_responses(
    study: Study, fmt: str, until: int | None, raw_ids: bool
) -> Iterator[str | bytes]:
    # Responses are bounded by id like the label exports (now, unless told): every window of
    # the database path, and a live study's new answers, stop at the same row.
    if until is None:
        until = export_until(study=study, what="responses")
    if uses_copy():
        return _responses_copy(study, fmt, until, raw_ids)
    return responses_python(study=study, fmt=fmt, until=until, raw_ids=raw_ids)


def _response_csv_rows(study: Study, until: int, after: int = 0, *, raw_ids: bool) -> Iterator[str]:
    for row in _responses(study, until=until, after=after, raw_ids=raw_ids):
        yield _csv_line([_csv_cell(row[c]) for c in RESPONSE_COLUMNS])


def _response_json_rows(
    study: Study, until: int, after: int = 0, *, raw_ids: bool
) -> Iterator[str]:
    for row in _responses(study, until=until, after=after, raw_ids=raw_ids):
        yield json.dumps(row) + "\n"


def _json_preamble(study: Study) -> str:
    return (
        '{"study": '
        + json.dumps(study.slug)
        + ', "classes": '
        + json.dumps(study.classes)
        + ', "responses": ['
    )


def responses_python(*, study: Study, fmt: str, until: int, raw_ids: bool = False) -> Iterator[str]:
    """The portable writer (SQLite), and the reference the database path reproduces."""
    if fmt == "csv":
        yield _csv_line(RESPONSE_COLUMNS)
        yield from _response_csv_rows(study, until, raw_ids=raw_ids)
    elif fmt == "jsonl":
        yield from _response_json_rows(study, until, raw_ids=raw_ids)
    else:
        yield _json_preamble(study)
        for i, row in enumerate(_responses(study, until=until, raw_ids=raw_ids)):
            yield ("," if i else "") + "\n" + json.dumps(row)
        yield "\n]}\n"


def _responses_copy(study: Study, fmt: str, until: int, raw_ids: bool) -> Iterator[str | bytes]:
    params = {"study": study.id, **export_sql.class_params(study, raw_ids=raw_ids)}
    # The class-name cells of the CSV, neutralised once here rather than on every row in SQL.
    params["classes"] = [csv_safe(c) for c in params["classes"]]
    windows = export_sql.response_windows(study=study, until=until)
    if fmt == "csv":
        yield _csv_line(RESPONSE_COLUMNS)
        yield from export_sql.copy_windows(
            sql=export_sql.responses_csv_sql(),
            params=params,
            windows=windows,
            python_rows=lambda lo, hi: _response_csv_rows(study, hi, lo, raw_ids=raw_ids),
        )
        return
    lines = export_sql.copy_windows(
        sql=export_sql.responses_jsonl_sql(),
        params=params,
        windows=windows,
        python_rows=lambda lo, hi: _response_json_rows(study, hi, lo, raw_ids=raw_ids),
    )
    if fmt == "jsonl":
        yield from lines
        return
    # JSON: the same lines, separated by ",\n" inside one list (a line holds no raw newline).
    yield _json_preamble(study)
    first = True
    for chunk in lines:
        body = chunk[:-1].replace(b"\n", b",\n")
        yield export_sql.Chunk((b"\n" if first else b",\n") + body, chunk.rows)
        first = False
    yield "\n]}\n"


def _export_annotations(
    study: Study, fmt: str, method: Method, until: int
) -> Iterator[str | bytes]:
    classes = study.classes
    batches = _annotation_batches(study, method, until)
    if fmt == "csv":
        yield _csv_line(["stimulus", "participant", "kind", "response_id", *_safe(classes)])
        for batch in batches:
            lines = _csv_lines(
                [
                    [csv_safe(a.stimulus_key), a.participant, a.kind, a.response_id, *c.reprs]
                    for a, c in batch
                ]
            )
            yield export_sql.Chunk(lines.encode(), len(batch))
    elif fmt == "jsonl":
        for batch in batches:
            lines = "".join(
                '{"stimulus": '
                + json.dumps(a.stimulus_key)
                + ', "participant": '
                + json.dumps(a.participant)
                + ', "kind": '
                + json.dumps(a.kind)
                + ', "response_id": '
                + json.dumps(a.response_id)
                + ', "probs": '
                + c.json
                + "}\n"
                for a, c in batch
            )
            yield export_sql.Chunk(lines.encode(), len(batch))
    elif fmt == "json":
        # {"classes", "method", "labels": {stimulus_key: [[p, ...], ...]}}; rows arrive grouped
        # by stimulus, so each key is written once.
        yield '{"classes": ' + json.dumps(classes) + ', "method": '
        yield json.dumps(_method_json(method)) + ', "labels": {'
        current: str | None = None
        for batch in batches:
            parts = []
            for a, c in batch:
                if a.stimulus_key != current:
                    # `is not None`: a stimulus keyed "" used to lose its comma (invalid JSON).
                    parts.append("]," if current is not None else "")
                    parts.append("\n" + json.dumps(a.stimulus_key) + ": [" + c.json)
                    current = a.stimulus_key
                else:
                    parts.append(", " + c.json)
            yield export_sql.Chunk("".join(parts).encode(), len(batch))
        yield ("]" if current is not None else "") + "\n}}\n"
    elif fmt == "npy":
        yield _npy_header(_annotation_qs(study, method, until).count(), len(classes))
        if uses_copy():
            yield from _annotation_npy_blocks(study, method, until)
            return
        for batch in batches:
            block = np.stack([c.probs for _, c in batch]).astype("<f8", copy=False)
            yield export_sql.Chunk(block.tobytes(), len(batch))
    else:
        yield _csv_line(["row", "stimulus", "participant", "kind", "response_id"])
        row = 0
        for batch in batches:
            lines = _csv_lines(
                [
                    [row + i, csv_safe(a.stimulus_key), a.participant, a.kind, a.response_id]
                    for i, (a, _) in enumerate(batch)
                ]
            )
            row += len(batch)
            yield export_sql.Chunk(lines.encode(), len(batch))


NPY_CHUNK = 50_000


def _annotation_npy_blocks(study: Study, method: Method, until: int) -> Iterator[export_sql.Chunk]:
    """PostgreSQL: the array rows read by binary COPY and constructed on whole arrays, in the
    order of `_annotation_qs` (stimulus, then response id), so they match the index file."""
    k = study.n_classes
    # Chunks of about 50,000 rows: the constructions make a few N x K temporaries, so the peak
    # memory of an export stays that of a 50,000-row study whatever the study's size.
    for chunk in selectors.categorical_response_chunks(k=k, study=study, chunk_rows=NPY_CHUNK):
        keep = chunk.response_ids <= until
        if not method.include_repeats:
            keep &= ~chunk.is_repeat
        a = chunk.annotations
        batch = aggregation.AnnotationBatch.from_arrays(
            top=a.top[keep],
            p1=a.p1[keep],
            second=a.second[keep],
            p2=a.p2[keep],
            p2_given=a.p2_given[keep],
            impossible=a.impossible[keep],
        )
        block = aggregation.construct_batch(batch, k, method).astype("<f8", copy=False)
        yield export_sql.Chunk(block.tobytes(), int(np.count_nonzero(keep)))


def _export_soft_labels(
    study: Study, fmt: str, method: Method, until: int
) -> Iterator[str | bytes]:
    classes = study.classes
    labels = selectors.soft_label_list(study=study, method=method).filter(id__lte=until)
    rows = labels.iterator(chunk_size=CHUNK)
    if fmt == "csv":
        yield _csv_line(["stimulus", "n_annotations", "n_annotators", "entropy", *_safe(classes)])
        for lab in rows:
            yield _csv_line(
                [
                    csv_safe(lab.stimulus.key),
                    lab.n_annotations,
                    lab.n_annotators,
                    repr(lab.entropy),
                    *(repr(float(p)) for p in lab.probs),
                ]
            )
    elif fmt == "jsonl":
        for lab in rows:
            yield (
                json.dumps(
                    {
                        "stimulus": lab.stimulus.key,
                        "probs": lab.probs,
                        "n_annotations": lab.n_annotations,
                        "n_annotators": lab.n_annotators,
                        "entropy": lab.entropy,
                    }
                )
                + "\n"
            )
    elif fmt == "json":
        yield '{"classes": ' + json.dumps(classes) + ', "method": '
        yield json.dumps(_method_json(method)) + ', "labels": {'
        for i, lab in enumerate(rows):
            body = {
                "probs": lab.probs,
                "n_annotations": lab.n_annotations,
                "n_annotators": lab.n_annotators,
            }
            yield ("," if i else "") + "\n" + json.dumps(lab.stimulus.key) + ": " + json.dumps(body)
        yield "\n}}\n"
    elif fmt == "npy":
        yield _npy_header(labels.count(), len(classes))
        for lab in rows:
            yield np.asarray(lab.probs, dtype="<f8").tobytes()
    else:
        yield _csv_line(["row", "stimulus", "n_annotations", "n_annotators"])
        for i, lab in enumerate(rows):
            yield _csv_line([i, csv_safe(lab.stimulus.key), lab.n_annotations, lab.n_annotators])


def _analysis_rows(study: Study, what: str) -> list[dict[str, Any]]:
    # Analysis results are one row per stimulus or group: small enough to hold, which lets the
    # CSV header be the union of every row's fields.
    rows = AnalysisResult.objects.filter(study=study, kind__in=ANALYSIS_KINDS[what]).order_by(
        "kind", "params_key", "key"
    )
    return [{"kind": r.kind, "key": r.key, "params": r.params, "n": r.n, **r.data} for r in rows]


def _export_analysis(study: Study, what: str, fmt: str) -> Iterator[str]:
    rows = _analysis_rows(study, what)
    if fmt == "csv":
        columns = ["kind", "key", "params", "n"]
        for row in rows:
            columns += [c for c in row if c not in columns]
        yield _csv_line(_safe(columns))
        for row in rows:
            yield _csv_line([_csv_cell(row.get(c)) for c in columns])
    elif fmt == "jsonl":
        for row in rows:
            yield json.dumps(row) + "\n"
    else:
        yield (
            json.dumps(
                {"study": study.slug, "trial_type": study.trial_type, "results": rows}, indent=1
            )
            + "\n"
        )
