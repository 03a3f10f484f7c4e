import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from elicitation import imaging, iri_manifest
from elicitation.models import Stimulus, StimulusImage, Study
from elicitation.stimulus_services import iri_files_load, iri_import
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

HEADER = "iri,target,start,model,layer,regime,regulariser,seed"


def _pixels(seed: int, size: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def _png(seed: int, size: int = 4) -> bytes:
    return imaging.encode_png(_pixels(seed, size))


def _csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _frame_pixels(frame: StimulusImage) -> np.ndarray:
    with frame.image.open("rb") as fh:
        return imaging.decode_image(fh.read())


def _frames(stimulus: Stimulus) -> list[tuple[str, int, dict[str, Any]]]:
    return [(f.role, f.index, f.meta) for f in stimulus.frames.order_by("role", "index")]


def _study(trial_type: str, researcher: Any) -> Study:
    return StudyFactory(owner=researcher, trial_type=trial_type, classes=[])


# 2AFC fixtures: two IRIs of two targets, one from noise and one from another image.
AFC_FILES = {
    "iris/a.png": _png(1),
    "iris/b.png": _png(2),
    "targets/t1.png": _png(3),
    "targets/t2.png": _png(4),
    "starts/noise.png": _png(5),
}
AFC_MANIFEST = _csv(
    HEADER,
    "iris/a.png,targets/t1.png,starts/noise.png,resnet50,layer4,standard,none,11",
    "iris/b.png,targets/t2.png,targets/t1.png,resnet50,layer3,adversarial,human-aligned,12",
)


def _assert_nothing_written() -> None:
    assert Stimulus.objects.exists() is False
    assert StimulusImage.objects.exists() is False


# ---------------------------------------------------------------------------------------------
# valid imports
# ---------------------------------------------------------------------------------------------


def test_iri_import_creates_one_iri_stimulus_per_row_for_a_2afc_study(researcher: Any) -> None:
    # given
    study = _study(Study.TrialType.IRI_2AFC, researcher)
    # when
    stimuli = iri_import(study=study, files=AFC_FILES, manifest=AFC_MANIFEST, manifest_format="csv")
    # then
    assert [(s.key, s.kind, s.meta) for s in stimuli] == [
        (
            "iris/a.png",
            Stimulus.Kind.IRI,
            {
                "model": "resnet50",
                "layer": "layer4",
                "regime": "standard",
                "regulariser": "none",
                "seed": 11,
                "target": "targets/t1.png",
                "start": "starts/noise.png",
            },
        ),
        (
            "iris/b.png",
            Stimulus.Kind.IRI,
            {
                "model": "resnet50",
                "layer": "layer3",
                "regime": "adversarial",
                "regulariser": "human-aligned",
                "seed": 12,
                "target": "targets/t2.png",
                "start": "targets/t1.png",
            },
        ),
    ]
    assert Stimulus.objects.filter(study=study).count() == 2
    a, b = (Stimulus.objects.get(pk=s.pk) for s in stimuli)
    assert _frames(a) == [
        ("query", 0, {"path": "iris/a.png"}),
        ("start", 0, {"path": "starts/noise.png"}),
        ("target", 0, {"path": "targets/t1.png"}),
    ]
    assert _frames(b) == [
        ("query", 0, {"path": "iris/b.png"}),
        ("start", 0, {"path": "targets/t1.png"}),
        ("target", 0, {"path": "targets/t2.png"}),
    ]
    for stimulus in (a, b):
        for frame in stimulus.frames.all():
            expected = imaging.decode_image(AFC_FILES[frame.meta["path"]])
            assert np.array_equal(_frame_pixels(frame), expected)
    assert StimulusImage.objects.count() == 6


def _cluster_files_and_manifest() -> tuple[dict[str, bytes], bytes]:
    files: dict[str, bytes] = {"starts/noise.png": _png(99)}
    items = []
    seed = 0
    # Group 1: t1, t2, t3 with two IRIs each → one set; t4 with one IRI → left over.
    # Group 2 (adversarial regime): two targets only → no set, all four left over.
    for regime, targets in (("standard", ("t1", "t2", "t3", "t4")), ("adversarial", ("t1", "t2"))):
        for target in targets:
            files[f"targets/{target}.png"] = _png(100 + int(target[1]))
            for k in range(1 if target == "t4" else 2):
                seed += 1
                iri = f"iris/{regime}/{target}_{k}.png"
                files[iri] = _png(seed)
                items.append(
                    {
                        "iri": iri,
                        "target": f"targets/{target}.png",
                        "start": "starts/noise.png",
                        "model": "resnet50",
                        "layer": "layer4",
                        "regime": regime,
                        "regulariser": "none",
                        "seed": seed,
                    }
                )
    return files, json.dumps({"iris": items}).encode()


def test_iri_import_creates_clustering_sets_for_a_cluster_study(researcher: Any) -> None:
    # given
    study = _study(Study.TrialType.IRI_CLUSTER, researcher)
    files, manifest = _cluster_files_and_manifest()
    planned = iri_manifest.cluster_sets(
        iri_manifest.parse_manifest(manifest, manifest_format="json").entries, seed=4
    )
    # when
    stimuli = iri_import(
        study=study, files=files, manifest=manifest, manifest_format="json", seed=4
    )
    # then
    [cluster] = planned
    [stimulus] = stimuli
    assert sorted(cluster.targets) == ["targets/t1.png", "targets/t2.png", "targets/t3.png"]
    assert stimulus.key == "set_1_resnet50_layer4_standard_none"
    assert stimulus.kind == Stimulus.Kind.IRI_SET
    assert stimulus.meta == {
        "model": "resnet50",
        "layer": "layer4",
        "regime": "standard",
        "regulariser": "none",
        "targets": list(cluster.targets),
        "iris": list(cluster.iris),
    }
    columns = list(stimulus.frames.filter(role="column").order_by("index"))
    rows = list(stimulus.frames.filter(role="row").order_by("index"))
    assert [(f.index, f.meta) for f in columns] == [
        (i, {"path": target}) for i, target in enumerate(cluster.targets)
    ]
    assert [(f.index, f.meta) for f in rows] == [
        (
            i,
            {
                "target": cluster.targets.index(row.entry.target),
                "iri": row.entry.iri,
                "start": "starts/noise.png",
                "seed": row.entry.seed,
            },
        )
        for i, row in enumerate(cluster.rows)
    ]
    assert [f.meta["target"] for f in rows] == [0, 0, 1, 1, 2, 2]
    for frame in columns + rows:
        path = frame.meta["path"] if frame.role == "column" else frame.meta["iri"]
        assert np.array_equal(_frame_pixels(frame), imaging.decode_image(files[path]))
    assert StimulusImage.objects.count() == 9


def test_a_second_cluster_import_numbers_its_sets_after_the_first(researcher: Any) -> None:
    # given
    study = _study(Study.TrialType.IRI_CLUSTER, researcher)
    files, manifest = _cluster_files_and_manifest()
    iri_import(study=study, files=files, manifest=manifest, manifest_format="json")
    # when
    [second] = iri_import(study=study, files=files, manifest=manifest, manifest_format="json")
    # then
    assert second.key == "set_2_resnet50_layer4_standard_none"
    assert list(Stimulus.objects.values_list("key", flat=True)) == [
        "set_1_resnet50_layer4_standard_none",
        "set_2_resnet50_layer4_standard_none",
    ]


# ---------------------------------------------------------------------------------------------
# failures: every problem reported, nothing written
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "manifest", "max_pixels", "messages"),
    [
        pytest.param(
            AFC_FILES,
            _csv(
                HEADER,
                "iris/a.png,targets/t1.png,starts/noise.png,resnet50,layer4,standard,none,x",
                "iris/b.png,targets/t2.png,targets/t2.png,resnet50,layer4,standard,l1,1",
            ),
            imaging.DEFAULT_MAX_PIXELS,
            [
                "row 2, column 'seed': seed must be an integer, got 'x'",
                "row 3, column 'start': the start image is the same file as the target",
                "row 3, column 'regulariser': unknown regulariser 'l1' (expected one of: none, "
                "human-aligned, adversarial)",
            ],
            id="bad-manifest",
        ),
        pytest.param(
            {k: v for k, v in AFC_FILES.items() if k != "targets/t2.png"},
            AFC_MANIFEST,
            imaging.DEFAULT_MAX_PIXELS,
            ["row 3, column 'target': image 'targets/t2.png' is not in the folder/zip"],
            id="missing-image",
        ),
        pytest.param(
            AFC_FILES | {"iris/b.png": b"not an image at all", "starts/noise.png": b"\x89PNG"},
            AFC_MANIFEST,
            imaging.DEFAULT_MAX_PIXELS,
            [
                "row 2, column 'start': 'starts/noise.png': not a readable image (supported: "
                "PNG, JPEG, BMP, WEBP)",
                "row 3, column 'iri': 'iris/b.png': not a readable image (supported: PNG, JPEG, "
                "BMP, WEBP)",
            ],
            id="non-image",
        ),
        pytest.param(
            AFC_FILES | {"targets/t1.png": _png(3, size=16)},
            AFC_MANIFEST,
            100,
            [
                "row 2, column 'target': 'targets/t1.png': 16x16 = 256 pixels exceeds the limit "
                "of 100 (possible decompression bomb)",
                "row 3, column 'start': 'targets/t1.png': 16x16 = 256 pixels exceeds the limit "
                "of 100 (possible decompression bomb)",
            ],
            id="oversized-image",
        ),
        pytest.param(
            AFC_FILES | {"iris/a.png": b"junk"},
            _csv(
                HEADER,
                "iris/a.png,targets/t1.png,starts/noise.png,resnet50,layer4,standard,none,1",
                "iris/b.png,targets/zzz.png,starts/noise.png,resnet50,layer4,standard,none,2.5",
            ),
            imaging.DEFAULT_MAX_PIXELS,
            [
                "row 2, column 'iri': 'iris/a.png': not a readable image (supported: PNG, JPEG, "
                "BMP, WEBP)",
                "row 3, column 'target': image 'targets/zzz.png' is not in the folder/zip",
                "row 3, column 'seed': seed must be an integer, got '2.5'",
            ],
            id="manifest-and-image-problems-together",
        ),
        pytest.param(
            AFC_FILES,
            b"not json",
            imaging.DEFAULT_MAX_PIXELS,
            ["manifest: not valid JSON (Expecting value: line 1 column 1 (char 0))"],
            id="unreadable-manifest",
        ),
    ],
)
def test_iri_import_reports_every_problem_and_writes_nothing(
    researcher: Any,
    files: dict[str, bytes],
    manifest: bytes,
    max_pixels: int,
    messages: list[str],
) -> None:
    # given
    study = _study(Study.TrialType.IRI_2AFC, researcher)
    manifest_format = "csv" if manifest.startswith(HEADER.encode()) else "json"
    # when
    with pytest.raises(ValidationError) as caught:
        iri_import(
            study=study,
            files=files,
            manifest=manifest,
            manifest_format=manifest_format,
            max_pixels=max_pixels,
        )
    # then
    assert caught.value.messages == messages
    assert isinstance(caught.value.__cause__, iri_manifest.ManifestError)
    _assert_nothing_written()


