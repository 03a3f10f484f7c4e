from collections.abc import Iterable, Sequence

import numpy as np
from django.db import transaction

from analysis import aggregation, selectors
from analysis.aggregation import Method
from analysis.models import SoftLabel
from elicitation import lock_objects
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
def study_aggregate(*, study: Study, method: Method | None = None, chunk: int = 500) -> int:
    """(Re)compute every stimulus label of the study under one method. Returns how many.

    Streams responses grouped by stimulus and upserts in chunks, so memory stays bounded.
    Labels of stimuli that no longer have responses under this method are removed.
    """
    method = method or selectors.study_default_method(study=study)
    seen: list[int] = []
    pending: list[SoftLabel] = []
    count = 0
    for stimulus_id, responses in selectors.responses_by_stimulus(study=study):
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


def study_analysis_recompute(*, study: Study) -> int:
    """Placeholder until the interface analyses land (see analysis.summaries / scoring)."""
    return 0
