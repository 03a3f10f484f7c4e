# analysis.selectors.categorical_response_chunks: the PostgreSQL COPY reader and the portable
# ORM reader give the same arrays, whole stimuli per chunk, awkward stored rows included.
from collections.abc import Callable

import numpy as np
import pytest

from analysis import selectors
from elicitation.models import Response, Study, Trial
from tests.conftest import answer_all_trials, categorical_answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def awkward(make_study: Callable[..., Study]) -> tuple[Study, list[int]]:
    study = make_study(n_stimuli=4, batch_size=4, repeats=1, participants_per_batch=3)
    for n in range(3):
        answer_all_trials(study, f"p{n}", lambda _t: categorical_answer())
    ids = list(Response.objects.filter(study=study).order_by("id").values_list("id", flat=True))
    Response.objects.filter(id=ids[0]).update(second_class=None, p2_pct=None, impossible=[])
    Response.objects.filter(id=ids[1]).update(second_class=None, p2_pct=30.0)  # p2, no second
    Response.objects.filter(id=ids[2]).update(source="imported", p1_pct=150.0, p2_pct=101.5)
    Response.objects.filter(id=ids[3]).update(impossible=[9, 0, 9])  # unsorted, repeated
    return study, ids


def _chunks(study: Study, *, use_copy: bool, **kwargs: object) -> list[selectors.ResponseChunk]:
    return list(
        selectors.categorical_response_chunks(
            k=study.n_classes, study=study, use_copy=use_copy, **kwargs
        )
    )


def _concat(chunks: list[selectors.ResponseChunk], name: str) -> np.ndarray:
    parts = [
        getattr(c.annotations, name) if hasattr(c.annotations, name) else getattr(c, name)
        for c in chunks
    ]
    return np.concatenate(parts)


FIELDS = ["stimulus_ids", "response_ids", "participant_ids", "is_repeat", "top", "p1", "second"]
FIELDS += ["p2", "p2_given", "impossible"]


def test_copy_reader_returns_every_row_as_stored(awkward: tuple[Study, list[int]]) -> None:
    # given
    study, ids = awkward
    stored = list(selectors.categorical_responses(study=study))
    # when
    [chunk] = _chunks(study, use_copy=True)
    # then rows in (stimulus, id) order, with the stored values
    assert chunk.response_ids.tolist() == [r.id for r in stored]
    assert chunk.stimulus_ids.tolist() == [r.stimulus_id for r in stored]
    assert chunk.participant_ids.tolist() == [r.participant_id for r in stored]
    assert chunk.is_repeat.tolist() == [r.kind == Trial.Kind.REPEAT for r in stored]
    b = chunk.annotations
    row = {rid: i for i, rid in enumerate(chunk.response_ids.tolist())}
    first, p2_only, imported, unsorted = (row[i] for i in ids[:4])
    assert (b.second[first], np.isnan(b.p2[first]), b.p2_given[first]) == (-1, True, False)
    assert b.impossible[first].tolist() == [False] * 10
    assert (b.second[p2_only], b.p2[p2_only], b.p2_given[p2_only]) == (-1, 30.0, True)
    assert not b.has_second[p2_only]
    assert (b.p1[imported], b.p2[imported]) == (150.0, 101.5)
    assert np.flatnonzero(b.impossible[unsorted]).tolist() == [0, 9]
    other = row[ids[4]]
    assert (b.top[other], b.p1[other], b.second[other], b.p2[other]) == (3, 60.0, 5, 20.0)
    assert np.flatnonzero(b.impossible[other]).tolist() == [0, 8]  # Airplane, Ship


def test_copy_and_orm_readers_agree_chunk_by_chunk(awkward: tuple[Study, list[int]]) -> None:
    # given
    study, _ = awkward
    excluded = [Response.objects.filter(study=study).first().participant_id]
    # when
    copied = _chunks(study, use_copy=True, chunk_rows=5, exclude_participant_ids=excluded)
    portable = _chunks(study, use_copy=False, chunk_rows=5, exclude_participant_ids=excluded)
    # then
    assert [len(c) for c in copied] == [len(c) for c in portable]
    for name in FIELDS:
        np.testing.assert_array_equal(_concat(copied, name), _concat(portable, name))
    assert excluded[0] not in _concat(copied, "participant_ids").tolist()


@pytest.mark.parametrize("use_copy", [True, False])
def test_chunks_hold_whole_stimuli(awkward: tuple[Study, list[int]], use_copy: bool) -> None:
    # given rows of 4 stimuli, 3 participants (one repeat each), chunks of about 4 rows
    study, _ = awkward
    # when
    chunks = _chunks(study, use_copy=use_copy, chunk_rows=4)
    # then no stimulus is split between chunks, and every row is read once
    per_chunk = [set(c.stimulus_ids.tolist()) for c in chunks]
    assert len(chunks) > 1
    assert sum(len(s) for s in per_chunk) == len(set().union(*per_chunk)) == 4
    assert sorted(_concat(chunks, "response_ids").tolist()) == sorted(
        selectors.categorical_responses(study=study).values_list("id", flat=True)
    )


@pytest.mark.parametrize("use_copy", [True, False])
def test_out_of_range_impossible_class_is_refused(
    awkward: tuple[Study, list[int]], use_copy: bool
) -> None:
    # given a stored impossible index outside the 10 classes
    study, ids = awkward
    Response.objects.filter(id=ids[5]).update(impossible=[3, 12])
    # when / then
    with pytest.raises(ValueError, match=r"class index 12 is outside 0\.\.9"):
        _chunks(study, use_copy=use_copy)


@pytest.mark.parametrize("use_copy", [True, False])
def test_study_without_responses_has_no_chunks(
    make_study: Callable[..., Study], use_copy: bool
) -> None:
    # given / when / then
    assert _chunks(make_study(), use_copy=use_copy) == []