def test_iri_import_refuses_a_study_of_another_trial_type(researcher: Any) -> None:
    # given
    study = _study(Study.TrialType.CATEGORICAL, researcher)
    # when
    with pytest.raises(ValidationError) as caught:
        iri_import(study=study, files=AFC_FILES, manifest=AFC_MANIFEST, manifest_format="csv")
    # then
    assert caught.value.messages == [
        f"Study {study.slug!r} has trial type 'categorical'; IRI sets are imported into "
        "'iri_2afc' or 'iri_cluster' studies."
    ]
    _assert_nothing_written()


def test_iri_import_refuses_iris_the_study_already_has(researcher: Any) -> None:
    # given
    study = _study(Study.TrialType.IRI_2AFC, researcher)
    iri_import(study=study, files=AFC_FILES, manifest=AFC_MANIFEST, manifest_format="csv")
    before = (Stimulus.objects.count(), StimulusImage.objects.count())
    # when
    with pytest.raises(ValidationError) as caught:
        iri_import(study=study, files=AFC_FILES, manifest=AFC_MANIFEST, manifest_format="csv")
    # then
    assert caught.value.messages == [
        "row 2, column 'iri': study already has a stimulus 'iris/a.png'",
        "row 3, column 'iri': study already has a stimulus 'iris/b.png'",
    ]
    assert (Stimulus.objects.count(), StimulusImage.objects.count()) == before == (2, 6)


