"""The database-rendered exports (analysis/export_sql.py) give the Python writers' bytes."""

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import JSONField, Value
from django.urls import reverse

from analysis import aggregation, export_sql, exports, selectors
from elicitation.models import Participant, Response, Stimulus, Study
from tests.conftest import answer_all_trials, categorical_answer, token_client

pytestmark = pytest.mark.django_db

AWKWARD_CLASSES = [
    "Air,plane",
    'Auto"mobile',
    "Bird",
    "Cat",
    "Deer é",
    "Dog",
    "Frog\nfrog",
    "Horse",
    "Ship 🚢",
    "",
]
# Raw answers PostgreSQL prints differently from Python's json.dumps: separators inside
# strings, non-ASCII (one above U+FFFF), control characters, DEL, nulls, nesting, floats.
AWKWARD_RAW: list[Any] = [
    {"a, b": "x: y, z", "n": None, "t": True, "f": False, "nested": {"k": [1, 2.5, "ü"]}},
    {"emoji": "🙂", "ctl": "tab\there\x01", "del": "\x7f", "q": 'say "hi"\\'},
    ["list", 0.1, 1e-05, 1.5e16, 123456789012345.67, -0.0, 33.333333333333336],
    "a plain string, with a comma",
    "carriage\rreturn",
    "",
    42,
    2.5,
    True,
    None,
    {},
    [],
]
# jsonb texts no Python writer produces, put in by SQL: trailing zeros, tiny, long numbers.
ODD_JSONB = [
    '{"x": 1.50, "y": 0.00001, "z": 0.12345678901234567890}',
    "[10000000000000000.0, 0.0000, 1.0]",
]


def _bytes(chunks: Any) -> bytes:
    return b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)


@pytest.fixture
def awkward_study(make_study: Callable[..., Study]) -> Study:
    study = make_study(n_stimuli=5, batch_size=5, repeats=1)
    for pid in ("p1", "p2"):
        answer_all_trials(study, pid, lambda _trial: categorical_answer(), rt_ms=7)
    Study.objects.filter(id=study.id).update(classes=AWKWARD_CLASSES)
    Participant.objects.filter(study=study, external_id="p1").update(external_id='P,"1"\r\nx é')
    Participant.objects.filter(study=study, external_id="p2").update(external_id="")
    for i, stimulus in enumerate(Stimulus.objects.filter(study=study).order_by("id")):
        Stimulus.objects.filter(id=stimulus.id).update(
            key=["a,b.png", "c\rd.png", "é.png", "", 'q"uote.png'][i]
        )
    responses = list(Response.objects.filter(study=study).order_by("id"))
    for i, r in enumerate(responses):
        raw = AWKWARD_RAW[i % len(AWKWARD_RAW)]
        # Django writes None as SQL NULL; JSON null is a Value of the JSONField.
        json_raw = Value(None, JSONField()) if raw is None else raw
        Response.objects.filter(id=r.id).update(
            raw=json_raw,
            value={"lam_hat": 0.1 * i, "text": "ü, : x"} if i % 2 else json_raw,
            display={"class_order": raw} if i % 3 == 0 else ({} if i % 3 == 1 else r.display),
            # imported rows may hold any percent (the legacy free-text inputs)
            source=Response.Source.IMPORTED,
            p1_pct=[60.0, 33.333333333333336, 1e-05, 1234567890123456.8, 1e16][i % 5],
            p2_pct=None if i % 2 else 0.1,
            second_class=None if i % 2 else 9,
            impossible=[[], [0], [1, 4], [6, 8, 9], [0, 1, 2, 3, 4]][i % 5],
        )
    with connection.cursor() as cursor:
        for r, text in zip(responses[1:], ODD_JSONB, strict=False):
            cursor.execute(
                "UPDATE elicitation_response SET raw = %s::jsonb, value = %s::jsonb WHERE id = %s",
                [text, text, r.id],
            )
        # A whole second: isoformat() then leaves the fraction out.
        cursor.execute(
            "UPDATE elicitation_response SET created_at = date_trunc('second', created_at) "
            "WHERE id = %s",
            [responses[0].id],
        )
    study.refresh_from_db()
    return study


