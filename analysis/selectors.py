import io
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby, pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
from django.db import connection
from django.db.models import QuerySet

from analysis import plots, summaries
from analysis.aggregation import Annotation, AnnotationBatch, Method
from analysis.models import AnalysisResult, SoftLabel
from elicitation.models import Participant, Response, Study, Trial


def params_key(method: Method) -> str:
    return json.dumps({"method": method.name, **method.params()}, sort_keys=True)


def study_default_method(*, study: Study) -> Method:
    return Method.from_params(study.label_method, study.label_params)


def stimuli_methods(*, study: Study, stimulus_ids: list[int]) -> dict[int, list[Method]]:
    """For each stimulus: the study's default method plus every method a label of it is stored
    under, in one query."""
    default = study_default_method(study=study)
    methods = {i: {params_key(default): default} for i in stimulus_ids}
    rows = (
        SoftLabel.objects.filter(stimulus_id__in=stimulus_ids)
        .values_list("stimulus_id", "method", "params")
        .distinct()
    )
    for stimulus_id, name, params in rows:
        method = Method.from_params(name, params)
        methods[stimulus_id].setdefault(params_key(method), method)
    return {i: list(m.values()) for i, m in methods.items()}


def annotation_from_response(response: Response) -> Annotation:
    # Only called on categorical responses (see categorical_responses), which always have both.
    assert response.top_class is not None
    assert response.p1_pct is not None
    return Annotation(
        top=response.top_class,
        p1=response.p1_pct,
        second=response.second_class,
        p2=response.p2_pct,
        impossible=frozenset(response.impossible),
    )


def without_withdrawn(qs: QuerySet[Response]) -> QuerySet[Response]:
    """The responses of `qs` whose participant was not withdrawn (privacy_services).

    A NOT IN over a sub-select rather than a join: the binary COPY reader (_chunks_copy) reuses
    the queryset's FROM ... WHERE with unqualified column names, which a join would make
    ambiguous; and the withdrawn are few, so the sub-select is one small hashed set.
    """
    withdrawn = Participant.objects.filter(withdrawn_at__isnull=False).values("id")
    return qs.exclude(participant_id__in=withdrawn)


def categorical_responses(
    *, stimulus_ids: list[int] | None = None, study: Study | None = None
) -> QuerySet[Response]:
    """Categorical responses of main and repeat trials, grouped by stimulus (then by id); the
    answers of withdrawn participants are left out."""
    qs = without_withdrawn(
        Response.objects.filter(
            top_class__isnull=False, kind__in=[Trial.Kind.MAIN, Trial.Kind.REPEAT]
        )
    )
    if stimulus_ids is not None:
        qs = qs.filter(stimulus_id__in=stimulus_ids)
    if study is not None:
        qs = qs.filter(study=study)
    return qs.only(
        "id",
        "stimulus_id",
        "participant_id",
        "kind",
        "top_class",
        "p1_pct",
        "second_class",
        "p2_pct",
        "impossible",
    ).order_by("stimulus_id", "id")


def responses_by_stimulus(
    *, study: Study, chunk_size: int = 2000
) -> Iterator[tuple[int, list[Response]]]:
    """Stream (stimulus_id, responses) for a whole study without loading it all at once."""
    rows = categorical_responses(study=study).iterator(chunk_size=chunk_size)
    for stimulus_id, group in groupby(rows, key=lambda r: r.stimulus_id):
        yield stimulus_id, list(group)


# --- bulk reads for the vectorised aggregation -------------------------------------------------

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class ResponseChunk:
    """Categorical responses of whole stimuli as arrays, sorted by (stimulus id, response id)."""

    stimulus_ids: IntArray
    response_ids: IntArray
    participant_ids: IntArray
    is_repeat: BoolArray
    annotations: AnnotationBatch

    def __len__(self) -> int:
        return int(self.stimulus_ids.shape[0])