def test_iri_import_refuses_a_cluster_manifest_that_forms_no_set(researcher: Any) -> None:
    # given: a valid manifest, but only two targets
    study = _study(Study.TrialType.IRI_CLUSTER, researcher)
    # when
    with pytest.raises(ValidationError) as caught:
        iri_import(study=study, files=AFC_FILES, manifest=AFC_MANIFEST, manifest_format="csv")
    # then
    assert caught.value.messages == [
        "manifest: no clustering set can be formed: a set needs 3 targets with 2 IRIs each "
        "sharing model, layer, regime and regulariser"
    ]
    _assert_nothing_written()


def test_iri_files_load_reads_a_folder_and_a_zip_alike(tmp_path: Path) -> None:
    # given
    folder = tmp_path / "set"
    for name, data in AFC_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in AFC_FILES.items():
            zf.writestr(name, data)
    # when
    from_folder = iri_files_load(folder=folder)
    from_zip = iri_files_load(zip_file=archive)
    # then
    assert from_folder == from_zip == AFC_FILES
    with pytest.raises(ValueError, match="exactly one of folder and zip_file"):
        iri_files_load(folder=folder, zip_file=archive)


# ---------------------------------------------------------------------------------------------
# the import_iri command
# ---------------------------------------------------------------------------------------------


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_iri", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def _write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_import_iri_command_imports_a_folder_with_a_csv(researcher: Any, tmp_path: Path) -> None:
    # given
    study = _study(Study.TrialType.IRI_2AFC, researcher)
    folder = _write_folder(tmp_path / "set", AFC_FILES)
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(
        AFC_MANIFEST.replace(b"seed\n", b"seed,notes\n").replace(b",11\n", b",11,first\n")
    )
    # when
    out = _run("--study", study.slug, "--folder", str(folder), "--manifest", str(manifest))
    # then
    assert out == (
        "Warning: ignored column(s): notes\n"
        f"Imported 2 IRIs into '{study.slug}'.\n"
        "  1 x model=resnet50 layer=layer3 regime=adversarial regulariser=human-aligned\n"
        "  1 x model=resnet50 layer=layer4 regime=standard regulariser=none\n"
    )
    assert list(Stimulus.objects.values_list("key", flat=True)) == ["iris/a.png", "iris/b.png"]


