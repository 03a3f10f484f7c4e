import dataclasses
import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import numpy as np
from django.db import transaction

from analysis import aggregation, scoring, selectors, summaries
from analysis.aggregation import Method
from analysis.models import AnalysisResult, SoftLabel
from elicitation import lock_objects
from elicitation import selectors as elicitation_selectors
from elicitation.models import Response, Stimulus, Study, Trial


def _label_for(
    responses: Sequence[Response], study: Study, method: Method
) -> aggregation.AggregatedLabel:
    annotations = [selectors.annotation_from_response(r) for r in responses]
    vectors = aggregation.construct_many(annotations, study.n_classes, method)
    return aggregation.aggregate(
        vectors,
        [r.participant_id for r in responses],
        [r.kind == Trial.Kind.REPEAT for r in responses],
        include_repeats=method.include_repeats,
    )


def _soft_label_row(
    stimulus_id: int, study: Study, method: Method, label: aggregation.AggregatedLabel
) -> SoftLabel:
    probs = np.asarray(label.probs, dtype=float)
    return SoftLabel(
        study=study,
        stimulus_id=stimulus_id,
        method=method.name,
        params=method.params(),
        params_key=selectors.params_key(method),
        probs=[float(p) for p in probs],
        n_annotations=label.n_annotations,
        n_annotators=label.n_annotators,
        entropy=aggregation.entropy(probs),
    )


def _upsert(rows: Iterable[SoftLabel]) -> int:
    # One INSERT ... ON CONFLICT DO UPDATE: concurrent or repeated recomputes of the same label
    # converge on the same row instead of racing between a SELECT and an INSERT.
    rows = list(rows)
    SoftLabel.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["stimulus", "method", "params_key"],
        update_fields=["params", "probs", "n_annotations", "n_annotators", "entropy", "updated_at"],
    )
    return len(rows)


@transaction.atomic
def soft_label_recompute(*, stimulus: Stimulus, method: Method | None = None) -> list[SoftLabel]:
    """Recompute the stimulus's stored labels from all its stored responses.

    Without `method`, every method already stored for the stimulus is refreshed, plus the study's
    default. Idempotent: the same responses always give the same rows.
    """
    lock_objects.stimulus_qs_select_for_update(stimulus_id=stimulus.id).first()
    study = stimulus.study
    methods = [method] if method else selectors.stimulus_methods(stimulus=stimulus)
    responses = list(selectors.categorical_responses(stimulus_ids=[stimulus.id]))
    if not responses:
        SoftLabel.objects.filter(stimulus=stimulus).delete()
        return []
    rows = []
    for m in methods:
        label = _label_for(responses, study, m)
        if label.n_annotations:
            rows.append(_soft_label_row(stimulus.id, study, m, label))
    _upsert(rows)
    return rows


@transaction.atomic
def study_aggregate(
    *,
    study: Study,
    method: Method | None = None,
    chunk: int = 500,
    exclude_participant_ids: Collection[int] = (),
) -> int:
    """(Re)compute every stimulus label of the study under one method. Returns how many.

    Streams responses grouped by stimulus and upserts in chunks, so memory stays bounded.
    Labels of stimuli that no longer have responses under this method are removed. Responses
    of `exclude_participant_ids` are left out (soft-labels.md "Aggregation": excluded
    participants), so a stimulus answered only by them loses its label under this method.
    """
    method = method or selectors.study_default_method(study=study)
    excluded = frozenset(exclude_participant_ids)
    seen: list[int] = []
    pending: list[SoftLabel] = []
    count = 0
    for stimulus_id, group in selectors.responses_by_stimulus(study=study):
        responses = [r for r in group if r.participant_id not in excluded]
        if not responses:
            continue
        label = _label_for(responses, study, method)
        if not label.n_annotations:
            continue
        pending.append(_soft_label_row(stimulus_id, study, method, label))
        seen.append(stimulus_id)
        if len(pending) >= chunk:
            count += _upsert(pending)
            pending = []
    count += _upsert(pending)
    SoftLabel.objects.filter(
        study=study, method=method.name, params_key=selectors.params_key(method)
    ).exclude(stimulus_id__in=seen).delete()
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
    whose catch-trial accuracy is below the study's threshold (analysis.md)."""
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