def _impossible_mask(value: object, k: int) -> BoolArray:
    """A stored `impossible` JSON list as a length-K mask; out-of-range indices are corrupt
    input and raise the constructions' own message."""
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise ValueError(f"impossible must be a list of class indices, got {value!r}")
    mask = np.zeros(k, dtype=bool)
    for index in value:
        if not 0 <= index < k:
            raise ValueError(f"class index {index} is outside 0..{k - 1}")
        mask[index] = True
    return mask


def _chunk(columns: dict[str, Any], impossible: BoolArray) -> ResponseChunk:
    stimulus_ids = np.asarray(columns["stimulus_id"], dtype=np.int64)
    response_ids = np.asarray(columns["id"], dtype=np.int64)
    # The database returns rows in no particular order; sums over a stimulus are taken in
    # response-id order so that the same stored responses always give bit-identical labels.
    order = np.lexsort((response_ids, stimulus_ids))

    def take(name: str, dtype: npt.DTypeLike) -> Any:
        return np.asarray(columns[name], dtype=dtype)[order]

    return ResponseChunk(
        stimulus_ids=stimulus_ids[order],
        response_ids=response_ids[order],
        participant_ids=take("participant_id", np.int64),
        is_repeat=take("is_repeat", bool),
        annotations=AnnotationBatch.from_arrays(
            top=take("top", np.int64),
            p1=take("p1", np.float64),
            second=take("second", np.int64),
            p2=take("p2", np.float64),
            p2_given=take("p2_given", bool),
            impossible=impossible[order],
        ),
    )


def _filtered(
    study: Study | None, stimulus_ids: Sequence[int] | None, exclude: Collection[int]
) -> QuerySet[Response]:
    qs = categorical_responses(
        study=study, stimulus_ids=None if stimulus_ids is None else list(stimulus_ids)
    )
    if exclude:
        qs = qs.exclude(participant_id__in=list(exclude))
    return qs


def _chunks_orm(qs: QuerySet[Response], k: int, chunk_rows: int) -> Iterator[ResponseChunk]:
    """Portable reader (SQLite, small reads): the ORM's rows, whole stimuli per chunk."""
    names = ["stimulus_id", "id", "participant_id", "is_repeat", "top", "p1", "second", "p2"]
    names.append("p2_given")
    masks: dict[str, BoolArray] = {}
    columns: dict[str, list[Any]] = {name: [] for name in names}
    impossible: list[BoolArray] = []
    rows = qs.values_list(
        "stimulus_id",
        "id",
        "participant_id",
        "kind",
        "top_class",
        "p1_pct",
        "second_class",
        "p2_pct",
        "impossible",
    ).iterator(chunk_size=2000)
    for row in rows:
        stimulus_id, rid, pid, kind, top, p1, second, p2, imp = row
        if len(impossible) >= chunk_rows and stimulus_id != columns["stimulus_id"][-1]:
            yield _chunk(columns, np.array(impossible).reshape(len(impossible), k))
            columns = {name: [] for name in names}
            impossible = []
        values: list[Any] = [stimulus_id, rid, pid, kind == Trial.Kind.REPEAT, top]
        values += [np.nan if p1 is None else p1, -1 if second is None else second]
        values += [np.nan if p2 is None else p2, p2 is not None]
        for name, value in zip(names, values, strict=True):
            columns[name].append(value)
        key = json.dumps(imp)
        if key not in masks:
            masks[key] = _impossible_mask(imp, k)
        impossible.append(masks[key])
    if impossible:
        yield _chunk(columns, np.array(impossible).reshape(len(impossible), k))


