import json
from collections.abc import Iterator
from itertools import groupby

from django.db.models import QuerySet

from analysis.aggregation import Annotation, Method
from analysis.models import AnalysisResult, SoftLabel
from elicitation.models import Response, Stimulus, Study, Trial


def params_key(method: Method) -> str:
    return json.dumps({"method": method.name, **method.params()}, sort_keys=True)


def study_default_method(*, study: Study) -> Method:
    return Method.from_params(study.label_method, study.label_params)


def stimulus_methods(*, stimulus: Stimulus) -> list[Method]:
    """The study's default method plus every method a label of this stimulus was stored under."""
    methods = {params_key(m): m for m in [study_default_method(study=stimulus.study)]}
    for name, params in (
        SoftLabel.objects.filter(stimulus=stimulus).values_list("method", "params").distinct()
    ):
        method = Method.from_params(name, params)
        methods.setdefault(params_key(method), method)
    return list(methods.values())


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


def categorical_responses(
    *, stimulus_ids: list[int] | None = None, study: Study | None = None
) -> QuerySet[Response]:
    """Categorical responses of main and repeat trials, grouped by stimulus (then by id)."""
    qs = Response.objects.filter(
        top_class__isnull=False, kind__in=[Trial.Kind.MAIN, Trial.Kind.REPEAT]
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


def soft_label_list(*, study: Study, method: Method | None = None) -> QuerySet[SoftLabel]:
    method = method or study_default_method(study=study)
    return (
        SoftLabel.objects.filter(study=study, method=method.name, params_key=params_key(method))
        .select_related("stimulus")
        .order_by("stimulus__key")
    )


def interface_responses(*, study: Study) -> QuerySet[Response]:
    """Responses of an interface B–F study with their stimulus, in a stable order."""
    return (
        Response.objects.filter(study=study)
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