@pytest.mark.parametrize("raw_ids", [False, True])
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_database_export_is_byte_identical_to_the_python_writer(
    awkward_study: Study, fmt: str, raw_ids: bool
) -> None:
    # given
    until = exports.export_until(study=awkward_study, what="responses")
    assert exports.uses_copy()
    # when
    copied = _bytes(
        exports.export_stream(study=awkward_study, what="responses", fmt=fmt, raw_ids=raw_ids)
    )
    python = _bytes(
        exports.responses_python(study=awkward_study, fmt=fmt, until=until, raw_ids=raw_ids)
    )
    # then
    assert copied == python
    n = Response.objects.filter(study=awkward_study).count()
    assert n == 12
    if fmt == "jsonl":
        assert [json.loads(line)["id"] for line in copied.splitlines()] == list(
            Response.objects.filter(study=awkward_study).order_by("id").values_list("id", flat=True)
        )


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_windows_of_a_few_rows_give_the_same_file(
    awkward_study: Study, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    whole = _bytes(exports.export_stream(study=awkward_study, what="responses", fmt=fmt))
    monkeypatch.setattr(export_sql, "WINDOW", 5)
    # when
    windowed = list(exports.export_stream(study=awkward_study, what="responses", fmt=fmt))
    # then
    assert _bytes(windowed) == whole
    chunks = [c for c in windowed if isinstance(c, export_sql.Chunk)]
    assert [c.rows for c in chunks] == [5, 5, 2]


def test_a_window_holding_a_carriage_return_is_written_by_python(awkward_study: Study) -> None:
    # given a window whose only CR is in a field Python leaves unquoted and COPY would quote
    until = exports.export_until(study=awkward_study, what="responses")
    # when
    body = _bytes(exports.export_stream(study=awkward_study, what="responses", fmt="csv"))
    # then
    assert b"\r" in body
    assert body == _bytes(exports.responses_python(study=awkward_study, fmt="csv", until=until))


def test_until_bounds_the_responses(awkward_study: Study) -> None:
    # given
    ids = list(
        Response.objects.filter(study=awkward_study).order_by("id").values_list("id", flat=True)
    )
    # when
    body = _bytes(
        exports.export_stream(study=awkward_study, what="responses", fmt="jsonl", until=ids[2])
    )
    # then
    assert [json.loads(line)["id"] for line in body.splitlines()] == ids[:3]
    assert body == _bytes(exports.responses_python(study=awkward_study, fmt="jsonl", until=ids[2]))


def test_rest_stream_equals_the_commands_file(awkward_study: Study, tmp_path: Path) -> None:
    # given
    out = tmp_path / "responses.csv"
    call_command("export", study=awkward_study.slug, what="responses", format="csv", out=out)
    # when
    res = token_client(awkward_study.owner).get(
        reverse("api:export", kwargs={"slug": awkward_study.slug}),
        {"what": "responses", "format": "csv"},
    )
    # then
    assert res.status_code == 200
    assert res["X-HMix-Until"] == str(exports.export_until(study=awkward_study, what="responses"))
    assert b"".join(res.streaming_content) == out.read_bytes()


def test_the_portable_writer_serves_other_databases(
    awkward_study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a database without COPY (SQLite, `make demo`)
    until = exports.export_until(study=awkward_study, what="responses")
    monkeypatch.setattr(exports, "uses_copy", lambda: False)
    # when
    body = _bytes(exports.export_stream(study=awkward_study, what="responses", fmt="csv"))
    # then
    assert body == _bytes(exports.responses_python(study=awkward_study, fmt="csv", until=until))
    assert body.startswith(b"id,participant,platform,external_id,batch,stimulus,kind,")
    assert body.count(b"\n") > 12


def test_floats_print_as_python_repr() -> None:
    # given doubles across every decade PostgreSQL and Python format differently
    rng = random.Random(7)
    values = [rng.uniform(-1, 1) * 10.0 ** rng.randint(-30, 30) for _ in range(20_000)]
    values += [0.0, -0.0, 1.0, 60.0, 1e15, 1e16, 9999999999999998.0, 1e-4, 1e-5, 0.1 + 0.2]
    values += [float("nan"), float("inf"), float("-inf"), 5e-324, 1.7976931348623157e308]
    # when
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {export_sql.pyfloat('x')} FROM (SELECT t::float8 AS x, i "  # noqa: S608 (constant SQL fragments; values are parameters)
            "FROM unnest(%s::text[]) WITH ORDINALITY AS v(t, i)) v ORDER BY i",
            [[repr(v) for v in values]],
        )
        printed = [row[0] for row in cursor.fetchall()]
    # then: Python's repr, or, from 1e16 to 1e20, the carriage return that hands the window to
    # the Python writer
    expected = ["\r" if 1e16 <= abs(v) < 1e20 else repr(v) for v in values]
    assert printed == expected
    assert 0 < expected.count("\r") < 2000


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "npy", "npy-index"])
def test_annotation_exports_hold_each_rows_construction(awkward_study: Study, fmt: str) -> None:
    # given the row-by-row construction the batched writer replaced
    Study.objects.filter(id=awkward_study.id).update(classes=[f"c{i}" for i in range(10)])
    awkward_study.refresh_from_db()
    answers = Response.objects.filter(study=awkward_study)
    answers.update(p1_pct=60.0, p2_pct=20.0, second_class=5, impossible=[0, 8])
    answers.filter(id__in=answers.order_by("id").values("id")[:3]).update(
        p1_pct=33.5, second_class=None, p2_pct=None, impossible=[]
    )
    method = selectors.study_default_method(study=awkward_study)
    qs = selectors.categorical_responses(study=awkward_study).select_related(
        "participant", "stimulus"
    )
    rows = [
        (r, aggregation.construct(selectors.annotation_from_response(r), 10, method)) for r in qs
    ]
    # when
    body = _bytes(
        exports.export_stream(study=awkward_study, what="annotation-soft-labels", fmt=fmt)
    )
    # then
    assert len(rows) == 12
    if fmt == "npy":
        assert body[128:] == np.stack([p for _, p in rows]).astype("<f8").tobytes()
    elif fmt == "csv":
        expected = exports._csv_line(
            ["stimulus", "participant", "kind", "response_id", *awkward_study.classes]
        ) + "".join(
            exports._csv_line(
                [r.stimulus.key, r.participant.pseudonym, r.kind, r.id]
                + [repr(float(p)) for p in probs]
            )
            for r, probs in rows
        )
        assert body == expected.encode()
    elif fmt == "jsonl":
        expected = "".join(
            json.dumps(
                {
                    "stimulus": r.stimulus.key,
                    "participant": r.participant.pseudonym,
                    "kind": r.kind,
                    "response_id": r.id,
                    "probs": probs.tolist(),
                }
            )
            + "\n"
            for r, probs in rows
        )
        assert body == expected.encode()
    elif fmt == "json":
        data = json.loads(body)
        assert sum(len(v) for v in data["labels"].values()) == 12
    else:
        assert body.count(b"\n") == 13