# PostgreSQL COPY ... (FORMAT binary) of fixed-width columns only: every NULL is coalesced, so
# every row has the same length and numpy reads a whole chunk with one frombuffer. The
# `impossible` JSON list is the one variable-length value; turning it into a bit mask in SQL
# (jsonb_array_elements per row) tripled the COPY time, so each row carries a 64-bit
# fingerprint of its text (two hashtext values) instead, and the few distinct lists are fetched
# once by the id of a row that has them. A collision needs two different lists in one study
# with the same 64-bit fingerprint (chance about d^2 / 2^65 for d distinct lists).
_COPY_COLUMNS = (
    ("stimulus_id", "stimulus_id::int8", ">i8"),
    ("id", "id::int8", ">i8"),
    ("participant_id", "participant_id::int8", ">i8"),
    ("is_repeat", "kind = %s", "?"),
    ("top", "top_class::int4", ">i4"),
    ("p1", "coalesce(p1_pct, 'NaN')::float8", ">f8"),
    ("second", "coalesce(second_class, -1)::int4", ">i4"),
    ("p2", "coalesce(p2_pct, 'NaN')::float8", ">f8"),
    ("p2_given", "p2_pct IS NOT NULL", "?"),
    ("hash_a", "hashtext(impossible::text)", ">i4"),
    ("hash_b", "hashtext(impossible::text || '|')", ">i4"),
)
_COPY_DTYPE = np.dtype(
    [("n_fields", ">i2")]
    + [item for name, _, code in _COPY_COLUMNS for item in ((f"len_{name}", ">i4"), (name, code))]
)
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _parse_copy(data: memoryview) -> npt.NDArray[Any]:
    if bytes(data[: len(_COPY_SIGNATURE)]) != _COPY_SIGNATURE:
        raise RuntimeError("COPY returned no binary header")
    ext = int.from_bytes(data[15:19], "big")
    body = data[19 + ext : len(data) - 2]  # header, then the int16 -1 trailer
    if len(body) % _COPY_DTYPE.itemsize:
        raise RuntimeError("COPY rows are not fixed-width (a NULL slipped through?)")
    rows = np.frombuffer(body, dtype=_COPY_DTYPE)
    if rows.shape[0] and (
        np.any(rows["n_fields"] != len(_COPY_COLUMNS))
        or any(
            np.any(rows[f"len_{name}"] != np.dtype(code).itemsize)
            for name, _, code in _COPY_COLUMNS
        )
    ):
        raise RuntimeError("COPY rows do not have the expected layout")
    return rows


def _chunks_copy(qs: QuerySet[Response], k: int, chunk_rows: int) -> Iterator[ResponseChunk]:
    table = Response._meta.db_table
    where_sql, where_params = qs.values("id").query.sql_with_params()
    # The queryset's own WHERE clause (study, kinds, exclusions), as a sub-select of ids would
    # cost a join; instead take the filtered rows straight from its FROM ... WHERE.
    base = where_sql[where_sql.index(" FROM ") : where_sql.rindex(" ORDER BY ")]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT stimulus_id, count(*) {base} GROUP BY stimulus_id ORDER BY stimulus_id",
            where_params,
        )
        counts = cursor.fetchall()
        # Chunks of whole stimuli of about chunk_rows responses each: memory stays bounded. The
        # first and last chunks are open-ended, so a stimulus whose first response arrived after
        # this count is still read.
        bounds: list[int | None] = [None]
        total = 0
        for stimulus_id, n in counts:
            # The portable reader's rule: a chunk closes at the first stimulus boundary once it
            # holds chunk_rows rows, so both readers cut the same chunks.
            if total >= chunk_rows:
                bounds.append(stimulus_id)
                total = 0
            total += n
        bounds.append(None)
        select = ", ".join(sql for _, sql, _ in _COPY_COLUMNS)
        masks: dict[int, BoolArray] = {}
        for lo, hi in pairwise(bounds):
            extra = "".join(
                f" AND {table}.stimulus_id {op} {int(bound)}"
                for op, bound in ((">=", lo), ("<", hi))
                if bound is not None
            )
            query = cursor.mogrify(
                f"SELECT {select} {base}{extra}", [Trial.Kind.REPEAT.value, *where_params]
            ).decode()
            buffer = io.BytesIO()
            cursor.copy_expert(f"COPY ({query}) TO STDOUT (FORMAT binary)", buffer)
            rows = _parse_copy(buffer.getbuffer())
            if not rows.shape[0]:
                continue
            fingerprint = (rows["hash_a"].astype(np.int64) << 32) | (
                rows["hash_b"].astype(np.int64) & 0xFFFFFFFF
            )
            distinct, first, inverse = np.unique(
                fingerprint, return_index=True, return_inverse=True
            )
            missing = [i for i, fp in enumerate(distinct.tolist()) if fp not in masks]
            if missing:
                ids = [int(rows["id"][first[i]]) for i in missing]
                by_id = dict(Response.objects.filter(id__in=ids).values_list("id", "impossible"))
                for i, rid in zip(missing, ids, strict=True):
                    masks[int(distinct[i])] = _impossible_mask(by_id[rid], k)
            table_masks = np.array([masks[int(fp)] for fp in distinct]).reshape(len(distinct), k)
            yield _chunk({name: rows[name] for name, _, _ in _COPY_COLUMNS}, table_masks[inverse])


