import dataclasses
import io
import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import numpy as np
from django.db import connection, transaction

from analysis import aggregation, scoring, selectors, summaries
from analysis.aggregation import Method
from analysis.models import AnalysisResult, SoftLabel
from elicitation import lock_objects
from elicitation import selectors as elicitation_selectors
from elicitation.models import Response, Stimulus, Study, Trial


@dataclasses.dataclass(frozen=True)
class _MethodLabels:
    """One chunk's labels under one method."""

    method: Method
    params_key: str
    labels: aggregation.GroupedLabels
    entropies: np.ndarray

    def soft_labels(self, study: Study) -> list[SoftLabel]:
        params = self.method.params()
        return [
            SoftLabel(
                study=study,
                stimulus_id=stimulus_id,
                method=self.method.name,
                params=params,
                params_key=self.params_key,
                probs=probs,
                n_annotations=n_annotations,
                n_annotators=n_annotators,
                entropy=entropy,
            )
            for stimulus_id, probs, n_annotations, n_annotators, entropy in zip(
                self.labels.group_ids.tolist(),
                self.labels.probs.tolist(),
                self.labels.n_annotations.tolist(),
                self.labels.n_annotators.tolist(),
                self.entropies.tolist(),
                strict=True,
            )
        ]


def _label_rows(
    study: Study, chunk: selectors.ResponseChunk, methods: Sequence[Method]
) -> list[_MethodLabels]:
    """The labels of every stimulus of the chunk under each method."""
    k = study.n_classes
    vectors: dict[tuple[str, float, float], np.ndarray] = {}
    groups: dict[bool, aggregation.Groups] = {}
    out = []
    for method in methods:
        # include_repeats only changes the mean: the constructed vectors are shared, and the
        # grouping is shared by every method with the same include_repeats.
        key = (method.name, method.gamma, method.smoothing)
        if key not in vectors:
            vectors[key] = aggregation.construct_batch(chunk.annotations, k, method)
        if method.include_repeats not in groups:
            groups[method.include_repeats] = aggregation.Groups.build(
                chunk.stimulus_ids,
                chunk.participant_ids,
                chunk.is_repeat,
                include_repeats=method.include_repeats,
            )
        labels = groups[method.include_repeats].labels(vectors[key])
        entropies = aggregation.entropy_rows(labels.probs)
        out.append(_MethodLabels(method, selectors.params_key(method), labels, entropies))
    return out


_UPDATED = ["params", "probs", "n_annotations", "n_annotators", "entropy", "updated_at"]


def _upsert(rows: Sequence[SoftLabel], *, chunk: int) -> int:
    # INSERT ... ON CONFLICT DO UPDATE: concurrent or repeated recomputes of the same label
    # converge on the same row instead of racing between a SELECT and an INSERT.
    for start in range(0, len(rows), chunk):
        SoftLabel.objects.bulk_create(
            rows[start : start + chunk],
            update_conflicts=True,
            unique_fields=["stimulus", "method", "params_key"],
            update_fields=_UPDATED,
        )
    return len(rows)