def test_import_iri_command_imports_a_zip_with_json_sets(researcher: Any, tmp_path: Path) -> None:
    # given
    study = _study(Study.TrialType.IRI_CLUSTER, researcher)
    files, manifest_bytes = _cluster_files_and_manifest()
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    manifest = tmp_path / "manifest.JSON"
    manifest.write_bytes(manifest_bytes)
    # when
    out = _run("--study", study.slug, "--zip", str(archive), "--manifest", str(manifest))
    # then: 11 IRIs, 6 in the set; t4's single IRI and group 2's four are left over
    [stimulus] = Stimulus.objects.all()
    assert out == (
        f"Imported 1 clustering sets (6 IRIs) into '{study.slug}'; 5 IRIs left over.\n"
        f"  set_1_resnet50_layer4_standard_none: {', '.join(stimulus.meta['targets'])}\n"
    )


def test_import_iri_command_lists_every_bad_row(researcher: Any, tmp_path: Path) -> None:
    # given
    study = _study(Study.TrialType.IRI_2AFC, researcher)
    folder = _write_folder(tmp_path / "set", AFC_FILES | {"iris/b.png": b"oops"})
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(
        _csv(
            HEADER,
            "iris/a.png,targets/t1.png,starts/noise.png,resnet50,layer4,standard,mystery,1",
            "iris/b.png,targets/t2.png,starts/noise.png,resnet50,layer4,standard,none,2",
        )
    )
    # when
    with pytest.raises(CommandError) as caught:
        _run("--study", study.slug, "--folder", str(folder), "--manifest", str(manifest))
    # then
    assert str(caught.value) == (
        "Nothing was imported: 2 problem(s):\n"
        "  row 2, column 'regulariser': unknown regulariser 'mystery' (expected one of: none, "
        "human-aligned, adversarial)\n"
        "  row 3, column 'iri': 'iris/b.png': not a readable image (supported: PNG, JPEG, BMP, "
        "WEBP)"
    )
    _assert_nothing_written()


@pytest.mark.parametrize(
    ("study_slug", "manifest_name", "message"),
    [
        ("no-such-study", "m.csv", "No study 'no-such-study'."),
        (None, "m.txt", "m.txt: a manifest must be a .csv or .json file"),
    ],
)
def test_import_iri_command_refuses_a_bad_study_or_manifest_name(
    researcher: Any, tmp_path: Path, study_slug: str | None, manifest_name: str, message: str
) -> None:
    # given
    study = _study(Study.TrialType.IRI_2AFC, researcher)
    folder = _write_folder(tmp_path / "set", AFC_FILES)
    manifest = tmp_path / manifest_name
    manifest.write_bytes(AFC_MANIFEST)
    # when
    with pytest.raises(CommandError) as caught:
        _run(
            "--study",
            study_slug or study.slug,
            "--folder",
            str(folder),
            "--manifest",
            str(manifest),
        )
    # then
    assert str(caught.value) == message
    _assert_nothing_written()