def categorical_response_chunks(
    *,
    k: int,
    study: Study | None = None,
    stimulus_ids: Sequence[int] | None = None,
    exclude_participant_ids: Collection[int] = (),
    chunk_rows: int = 250_000,
    use_copy: bool | None = None,
) -> Iterator[ResponseChunk]:
    """The rows of `categorical_responses` as arrays, in chunks of whole stimuli.

    On PostgreSQL the rows are streamed with binary COPY (`use_copy=None` picks it there);
    elsewhere, or with use_copy=False, through the ORM. A chunk closes at the first stimulus
    boundary once it holds chunk_rows rows, so it exceeds chunk_rows by less than one stimulus.
    """
    qs = _filtered(study, stimulus_ids, exclude_participant_ids)
    if use_copy is None:
        use_copy = connection.vendor == "postgresql"
    yield from (_chunks_copy if use_copy else _chunks_orm)(qs, k, chunk_rows)


def soft_label_list(*, study: Study, method: Method | None = None) -> QuerySet[SoftLabel]:
    method = method or study_default_method(study=study)
    return (
        SoftLabel.objects.filter(study=study, method=method.name, params_key=params_key(method))
        .select_related("stimulus")
        .order_by("stimulus__key")
    )


def interface_responses(*, study: Study) -> QuerySet[Response]:
    """Responses of an interface B–F study with their stimulus, in a stable order (without
    those of withdrawn participants)."""
    return (
        without_withdrawn(Response.objects.filter(study=study))
        .select_related("stimulus")
        .only(
            "id",
            "participant_id",
            "kind",
            "value",
            "stimulus__key",
            "stimulus__lam",
            "stimulus__meta",
        )
        .order_by("id")
    )


def analysis_result_list(*, study: Study, kind: str | None = None) -> QuerySet[AnalysisResult]:
    qs = AnalysisResult.objects.filter(study=study)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("kind", "params_key", "key")


# --- records for the dashboard's plots (read from stored results, never recomputed) ----------

_WITH_REPEATS = json.dumps({"include_repeats": True}, sort_keys=True)


def plot_mixing_levels(*, study: Study) -> list[plots.LambdaLevel]:
    rows = AnalysisResult.objects.filter(
        study=study, kind=AnalysisResult.Kind.MIXING_LAMBDA, params_key=_WITH_REPEATS
    ).order_by("key")
    return [
        plots.LambdaLevel(
            lam_true=r.data.get("lam_true"),
            n=r.n,
            mean_lam_hat=r.data.get("mean_lam_hat"),
            sd_lam_hat=r.data.get("sd_lam_hat"),
            mean_confidence=r.data.get("mean_confidence"),
            sd_confidence=r.data.get("sd_confidence"),
        )
        for r in rows
    ]


def plot_entropy_points(*, study: Study) -> list[plots.EntropyPoint]:
    labels = soft_label_list(study=study).filter(stimulus__lam__isnull=False)
    return [plots.EntropyPoint(lam=lab.stimulus.lam, entropy=lab.entropy) for lab in labels]


