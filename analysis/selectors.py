import json
from collections.abc import Iterator
from itertools import groupby

from django.db.models import QuerySet

from analysis import plots
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


def plot_midpoint_groups(*, study: Study) -> list[plots.HistogramGroup]:
    rows = AnalysisResult.objects.filter(
        study=study,
        kind=AnalysisResult.Kind.MIDPOINT,
        params_key=_WITH_REPEATS,
        key__endswith="|__all__",
    ).order_by("key")
    groups = []
    for r in rows:
        interface, start, _ = r.key.split("|", 2)
        label = interface if start == "all" else f"{interface}, start {start}"
        groups.append(plots.HistogramGroup(label=label, histogram=tuple(r.data["histogram"])))
    return groups


def plot_consistency_rows(*, study: Study) -> list[plots.ConsistencyRow]:
    rows = AnalysisResult.objects.filter(
        study=study, kind=AnalysisResult.Kind.MIDPOINT_CONSISTENCY
    ).order_by("key")
    return [
        plots.ConsistencyRow(
            interface=r.key,
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
        models.append(
            plots.ModelAlignment(
                label=r.key,
                mean_score=d.get("mean_score"),
                low=low,
                high=high,
                n_annotators=d.get("n_annotators"),
            )
        )
    return models