def _upsert_copy(study: Study, batches: Sequence[_MethodLabels]) -> int:
    """PostgreSQL: the same upsert as `_upsert`, fed by COPY into a temporary table.

    bulk_create spent about 60 µs of Python per label building and rendering model instances,
    more than the whole computation. A label whose values did not change is left alone (its
    updated_at too), so re-aggregating unchanged responses writes nothing.
    """
    table = SoftLabel._meta.db_table
    buffer = io.StringIO()
    for batch in batches:
        head = f"{batch.method.name}\t{json.dumps(batch.method.params())}\t{batch.params_key}\t"
        for stimulus_id, probs, n_annotations, n_annotators, entropy in zip(
            batch.labels.group_ids.tolist(),
            batch.labels.probs.tolist(),
            batch.labels.n_annotations.tolist(),
            batch.labels.n_annotators.tolist(),
            batch.entropies.tolist(),
            strict=True,
        ):
            # JSON writes floats with repr, as json.dumps would (shortest round-trip form).
            buffer.write(
                f"{stimulus_id}\t{head}[{', '.join(map(repr, probs))}]\t"
                f"{n_annotations}\t{n_annotators}\t{entropy!r}\n"
            )
    n = sum(len(b.labels.group_ids) for b in batches)
    if not n:
        return 0
    buffer.seek(0)
    columns = "stimulus_id, method, params, params_key, probs, n_annotations, n_annotators, entropy"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS soft_label_load (stimulus_id bigint, "
            "method varchar(64), params jsonb, params_key varchar(255), probs jsonb, "
            "n_annotations integer, n_annotators integer, entropy double precision) "
            "ON COMMIT DROP"
        )
        cursor.execute("TRUNCATE soft_label_load")
        cursor.copy_expert(f"COPY soft_label_load ({columns}) FROM STDIN", buffer)
        updated = ", ".join(
            f"{c} = EXCLUDED.{c}"
            for c in ("params", "probs", "n_annotations", "n_annotators", "entropy", "updated_at")
        )
        changed = ", ".join(f"{table}.{c}" for c in _UPDATED[:-1])
        incoming = ", ".join(f"EXCLUDED.{c}" for c in _UPDATED[:-1])
        # Only the table and column names are interpolated, all of them constants of this module.
        cursor.execute(
            f"INSERT INTO {table} (created_at, updated_at, study_id, {columns}) "  # noqa: S608
            f"SELECT now(), now(), %s, {columns} FROM soft_label_load "
            f"ON CONFLICT (stimulus_id, method, params_key) DO UPDATE SET {updated} "
            f"WHERE ({changed}) IS DISTINCT FROM ({incoming})",
            [study.id],
        )
    return n


def _unique_methods(methods: Iterable[Method]) -> list[Method]:
    return list({selectors.params_key(m): m for m in methods}.values())


@transaction.atomic
def soft_label_recompute(*, stimulus: Stimulus, method: Method | None = None) -> list[SoftLabel]:
    """Recompute the stimulus's stored labels from all its stored responses.

    Without `method`, every method already stored for the stimulus is refreshed, plus the study's
    default. Idempotent: the same responses always give the same rows.
    """
    if method is None:
        return soft_labels_refresh(study=stimulus.study, stimulus_ids=[stimulus.id])
    lock_objects.stimulus_qs_select_for_update(stimulus_id=stimulus.id).first()
    return _labels_refresh(stimulus.study, [stimulus.id], [method])


@transaction.atomic
def soft_labels_refresh(*, study: Study, stimulus_ids: Sequence[int]) -> list[SoftLabel]:
    """Recompute the stored labels of several stimuli of one study from their responses, under
    every method each one has (plus the study's default), with one read of the responses.

    The stimulus rows are locked first (in id order), so concurrent refreshes of a stimulus run
    one after the other and the last one reads every committed response. Idempotent.
    """
    ids = sorted(set(stimulus_ids))
    list(lock_objects.stimuli_qs_select_for_update(stimulus_ids=ids))
    by_methods: dict[tuple[str, ...], tuple[list[Method], list[int]]] = {}
    for stimulus_id, methods in selectors.stimuli_methods(study=study, stimulus_ids=ids).items():
        key = tuple(sorted(selectors.params_key(m) for m in methods))
        by_methods.setdefault(key, (methods, []))[1].append(stimulus_id)
    rows: list[SoftLabel] = []
    for methods, group in by_methods.values():
        rows += _labels_refresh(study, group, methods)
    return rows


def _labels_refresh(study: Study, ids: list[int], methods: Sequence[Method]) -> list[SoftLabel]:
    # A few stimuli: the ORM reader is cheaper than planning a COPY.
    chunks = selectors.categorical_response_chunks(
        k=study.n_classes, stimulus_ids=ids, use_copy=False
    )
    rows: list[SoftLabel] = []
    answered: set[int] = set()
    for chunk in chunks:
        answered.update(chunk.stimulus_ids.tolist())
        for labels in _label_rows(study, chunk, _unique_methods(methods)):
            rows += labels.soft_labels(study)
    unanswered = sorted(set(ids) - answered)
    if unanswered:
        SoftLabel.objects.filter(stimulus_id__in=unanswered).delete()
    if rows:
        _upsert(rows, chunk=len(rows))
    return rows


