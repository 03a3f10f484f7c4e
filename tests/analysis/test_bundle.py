import csv
import io
import json
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis import bundle, exports, services
from elicitation.models import Stimulus, Study, Trial
from tests.conftest import answer_all_trials, categorical_answer
from tests.iri_fixtures import iri_study_live

pytestmark = pytest.mark.django_db

CATEGORICAL_FILES = [
    "README.md",
    "responses.csv",
    "responses.jsonl",
    "soft-labels.csv",
    "soft-labels.json",
    "soft-labels.index.csv",
    "soft-labels.npy",
    "annotation-soft-labels.json",
]
# Stimulus keys in an order unlike their ids, so "sorted by key" is visible in the files.
KEYS = ["c-first-made", "a-second-made", "b-third-made"]
TOPS = {"c-first-made": "Frog", "a-second-made": "Truck", "b-third-made": "Horse"}


@pytest.fixture
def categorical_study(make_study: Callable[..., Study]) -> Study:
    study = make_study(n_stimuli=3, batch_size=3, repeats=1)
    for stimulus, key in zip(study.stimuli.order_by("id"), KEYS, strict=True):
        Stimulus.objects.filter(id=stimulus.id).update(key=key)
    for pid in ("a", "b"):
        answer_all_trials(
            study, pid, lambda trial: categorical_answer(top_class=TOPS[trial.stimulus.key])
        )
    services.study_aggregate(study=study)
    return study


def _bundle(study: Study, **kwargs: Any) -> zipfile.ZipFile:
    buf = io.BytesIO()
    bundle.bundle_write(study=study, fh=buf, **kwargs)
    return zipfile.ZipFile(io.BytesIO(buf.getvalue()))


def _files(zf: zipfile.ZipFile, study: Study) -> list[str]:
    prefix = f"{study.slug}-dataset/"
    assert all(n.startswith(prefix) for n in zf.namelist())
    return [n.removeprefix(prefix) for n in zf.namelist()]


def _read(zf: zipfile.ZipFile, study: Study, name: str) -> bytes:
    return zf.read(f"{study.slug}-dataset/{name}")


def _streamed(study: Study, what: str, fmt: str) -> bytes:
    chunks = exports.export_stream(study=study, what=what, fmt=fmt)
    return b"".join(c.encode() if isinstance(c, str) else c for c in chunks)


def _csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


def test_categorical_bundle_holds_every_export_under_one_folder(categorical_study: Study) -> None:
    # when
    zf = _bundle(categorical_study)
    # then
    assert _files(zf, categorical_study) == CATEGORICAL_FILES
    assert zf.testzip() is None
    assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
    for name in CATEGORICAL_FILES[1:]:
        member = next(m for m in bundle.bundle_members(study=categorical_study) if m.name == name)
        assert _read(zf, categorical_study, name) == _streamed(
            categorical_study, member.what, member.fmt
        ), name


def test_bundle_csv_headers(categorical_study: Study) -> None:
    # when
    zf = _bundle(categorical_study)
    # then
    classes = categorical_study.classes
    responses = _csv_rows(_read(zf, categorical_study, "responses.csv"))
    labels = _csv_rows(_read(zf, categorical_study, "soft-labels.csv"))
    index = _csv_rows(_read(zf, categorical_study, "soft-labels.index.csv"))
    assert responses[0] == exports.RESPONSE_COLUMNS
    assert len(responses) == 1 + 8  # 2 participants x (3 main + 1 repeat)
    assert labels[0] == ["stimulus", "n_annotations", "n_annotators", "entropy", *classes]
    assert index[0] == ["row", "stimulus", "n_annotations", "n_annotators"]
    assert [r[1] for r in index[1:]] == ["a-second-made", "b-third-made", "c-first-made"]


def test_soft_label_npy_is_n_by_k_float64_in_the_index_order(categorical_study: Study) -> None:
    # when
    zf = _bundle(categorical_study)
    # then
    raw = _read(zf, categorical_study, "soft-labels.npy")
    array = np.load(io.BytesIO(raw))
    index = _csv_rows(_read(zf, categorical_study, "soft-labels.index.csv"))[1:]
    labels = {r[0]: r for r in _csv_rows(_read(zf, categorical_study, "soft-labels.csv"))[1:]}
    assert raw[:8] == b"\x93NUMPY\x01\x00"  # .npy format 1.0, as numpy.save writes it
    assert array.shape == (3, 10)
    assert array.dtype == np.dtype("<f8")
    assert array.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(array.sum(axis=1), 1.0)
    for row, (i, key, n_annotations, n_annotators) in enumerate(index):
        assert int(i) == row
        assert array[row].tolist() == [float(p) for p in labels[key][4:]]
        assert (n_annotations, n_annotators) == (labels[key][1], labels[key][2])
        assert int(np.argmax(array[row])) == categorical_study.classes.index(TOPS[key])
    assert raw == _streamed(categorical_study, "soft-labels", "npy")


