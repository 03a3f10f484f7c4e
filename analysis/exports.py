"""Streaming exports: each writer yields text or bytes chunks and never holds the whole study.

The same generators serve `manage.py export` (written to a file) and the REST API
(StreamingHttpResponse), so both give byte-identical files.
"""

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import Max, QuerySet

from analysis import aggregation, selectors
from analysis.aggregation import Method
from analysis.models import AnalysisResult, SoftLabel
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
FORMATS = ("csv", "json", "jsonl", "npy", "npy-index")
CONTENT_TYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "npy": "application/octet-stream",
    "npy-index": "text/csv",
}
CHUNK = 2000


class ExportError(ValueError):
    pass


@dataclass(frozen=True)
class AnnotationRow:
    stimulus_key: str
    participant: str
    kind: str
    response_id: int
    probs: np.ndarray


def _csv_line(values: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def _class_name(study: Study, index: int | None) -> str:
    return "" if index is None else study.classes[index]


def response_record_dict(study: Study, r: Response) -> dict[str, Any]:
    return {
        "id": r.id,
        "participant": str(r.participant.token),
        "platform": r.participant.platform,
        "external_id": r.participant.external_id,
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
        "raw": r.raw,
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


def _responses(study: Study) -> Iterator[dict[str, Any]]:
    qs = (
        Response.objects.filter(study=study)
        .select_related("participant__batch", "stimulus")
        .order_by("id")
    )
    for r in qs.iterator(chunk_size=CHUNK):
        yield response_record_dict(study, r)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else value


def _annotation_qs(study: Study, method: Method, until: int) -> QuerySet[Response]:
    # Bounded by response id, so the .npy header's row count, its rows and a separately
    # requested index describe the same responses even while new answers arrive.
    qs = selectors.categorical_responses(study=study).filter(id__lte=until)
    if not method.include_repeats:
        qs = qs.exclude(kind=Trial.Kind.REPEAT)
    return qs


def _annotation_rows(study: Study, method: Method, until: int) -> Iterator[AnnotationRow]:
    qs = _annotation_qs(study, method, until).select_related("participant", "stimulus")
    k = study.n_classes
    for r in qs.iterator(chunk_size=CHUNK):
        probs = aggregation.construct(selectors.annotation_from_response(r), k, method)
        yield AnnotationRow(r.stimulus.key, str(r.participant.token), r.kind, r.id, probs)


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
    *, study: Study, what: str, fmt: str, method: Method | None = None, until: int | None = None
) -> Iterator[str | bytes]:
    if what not in WHATS:
        raise ExportError(f"Unknown export {what!r}; expected one of {list(WHATS)}.")
    if fmt not in FORMATS:
        raise ExportError(f"Unknown format {fmt!r}; expected one of {list(FORMATS)}.")
    method = method or selectors.study_default_method(study=study)
    if what == "responses":
        if fmt.startswith("npy"):
            raise ExportError("Responses export as csv, json or jsonl, not npy.")
        return _export_responses(study, fmt)
    if what in ANALYSIS_KINDS:
        if fmt.startswith("npy"):
            raise ExportError(f"{what} exports as csv, json or jsonl, not npy.")
        return _export_analysis(study, what, fmt)
    if until is None:
        until = export_until(study=study, what=what)
    if what == "annotation-soft-labels":
        return _export_annotations(study, fmt, method, until)
    return _export_soft_labels(study, fmt, method, until)


def _export_responses(study: Study, fmt: str) -> Iterator[str]:
    if fmt == "csv":
        yield _csv_line(RESPONSE_COLUMNS)
        for row in _responses(study):
            yield _csv_line([_csv_cell(row[c]) for c in RESPONSE_COLUMNS])
    elif fmt == "jsonl":
        for row in _responses(study):
            yield json.dumps(row) + "\n"
    else:
        yield '{"study": ' + json.dumps(study.slug) + ', "classes": ' + json.dumps(study.classes)
        yield ', "responses": ['
        for i, row in enumerate(_responses(study)):
            yield ("," if i else "") + "\n" + json.dumps(row)
        yield "\n]}\n"


def _export_annotations(
    study: Study, fmt: str, method: Method, until: int
) -> Iterator[str | bytes]:
    classes = study.classes
    if fmt == "csv":
        yield _csv_line(["stimulus", "participant", "kind", "response_id", *classes])
        for a in _annotation_rows(study, method, until):
            yield _csv_line(
                [
                    a.stimulus_key,
                    a.participant,
                    a.kind,
                    a.response_id,
                    *(repr(float(p)) for p in a.probs),
                ]
            )
    elif fmt == "jsonl":
        for a in _annotation_rows(study, method, until):
            yield (
                json.dumps(
                    {
                        "stimulus": a.stimulus_key,
                        "participant": a.participant,
                        "kind": a.kind,
                        "response_id": a.response_id,
                        "probs": a.probs.tolist(),
                    }
                )
                + "\n"
            )
    elif fmt == "json":
        # {"classes", "method", "labels": {stimulus_key: [[p, ...], ...]}}; rows arrive grouped
        # by stimulus, so each key is written once.
        yield '{"classes": ' + json.dumps(classes) + ', "method": '
        yield json.dumps(_method_json(method)) + ', "labels": {'
        current: str | None = None
        for a in _annotation_rows(study, method, until):
            if a.stimulus_key != current:
                yield ("]" if current is not None else "") + ("," if current else "")
                yield "\n" + json.dumps(a.stimulus_key) + ": [" + json.dumps(a.probs.tolist())
                current = a.stimulus_key
            else:
                yield ", " + json.dumps(a.probs.tolist())
        yield ("]" if current is not None else "") + "\n}}\n"
    elif fmt == "npy":
        yield _npy_header(_annotation_qs(study, method, until).count(), len(classes))
        for a in _annotation_rows(study, method, until):
            yield a.probs.astype("<f8").tobytes()
    else:
        yield _csv_line(["row", "stimulus", "participant", "kind", "response_id"])
        for i, a in enumerate(_annotation_rows(study, method, until)):
            yield _csv_line([i, a.stimulus_key, a.participant, a.kind, a.response_id])


def _export_soft_labels(
    study: Study, fmt: str, method: Method, until: int
) -> Iterator[str | bytes]:
    classes = study.classes
    labels = selectors.soft_label_list(study=study, method=method).filter(id__lte=until)
    rows = labels.iterator(chunk_size=CHUNK)
    if fmt == "csv":
        yield _csv_line(["stimulus", "n_annotations", "n_annotators", "entropy", *classes])
        for lab in rows:
            yield _csv_line(
                [
                    lab.stimulus.key,
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
            yield _csv_line([i, lab.stimulus.key, lab.n_annotations, lab.n_annotators])


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
        yield _csv_line(columns)
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