@transaction.atomic
def study_aggregate(
    *,
    study: Study,
    method: Method | None = None,
    methods: Sequence[Method] = (),
    chunk: int = 2000,
    exclude_participant_ids: Collection[int] = (),
) -> int:
    """(Re)compute every stimulus label of the study under one or more methods. Returns how many.

    `method` and `methods` together name the methods (default: the study's). All of them are
    computed from one read of the responses, streamed in chunks of whole stimuli, so memory
    stays bounded; labels are upserted `chunk` rows at a time. Labels of stimuli that no longer
    have responses under a method are removed. Responses of `exclude_participant_ids` are left
    out (docs/methods/soft-labels.md#aggregation), so a stimulus answered only by
    them loses its label under these methods.
    """
    wanted = _unique_methods([*([method] if method else []), *methods]) or [
        selectors.study_default_method(study=study)
    ]
    seen: dict[str, set[int]] = {selectors.params_key(m): set() for m in wanted}
    count = 0
    fast = connection.vendor == "postgresql"
    for responses in selectors.categorical_response_chunks(
        k=study.n_classes, study=study, exclude_participant_ids=exclude_participant_ids
    ):
        batches = _label_rows(study, responses, wanted)
        for batch in batches:
            seen[batch.params_key].update(batch.labels.group_ids.tolist())
        if fast:
            count += _upsert_copy(study, batches)
        else:
            count += sum(_upsert(b.soft_labels(study), chunk=chunk) for b in batches)
    for m in wanted:
        params_key = selectors.params_key(m)
        labelled = SoftLabel.objects.filter(study=study, method=m.name, params_key=params_key)
        stale = set(labelled.values_list("stimulus_id", flat=True)) - seen[params_key]
        if stale:
            labelled.filter(stimulus_id__in=sorted(stale)).delete()
    return count


# --- interfaces B–F ------------------------------------------------------------------------

N_BOOT = 2000  # bootstrap replicates for the IRI intervals (fixed seed: results are reproducible)