def test_readme_sections_counts_and_column_dictionary(
    categorical_study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    monkeypatch.setenv("HMIX_VERSION", "v1.2.3-4-gabc1234")
    categorical_study.max_comprehension_failures = 2
    categorical_study.save(update_fields=["max_comprehension_failures"])
    # when
    zf = _bundle(categorical_study)
    # then
    readme = _read(zf, categorical_study, "README.md").decode()
    sections = re.findall(r"^## (.+)$", readme, re.MULTILINE)
    dictionaries = re.findall(r"^### (.+)$", readme, re.MULTILINE)
    assert readme.startswith(f"# {categorical_study.title}: dataset bundle\n")
    assert sections == bundle.DATASHEET_SECTIONS
    assert dictionaries == ["responses.csv", "soft-labels.csv", "soft-labels.index.csv"]
    for name in dictionaries:
        for column in _csv_rows(_read(zf, categorical_study, name))[0]:
            assert re.search(rf"^\| `{re.escape(column)}` \| \S", readme, re.MULTILINE), column
    assert "(not described" not in readme
    for line in (
        f"| slug | {categorical_study.slug} |",
        "| trial type | categorical (A. Categorical soft label) |",
        "| status | live |",
        "| 0 | Airplane |",
        "| participants per batch | 3 |",
        "| repeat trials per participant | 1 |",
        "| comprehension failures before exclusion | 2 |",
        "| catch rate | 0.0 |",
        "| label method (study default) | clean-top2-clamp |",
        '| label parameters (study default) | {"gamma": 0.1} |',
        "| participants | debrief | 2 |",
        "| responses | main | 6 |",
        "| responses | repeat | 2 |",
        "| responses | all | 8 |",
        "| stimuli | all | 3 |",
        "| batches | all | 1 |",
        "| annotations | used by the method | 8 |",
        "| soft labels | stored under the method | 3 |",
        "| responses.csv | 8 | Every stored response, one row each. |",
        "| soft-labels.npy | 3 | The soft labels as an N x K float64 array, row i = row i of "
        "soft-labels.index.csv (laid out like CIFAR-10H's cifar10h-probs.npy). |",
        "| H-Mix version | v1.2.3-4-gabc1234 |",
        "| version from | HMIX_VERSION, set when the image was built |",
        "| package version | 0.1.0 |",
    ):
        assert line in readme.splitlines(), line
    assert (
        "Soft labels: construction `clean-top2-clamp` (gamma = 0.1, smoothing = 0.0, "
        "include_repeats = True): the CIFAR-10S construction with its quirks fixed" in readme
    )
    assert (
        "the construction in `docs/methods/soft-labels.md#clean-top2-clamp`, label smoothing in "
        "`docs/methods/soft-labels.md#label-smoothing` and the aggregation in "
        "`docs/methods/soft-labels.md#aggregation`" in readme
    )


def test_bundle_under_another_method_exports_that_methods_labels(
    categorical_study: Study,
) -> None:
    # given labels stored under top1 as well
    from analysis.aggregation import Method

    top1 = Method(name="top1")
    services.study_aggregate(study=categorical_study, method=top1)
    # when
    zf = _bundle(categorical_study, method=top1)
    # then
    labels = json.loads(_read(zf, categorical_study, "soft-labels.json"))
    readme = _read(zf, categorical_study, "README.md").decode()
    assert labels["method"] == {
        "name": "top1",
        "gamma": 0.1,
        "smoothing": 0.0,
        "include_repeats": True,
    }
    assert _read(zf, categorical_study, "soft-labels.npy") == b"".join(
        c if isinstance(c, bytes) else c.encode()
        for c in exports.export_stream(
            study=categorical_study, what="soft-labels", fmt="npy", method=top1
        )
    )
    assert "Soft labels: construction `top1`" in readme


def test_a_study_without_labels_gives_an_empty_zero_by_k_array(
    make_study: Callable[..., Study],
) -> None:
    # given no responses at all
    study = make_study(n_stimuli=2)
    # when
    zf = _bundle(study)
    # then
    array = np.load(io.BytesIO(_read(zf, study, "soft-labels.npy")))
    assert array.shape == (0, 10)
    assert _csv_rows(_read(zf, study, "soft-labels.index.csv")) == [
        ["row", "stimulus", "n_annotations", "n_annotators"]
    ]
    assert _csv_rows(_read(zf, study, "responses.csv")) == [exports.RESPONSE_COLUMNS]


# --- interfaces B-F ---------------------------------------------------------------------------


def _walk_to(target: int) -> Callable[[Trial], dict[str, Any]]:
    def answer(trial: Trial) -> dict[str, Any]:
        step, t = trial.display["start_step"], 0
        visits = [{"step": step, "t_ms": 0}]
        while step != target:
            step += 1 if target > step else -1
            t += 100
            visits.append({"step": step, "t_ms": t})
        return {"final_step": target, "visits": visits}

    return answer


def _assign_all(trial: Trial) -> dict[str, Any]:
    d = trial.display
    picks = [
        d["columns"].index(row["column"] if row["kind"] == "catch" else row["index"] // 2)
        for row in d["rows"]
    ]
    return {"assignments": picks}


def _interface_study(trial_type: str, make_study: Callable[..., Study], owner: Any) -> Study:
    if trial_type in (Study.TrialType.IRI_2AFC, Study.TrialType.IRI_CLUSTER):
        study = iri_study_live(
            owner=owner, trial_type=trial_type, slug="iri", n_stimuli=2, repeats=0
        )
        if trial_type == Study.TrialType.IRI_2AFC:
            answer_all_trials(study, "a", lambda _t: {"choice": "left"})
        else:
            answer_all_trials(study, "a", _assign_all)
        return study
    study = make_study(n_stimuli=1, batch_size=1, repeats=1, trial_type=trial_type)
    if trial_type == Study.TrialType.MIXING_FACTOR:
        answer = {"mixing": 40, "confidence": 60, "moved_mixing": True, "moved_confidence": True}
        answer_all_trials(study, "a", lambda _t: answer)
        return study
    study.stimuli.update(kind="series", key="Cat_1_Dog_2", lam=None)
    if trial_type == Study.TrialType.CONSTRUCT_MIDPOINT:
        answer_all_trials(study, "a", _walk_to(5))
    else:
        answer_all_trials(study, "a", lambda _t: {"chosen_position": 3})
    return study


MIXING_DOCS = "docs/methods/interface-analyses.md#mixing-factor"
MIDPOINT_DOCS = "docs/methods/interface-analyses.md#midpoints"
IRI_DOCS = "docs/methods/iri-alignment.md"


@pytest.mark.parametrize(
    ("trial_type", "what", "kinds", "docs"),
    [
        (
            Study.TrialType.MIXING_FACTOR,
            "mixing-factor",
            ["mixing-lambda", "mixing-stimulus"],
            MIXING_DOCS,
        ),
        (
            Study.TrialType.CONSTRUCT_MIDPOINT,
            "midpoints",
            ["midpoint", "midpoint-consistency"],
            MIDPOINT_DOCS,
        ),
        (
            Study.TrialType.SELECT_MIDPOINT,
            "midpoints",
            ["midpoint", "midpoint-consistency"],
            MIDPOINT_DOCS,
        ),
        (Study.TrialType.IRI_2AFC, "iri-alignment", ["iri-alignment"], IRI_DOCS),
        (Study.TrialType.IRI_CLUSTER, "iri-alignment", ["iri-alignment"], IRI_DOCS),
    ],
)
def test_interface_bundles_hold_responses_and_the_analysis(
    trial_type: str,
    what: str,
    kinds: list[str],
    docs: str,
    make_study: Callable[..., Study],
    researcher: Any,
) -> None:
    # given
    study = _interface_study(trial_type, make_study, researcher)
    services.study_analysis_recompute(study=study)
    # when
    zf = _bundle(study)
    # then
    readme = _read(zf, study, "README.md").decode()
    analysis_csv = _csv_rows(_read(zf, study, f"{what}.csv"))
    assert _files(zf, study) == [
        "README.md",
        "responses.csv",
        "responses.jsonl",
        f"{what}.csv",
        f"{what}.json",
    ]
    assert analysis_csv[0][:4] == ["kind", "key", "params", "n"]
    assert sorted({r[0] for r in analysis_csv[1:]}) == kinds
    for column in analysis_csv[0]:
        assert re.search(rf"^\| `{re.escape(column)}` \| \S", readme, re.MULTILINE), column
    assert "(not described" not in readme
    assert re.findall(r"^## (.+)$", readme, re.MULTILINE) == bundle.DATASHEET_SECTIONS
    assert f"defined in H-Mix's documentation, at the version under Provenance: `{docs}`" in readme
    for fmt in ("csv", "json"):
        assert _read(zf, study, f"{what}.{fmt}") == _streamed(study, what, fmt)
    assert _read(zf, study, "responses.jsonl") == _streamed(study, "responses", "jsonl")


# --- streaming --------------------------------------------------------------------------------


class _Unseekable(io.RawIOBase):
    """A write-only pipe: no tell(), no seek()."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data += bytes(b)
        return len(b)


def test_bundle_streams_to_an_unseekable_file(categorical_study: Study) -> None:
    # given
    pipe = _Unseekable()
    # when
    bundle.bundle_write(study=categorical_study, fh=pipe)
    # then
    zf = zipfile.ZipFile(io.BytesIO(bytes(pipe.data)))
    assert _files(zf, categorical_study) == CATEGORICAL_FILES
    assert zf.testzip() is None


def test_write_chunks_buffers_and_reports_every_n_chunks() -> None:
    # given
    out = io.BytesIO()
    reports: list[int] = []
    chunks = ["ab", b"c", *(["d"] * 2498)]
    # when
    n = bundle.write_chunks(chunks, out, on_rows=reports.append, every=1000)
    # then
    assert n == 2500
    assert out.getvalue() == b"abc" + b"d" * 2498
    assert reports == [1000, 1000, 500]


def test_progress_is_told_the_total_then_every_row(categorical_study: Study) -> None:
    # given
    class Recorder:
        def __init__(self) -> None:
            self.total = -1
            self.rows: dict[str, int] = {}

        def start(self, total: int) -> None:
            self.total = total

        def advance(self, rows: int, member: str) -> None:
            self.rows[member] = self.rows.get(member, 0) + rows

    recorder = Recorder()
    # when
    result = bundle.bundle_write(study=categorical_study, fh=io.BytesIO(), progress=recorder)
    # then: one per row plus the header line or the JSON framing
    assert recorder.total == result.total_rows == 8 + 8 + 3 + 3 + 3 + 8
    assert recorder.rows == {
        "responses.csv": 1 + 8,
        "responses.jsonl": 8,
        "soft-labels.csv": 1 + 3,
        "soft-labels.json": 2 + 3 + 1,
        "soft-labels.index.csv": 3,
        "annotation-soft-labels.json": 2 + 8 + 1,
    }


# --- the version the datasheet cites ------------------------------------------------------------


def test_source_version_prefers_the_version_the_image_was_built_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given
    monkeypatch.setenv("HMIX_VERSION", " v2.0.0 ")
    # when
    version = bundle.source_version()
    # then
    assert version == bundle.SourceVersion(
        "v2.0.0", "HMIX_VERSION, set when the image was built", "0.1.0"
    )


def test_source_version_of_a_git_checkout_is_git_describe(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    # given the repository's own checkout, no HMIX_VERSION
    monkeypatch.delenv("HMIX_VERSION", raising=False)
    git = shutil.which("git")
    assert git is not None
    expected = subprocess.run(
        [git, "describe", "--tags", "--always", "--dirty"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # when
    version = bundle.source_version()
    # then
    assert version.version == expected != ""
    assert version.source == "git describe --tags --always --dirty"


def test_source_version_reads_head_without_git_and_falls_back_to_the_package(
    monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path
) -> None:
    # given a checkout on a machine without the git program
    monkeypatch.delenv("HMIX_VERSION", raising=False)
    monkeypatch.setattr(bundle.shutil, "which", lambda _name: None)
    settings.BASE_DIR = tmp_path
    (tmp_path / ".git" / "refs" / "heads").mkdir(parents=True)
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / ".git" / "refs" / "heads" / "main").write_text("0123abcd" * 5 + "\n")
    # when
    from_head = bundle.source_version()
    (tmp_path / ".git" / "HEAD").unlink()
    (tmp_path / ".git" / "refs" / "heads" / "main").unlink()
    without_git = bundle.source_version()
    # then
    assert from_head == bundle.SourceVersion("0123abcd" * 5, "the checkout's .git/HEAD", "0.1.0")
    assert without_git == bundle.SourceVersion(
        "0.1.0", "the package version (no git tag or commit known)", "0.1.0"
    )