def plot_class_pair_matrix(*, study: Study) -> list[list[float]]:
    """Cell (a, b): the mean soft-label mass on class a over mixed images of classes a and b."""
    k = study.n_classes
    index = {name: i for i, name in enumerate(study.classes)}
    sums = [[0.0] * k for _ in range(k)]
    counts = [[0] * k for _ in range(k)]
    for lab in soft_label_list(study=study).filter(stimulus__lam__isnull=False):
        a, b = index.get(lab.stimulus.class1), index.get(lab.stimulus.class2)
        if a is None or b is None:
            continue
        for x, y in ((a, b), (b, a)):
            sums[x][y] += lab.probs[x]
            counts[x][y] += 1
    return [
        [sums[x][y] / counts[x][y] if counts[x][y] else float("nan") for y in range(k)]
        for x in range(k)
    ]


# What a plot calls the midpoint interfaces: the stored keys (summaries.CONSTRUCT, SELECT and
# the pooled ALL) are identifiers, not words a reader of the figure should have to decode.
_INTERFACE_LABELS = {
    summaries.CONSTRUCT: "Construct (C)",
    summaries.SELECT: "Select (D)",
    summaries.ALL: "All interfaces",
}


def _interface_label(interface: str) -> str:
    return _INTERFACE_LABELS.get(interface, interface)


def plot_midpoint_groups(*, study: Study) -> list[plots.HistogramGroup]:
    """One histogram per interface and start step, every class pair pooled."""
    rows = AnalysisResult.objects.filter(
        study=study,
        kind=AnalysisResult.Kind.MIDPOINT,
        params_key=_WITH_REPEATS,
        key__endswith=f"|{summaries.ALL}",
    ).order_by("key")
    groups = []
    for r in rows:
        interface, start, _ = r.key.split("|", 2)
        name = _interface_label(interface)
        label = name if start == "all" else f"{name}, start step {start}"
        # Pooled over start steps first, then the steps in number order (the keys sort "1",
        # "9", "all" as text).
        order = (interface, start != "all", int(start) if start.isdigit() else -1)
        groups.append((order, plots.HistogramGroup(label, tuple(r.data["histogram"]))))
    return [group for _, group in sorted(groups, key=lambda g: g[0])]


def plot_consistency_rows(*, study: Study) -> list[plots.ConsistencyRow]:
    """One bar per interface; the pooled row only when there is more than one interface to
    pool (with one, it repeats that interface's bar under another name)."""
    rows = list(
        AnalysisResult.objects.filter(
            study=study, kind=AnalysisResult.Kind.MIDPOINT_CONSISTENCY
        ).order_by("key")
    )
    if sum(r.key != summaries.ALL for r in rows) < 2:
        rows = [r for r in rows if r.key != summaries.ALL]
    return [
        plots.ConsistencyRow(
            interface=_interface_label(r.key),
            mean_abs_diff=r.data.get("mean_abs_diff"),
            share_identical=r.data.get("share_identical"),
            n_pairs=r.n,
        )
        for r in rows
    ]


def plot_alignment_models(*, study: Study) -> list[plots.ModelAlignment]:
    rows = AnalysisResult.objects.filter(
        study=study, kind=AnalysisResult.Kind.IRI_ALIGNMENT, params__exclude_flagged=False
    ).order_by("key")
    models = []
    for r in rows:
        d = r.data
        low = d.get("boot_low") if d.get("boot_low") is not None else d.get("wilson_low")
        high = d.get("boot_high") if d.get("boot_high") is not None else d.get("wilson_high")
        # The key joins model, layer, regime and regulariser with "|" (an identifier); the axis
        # names the parts that are set, separated by commas.
        parts = [str(v) for v in (d.get("group") or {}).values() if v]
        models.append(
            plots.ModelAlignment(
                label=", ".join(parts) or r.key,
                mean_score=d.get("mean_score"),
                low=low,
                high=high,
                n_annotators=d.get("n_annotators"),
            )
        )
    return models