def _jsonable(value: Any) -> Any:
    """Dataclass fields as JSON: tuples become lists, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _result(
    study: Study, kind: str, key: str, params: dict[str, Any], n: int, data: Any
) -> AnalysisResult:
    return AnalysisResult(
        study=study,
        kind=kind,
        key=key[:255],
        params=params,
        params_key=json.dumps(params, sort_keys=True),
        n=n,
        data=_jsonable(
            dataclasses.asdict(data)
            if dataclasses.is_dataclass(data) and not isinstance(data, type)
            else data
        ),
    )


def _mixing_results(study: Study, responses: list[Response]) -> list[AnalysisResult]:
    answers = [
        summaries.MixingAnswer(
            stimulus=r.stimulus.key,
            annotator=str(r.participant_id),
            lam_true=float(r.stimulus.lam if r.stimulus.lam is not None else 0.0),
            lam_hat=float(r.value["lam_hat"]),
            confidence=float(r.value["confidence"]),
            is_repeat=r.kind == Trial.Kind.REPEAT,
        )
        for r in responses
        if r.stimulus.lam is not None
    ]
    rows = []
    for include in (True, False):
        params = {"include_repeats": include}
        for s in summaries.mixing_by_stimulus(answers, include_repeats=include):
            data = {**dataclasses.asdict(s), "human_relabel": summaries.human_relabel(s)}
            rows.append(
                _result(study, AnalysisResult.Kind.MIXING_STIMULUS, s.stimulus, params, s.n, data)
            )
        for level in summaries.mixing_by_lambda(answers, include_repeats=include):
            rows.append(
                _result(
                    study,
                    AnalysisResult.Kind.MIXING_LAMBDA,
                    repr(level.lam_true),
                    params,
                    level.n,
                    level,
                )
            )
    return rows


def _midpoint_results(study: Study, responses: list[Response]) -> list[AnalysisResult]:
    construct = study.trial_type == Study.TrialType.CONSTRUCT_MIDPOINT
    answers = [
        summaries.MidpointAnswer(
            pair=r.stimulus.key,
            annotator=str(r.participant_id),
            interface="construct" if construct else "select",
            start_step=int(r.value["start_step"]) if construct else None,
            chosen_step=int(r.value["final_step"] if construct else r.value["chosen_step"]),
            is_repeat=r.kind == Trial.Kind.REPEAT,
        )
        for r in responses
    ]
    rows = []
    for include in (True, False):
        params = {"include_repeats": include}
        for m in summaries.midpoint_summaries(answers, include_repeats=include):
            start = "all" if m.start_step is None else str(m.start_step)
            rows.append(
                _result(
                    study,
                    AnalysisResult.Kind.MIDPOINT,
                    f"{m.interface}|{start}|{m.pair}",
                    params,
                    m.n,
                    m,
                )
            )
    for c in summaries.midpoint_consistency(answers):
        rows.append(
            _result(study, AnalysisResult.Kind.MIDPOINT_CONSISTENCY, c.interface, {}, c.n_pairs, c)
        )
    return rows


def _iri_group(stimulus: Stimulus) -> tuple[str, ...]:
    meta = stimulus.meta
    return tuple(str(meta.get(k, "")) for k in ("model", "layer", "regime", "regulariser"))


def _iri_results(study: Study, responses: list[Response]) -> list[AnalysisResult]:
    """Alignment per (model, layer, regime, regulariser), with and without the participants
    whose catch-trial accuracy is below the study's threshold
    (docs/methods/iri-alignment.md#catch-trials)."""
    cluster = study.trial_type == Study.TrialType.IRI_CLUSTER
    judgments: list[scoring.IriJudgment] = []
    catches: dict[str, list[bool]] = {}
    for r in responses:
        annotator = str(r.participant_id)
        group = _iri_group(r.stimulus)
        if cluster:
            for row in r.value["rows"]:
                if row["catch"]:
                    catches.setdefault(annotator, []).append(bool(row["correct"]))
                else:
                    item = f"{r.stimulus.key}#{row['row']['index']}"
                    judgments.append(
                        scoring.IriJudgment(item, annotator, bool(row["correct"]), group)
                    )
        elif r.kind == Trial.Kind.CATCH:
            catches.setdefault(annotator, []).append(bool(r.value["catch_passed"]))
        else:
            judgments.append(
                scoring.IriJudgment(r.stimulus.key, annotator, bool(r.value["correct"]), group)
            )
    threshold = float(elicitation_selectors.study_settings(study=study)["catch_threshold"])
    flagged = {a for a, f in scoring.catch_flags(catches, threshold=threshold).items() if f}
    chance = scoring.CLUSTERING_CHANCE if cluster else None
    rows = []
    for exclude in (False, True):
        params = {"exclude_flagged": exclude, "catch_threshold": threshold}
        used = [j for j in judgments if not (exclude and j.annotator in flagged)]
        if not used:
            continue
        by_group = scoring.summarise_by_group(used, chance=chance, n_boot=N_BOOT, seed=0)
        ranking = scoring.rank_models({"|".join(g): s.mean_score for g, s in by_group.items()})
        for group, summary in by_group.items():
            key = "|".join(group)
            per_annotator = scoring.annotator_scores(j for j in used if j.group == group)
            data = {
                **dataclasses.asdict(summary),
                "group": dict(zip(("model", "layer", "regime", "regulariser"), group, strict=True)),
                "annotator_scores": per_annotator,
                "rank": ranking.index(key) + 1,
                "flagged_participants": sorted(flagged),
            }
            rows.append(
                _result(
                    study, AnalysisResult.Kind.IRI_ALIGNMENT, key, params, summary.n_judgments, data
                )
            )
    return rows


@transaction.atomic
def study_analysis_recompute(*, study: Study) -> int:
    """Recompute every interface analysis of the study from its stored responses.

    The study row is locked so concurrent recomputes run one after the other; the last one
    reads every committed response. Old rows are replaced, so running it twice changes nothing.
    Returns the number of result rows.
    """
    lock_objects.study_qs_select_for_update_no_key(study_id=study.id).first()
    responses = list(selectors.interface_responses(study=study))
    ttype = study.trial_type
    if ttype == Study.TrialType.MIXING_FACTOR:
        rows = _mixing_results(study, responses)
    elif ttype in (Study.TrialType.CONSTRUCT_MIDPOINT, Study.TrialType.SELECT_MIDPOINT):
        rows = _midpoint_results(study, responses)
    elif ttype in (Study.TrialType.IRI_2AFC, Study.TrialType.IRI_CLUSTER):
        rows = _iri_results(study, responses)
    else:
        rows = []
    AnalysisResult.objects.filter(study=study).delete()
    AnalysisResult.objects.bulk_create(rows)
    return len(rows)
