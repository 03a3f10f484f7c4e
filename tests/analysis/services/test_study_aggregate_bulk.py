# The bulk path (COPY reader + vectorised constructions + COPY upsert) against the slow
# per-annotation reference kept in the tests, on real PostgreSQL rows with awkward shapes.
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command

from analysis import selectors, services
from analysis.aggregation import CONSTRUCTIONS, Method
from analysis.models import SoftLabel
from elicitation.models import Response, Study, Trial
from tests.analysis import reference_aggregation as reference
from tests.conftest import answer_all_trials, categorical_answer

pytestmark = pytest.mark.django_db

LEGACY = ("cifar10s-top2-clamp", "hmix-2023")
ANSWERS = [
    categorical_answer(),
    categorical_answer(top_class="Dog", p1=100, second_class=None, p2=None, impossible=[]),
    categorical_answer(top_class="Ship", p1=92.3, second_class="Truck", p2=7.7, impossible=[]),
    categorical_answer(top_class="Cat", p1=30, second_class="Dog", p2=10, impossible=["Bird"]),
    # Stored with a top class at 0 % below (the live answer checks refuse one).
    categorical_answer(top_class="Frog", p1=40, second_class=None, p2=None, impossible=["Cat"]),
]


def _study(make_study: Callable[..., Study], *, legacy_rows: bool) -> Study:
    study = make_study(n_stimuli=3, batch_size=3, repeats=1, participants_per_batch=4)
    for n in range(4):
        answer_all_trials(study, f"p{n}", lambda t, n=n: ANSWERS[(n + t.position) % len(ANSWERS)])
    Response.objects.filter(study=study, p1_pct=40.0).update(p1_pct=0.0)
    ids = list(Response.objects.filter(study=study).order_by("id").values_list("id", flat=True))
    # Awkward rows the database allows: no second class and no p2; a p2 without a second class;
    # the top and second class both ticked impossible (legacy Q2: negative k).
    Response.objects.filter(id=ids[0]).update(second_class=None, p2_pct=None, impossible=[])
    Response.objects.filter(id=ids[1]).update(second_class=None, p2_pct=30.0)
    Response.objects.filter(id=ids[2]).update(
        top_class=3, second_class=5, impossible=[0, 1, 3, 4, 5, 6, 7, 8, 9]
    )
    if legacy_rows:
        # Imported rows: typed percents above 100, and s == t (quirk Q1).
        Response.objects.filter(id=ids[3]).update(source="imported", p1_pct=150.0, p2_pct=120.0)
        Response.objects.filter(id=ids[4]).update(top_class=2, second_class=2, p2_pct=25.0)
    return study


def _reference_labels(
    study: Study, method: Method, excluded: frozenset[int] = frozenset()
) -> dict[int, tuple[list[float], int, int]]:
    labels = {}
    by_stimulus = selectors.responses_by_stimulus(study=study)
    for stimulus_id, group in by_stimulus:
        rows = [r for r in group if r.participant_id not in excluded]
        vectors = [
            reference.construct(
                selectors.annotation_from_response(r),
                study.n_classes,
                method.name,
                method.gamma,
                method.smoothing,
            )
            for r in rows
        ]
        label = reference.aggregate(
            vectors,
            [r.participant_id for r in rows],
            [r.kind == Trial.Kind.REPEAT for r in rows],
            include_repeats=method.include_repeats,
        )
        if label is not None:
            labels[stimulus_id] = label
    return labels


def _stored(study: Study, method: Method) -> dict[int, tuple[list[float], int, int]]:
    rows = SoftLabel.objects.filter(
        study=study, method=method.name, params_key=selectors.params_key(method)
    )
    return {r.stimulus_id: (r.probs, r.n_annotations, r.n_annotators) for r in rows}


def _assert_same(stored: dict[int, Any], expected: dict[int, Any]) -> None:
    assert sorted(stored) == sorted(expected)
    for stimulus_id, (mean, n_annotations, n_annotators) in expected.items():
        probs, n, a = stored[stimulus_id]
        np.testing.assert_allclose(probs, mean, rtol=0, atol=1e-12)
        assert (n, a) == (n_annotations, n_annotators)


@pytest.mark.parametrize("name", list(CONSTRUCTIONS))
@pytest.mark.parametrize(
    "params",
    [{}, {"gamma": 0.3, "smoothing": 0.05}, {"include_repeats": False}],
    ids=["default", "gamma-smoothing", "no-repeats"],
)
def test_study_aggregate_equals_per_annotation_reference(
    make_study: Callable[..., Study], name: str, params: dict[str, Any]
) -> None:
    # given a study with awkward rows (p > 100 and s == t only where the construction takes them)
    study = _study(make_study, legacy_rows=name in LEGACY)
    method = Method.from_params(name, params)
    # when
    n = services.study_aggregate(study=study, method=method)
    # then every label equals the slow per-annotation reference
    expected = _reference_labels(study, method)
    assert n == len(expected) == 3
    _assert_same(_stored(study, method), expected)


def test_study_aggregate_computes_several_methods_from_one_read(
    make_study: Callable[..., Study], django_assert_max_num_queries: Any
) -> None:
    # given
    study = _study(make_study, legacy_rows=False)
    methods = [Method(name=name) for name in CONSTRUCTIONS]
    excluded = frozenset(
        Response.objects.filter(study=study, participant__external_id="p0").values_list(
            "participant_id", flat=True
        )
    )
    # when: counts, one COPY, the impossible lists, the temp table load and upsert, the stale
    # check of each method, the transaction's savepoint
    with django_assert_max_num_queries(16):
        n = services.study_aggregate(study=study, methods=methods, exclude_participant_ids=excluded)
    # then
    assert n == 3 * len(methods)
    for method in methods:
        _assert_same(_stored(study, method), _reference_labels(study, method, excluded))


def test_study_aggregate_removes_labels_of_stimuli_left_without_responses(
    make_study: Callable[..., Study],
) -> None:
    # given labels of every stimulus, then one stimulus's responses all become catch trials
    study = _study(make_study, legacy_rows=False)
    method = Method(name="top1")
    services.study_aggregate(study=study, method=method)
    gone = study.stimuli.order_by("id").first()
    Response.objects.filter(stimulus=gone).update(kind=Trial.Kind.CATCH)
    # when
    n = services.study_aggregate(study=study, method=method)
    # then
    assert n == 2
    assert sorted(_stored(study, method)) == sorted(
        study.stimuli.exclude(id=gone.id).values_list("id", flat=True)
    )


def test_study_aggregate_rerun_changes_nothing(make_study: Callable[..., Study]) -> None:
    # given
    study = _study(make_study, legacy_rows=False)
    services.study_aggregate(study=study)
    before = list(SoftLabel.objects.order_by("id").values())
    # when
    services.study_aggregate(study=study)
    # then the same rows, not even updated_at touched
    assert list(SoftLabel.objects.order_by("id").values()) == before


def test_study_aggregate_bad_row_raises_and_writes_nothing(
    make_study: Callable[..., Study],
) -> None:
    # given an imported p1 of 150 %, which the clean construction refuses
    study = _study(make_study, legacy_rows=True)
    # when / then
    with pytest.raises(ValueError, match=r"p1 must be at most 100, got 150\.0"):
        services.study_aggregate(study=study, method=Method(name="clean-top2-clamp"))
    assert SoftLabel.objects.exists() is False


def test_aggregate_command_takes_several_methods(make_study: Callable[..., Study]) -> None:
    # given
    study = _study(make_study, legacy_rows=False)
    # when
    call_command("aggregate", study=study.slug, method="top1,simselect2")
    call_command("aggregate", study=study.slug, method="all", exclude_repeats=True)
    # then
    counts = {
        (m, repeats): SoftLabel.objects.filter(method=m, params__include_repeats=repeats).count()
        for m in CONSTRUCTIONS
        for repeats in (True, False)
    }
    assert {key: n for key, n in counts.items() if n} == {
        **{("top1", True): 3, ("simselect2", True): 3},
        **{(m, False): 3 for m in CONSTRUCTIONS},
    }
