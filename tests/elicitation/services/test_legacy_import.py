import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from analysis.models import SoftLabel
from elicitation import imaging, legacy
from elicitation.legacy_services import client_key_for, frame_filename, legacy_import
from elicitation.models import (
    Batch,
    BatchItem,
    Participant,
    Response,
    Stimulus,
    StimulusImage,
    Study,
    Trial,
)
from hmix_site.common.exceptions import ApplicationError
from tests import legacy_fixtures as fx
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin() -> Any:
    return UserFactory(username="admin", is_superuser=True)


def _run(*args: Any, **options: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def _file(tmp_path: Path, text: str, name: str = "raw.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _import(tmp_path: Path, fmt: str, slug: str, text: str | None = None, *args: str) -> str:
    path = _file(tmp_path, fx.FILES[fmt]() if text is None else text)
    return _run("import_legacy", str(path), "--format", fmt, "--study", slug, *args)


def _export(tmp_path: Path, slug: str, what: str) -> Any:
    out = tmp_path / f"{slug}-{what}.json"
    _run("export", study=slug, what=what, format="json", out=out)
    return json.loads(out.read_text())


def _counts() -> tuple[int, ...]:
    return (
        Study.objects.count(),
        Stimulus.objects.count(),
        StimulusImage.objects.count(),
        Batch.objects.count(),
        BatchItem.objects.count(),
        Participant.objects.count(),
        Trial.objects.count(),
        Response.objects.count(),
    )


def _assert_same_multiset(got: Sequence[Sequence[float]], expected: Sequence[Sequence[float]]):
    """Equal as multisets of vectors, to floating-point precision (order of rows is free)."""
    remaining = [list(v) for v in expected]
    for vector in got:
        match = next(
            (i for i, e in enumerate(remaining) if vector == pytest.approx(e, rel=0, abs=1e-12)),
            None,
        )
        assert match is not None, f"unexpected label {vector}; still expected {remaining}"
        remaining.pop(match)
    assert remaining == []


def _media_files(settings: Any) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- CIFAR-10S -----------------------------------------------------------------------------------


def test_cifar10s_import_creates_the_study_and_one_response_per_row(admin: Any) -> None:
    # when
    result = legacy_import(
        study_slug="cifar10s-published",
        fmt="cifar10s",
        source=fx.lines(fx.cifar10s_csv()),
        owner=admin,
    )
    # then
    study = Study.objects.get(slug="cifar10s-published")
    assert result.study == study
    assert (
        result.n_rows,
        result.n_skipped,
        result.n_stimuli,
        result.n_images,
        result.n_participants,
        result.n_batches,
        result.n_responses,
        result.n_repeats,
    ) == (15, 6, 4, 0, 3, 2, 9, 1)
    assert study.classes == fx.CLASSES
    assert (study.trial_type, study.status, study.owner, study.title) == (
        "categorical",
        "closed",
        admin,
        "CIFAR-10S (published raw data)",
    )
    assert (study.label_method, study.label_params) == (
        "cifar10s-top2-clamp",
        {"gamma": 0.1, "include_repeats": True},
    )
    assert (study.participants_per_batch, study.repeats) == (2, 1)
    assert list(
        study.stimuli.order_by("key").values_list(
            "key", "kind", "true_class", "source1", "lam", "meta"
        )
    ) == [
        ("cifar10_train_17_Cat.png", "plain", "Cat", "17", None, {"cifar10_test_index": 17}),
        ("cifar10_train_42_Truck.png", "plain", "Truck", "42", None, {"cifar10_test_index": 42}),
        ("cifar10_train_5_Airplane.png", "plain", "Airplane", "5", None, {"cifar10_test_index": 5}),
        ("cifar10_train_64_Ship.png", "plain", "Ship", "64", None, {"cifar10_test_index": 64}),
    ]
    assert not any(s.image for s in study.stimuli.all())
    assert list(
        study.participants.order_by("external_id").values_list(
            "external_id", "platform", "platform_study_id", "stage", "batch__number"
        )
    ) == [
        ("subj-alpha-01", "direct", "", "completed", 3),
        ("subj-bravo-02", "direct", "", "completed", 3),
        ("subj-charlie-03", "direct", "", "completed", 4),
    ]
    assert list(study.batches.order_by("number").values_list("number", "target")) == [
        (3, 2),
        (4, 1),
    ]
    assert list(
        BatchItem.objects.filter(batch__study=study)
        .order_by("batch__number", "position")
        .values_list("batch__number", "position", "stimulus__key")
    ) == [
        (3, 0, "cifar10_train_17_Cat.png"),
        (3, 1, "cifar10_train_42_Truck.png"),
        (3, 2, "cifar10_train_5_Airplane.png"),
        (4, 0, "cifar10_train_5_Airplane.png"),
        (4, 1, "cifar10_train_42_Truck.png"),
        (4, 2, "cifar10_train_64_Ship.png"),
    ]
    rows = list(
        Response.objects.filter(study=study)
        .order_by("participant__external_id", "position")
        .values_list(
            "participant__external_id",
            "stimulus__key",
            "kind",
            "position",
            "rt_ms",
            "top_class",
            "p1_pct",
            "second_class",
            "p2_pct",
            "impossible",
            "value",
            "source",
        )
    )
    assert rows == [
        ("subj-alpha-01", "cifar10_train_17_Cat.png", "main", 0, 41235, 3, 60.0, 5, 20.0,
         [0, 1, 6, 8, 9], {}, "imported"),
        ("subj-alpha-01", "cifar10_train_42_Truck.png", "main", 1, 30000, 9, 80.0, None, None,
         [2, 3, 4, 5, 6, 7, 8], {}, "imported"),
        # a second class (Deer) with its probability left blank: kept, without p2
        ("subj-alpha-01", "cifar10_train_17_Cat.png", "repeat", 2, 20000, 3, 80.0, 4, None,
         [], {}, "imported"),
        ("subj-bravo-02", "cifar10_train_17_Cat.png", "main", 0, 15000, 4, 75.0, 4, 25.0,
         [0, 1, 8, 9], {}, "imported"),
        ("subj-bravo-02", "cifar10_train_42_Truck.png", "main", 1, 16000, 7, 100.0, 4, 10.0,
         [5], {}, "imported"),
        ("subj-bravo-02", "cifar10_train_5_Airplane.png", "main", 2, 17000, 3, 100.0, None, None,
         [0, 1, 2, 4, 5, 6, 7, 8, 9], {}, "imported"),
        ("subj-charlie-03", "cifar10_train_5_Airplane.png", "main", 0, 18000, 8, 20.0, 9, 10.0,
         [], {}, "imported"),
        ("subj-charlie-03", "cifar10_train_42_Truck.png", "main", 1, 19000, 3, 60.0, 5, 20.0,
         [0, 1, 2, 4, 6, 7, 8, 9], {}, "imported"),
        ("subj-charlie-03", "cifar10_train_64_Ship.png", "main", 2, 21000, 9, 2550.0, None, None,
         list(range(10)), {}, "imported"),
    ]  # fmt: skip
    # one trial per response, kinds and positions agreeing
    assert Trial.objects.filter(participant__study=study).count() == 9
    assert all(
        (r.trial.kind, r.trial.position, r.trial.stimulus_id) == (r.kind, r.position, r.stimulus_id)
        for r in Response.objects.filter(study=study).select_related("trial")
    )
    # the raw fields are kept beside the parsed ones: typed " 80" and the ignored "15"
    typed = Response.objects.get(
        study=study, raw__trial_index="5", participant__external_id="subj-alpha-01"
    )
    assert (typed.raw["response"]["prob"], typed.raw["response"]["prob2"]) == (" 80", "15")
    zero = Response.objects.get(
        study=study,
        raw__filename="cifar10_train_5_Airplane.png",
        participant__external_id="subj-bravo-02",
    )
    assert (zero.raw["response"]["prob"], zero.p1_pct) == ("0", 100.0)
    # the idempotency key is derived from (slug, subject, trial_index)
    assert typed.client_key == client_key_for(
        study_slug="cifar10s-published", subject="subj-alpha-01", trial_index=5
    )


def test_cifar10s_labels_are_the_hand_computed_published_construction(
    admin: Any, tmp_path: Path
) -> None:
    # given
    _import(tmp_path, "cifar10s", "c10s")
    # when
    aggregated = json.loads(_run("aggregate", study="c10s"))
    annotations = _export(tmp_path, "c10s", "annotation-soft-labels")
    labels = _export(tmp_path, "c10s", "soft-labels")
    # then
    assert aggregated == {
        "study": "c10s",
        "method": "cifar10s-top2-clamp",
        "params": {"gamma": 0.1, "smoothing": 0.0, "include_repeats": True},
        "labels": 4,
    }
    assert annotations["method"] == {
        "name": "cifar10s-top2-clamp",
        "gamma": 0.1,
        "smoothing": 0.0,
        "include_repeats": True,
    }
    assert sorted(annotations["labels"]) == sorted(fx.CIFAR10S_LABELS)
    for key, expected in fx.CIFAR10S_LABELS.items():
        _assert_same_multiset(annotations["labels"][key], expected)
    # the stored label is the mean of the annotation vectors, repeats counted
    airplane = labels["labels"]["cifar10_train_5_Airplane.png"]
    assert (airplane["n_annotations"], airplane["n_annotators"]) == (2, 2)
    assert airplane["probs"] == pytest.approx(
        [0.04375, 0.04375, 0.04375, 0.54375, 0.04375, 0.04375, 0.04375, 0.04375, 0.1, 0.05],
        rel=0,
        abs=1e-12,
    )
    cat = labels["labels"]["cifar10_train_17_Cat.png"]
    assert (cat["n_annotations"], cat["n_annotators"]) == (3, 2)
    assert cat["probs"] == pytest.approx(
        np.mean(fx.CIFAR10S_LABELS["cifar10_train_17_Cat.png"], axis=0).tolist(), rel=0, abs=1e-12
    )


# --- H-Mix categorical ---------------------------------------------------------------------------


def test_hmix_categorical_import_uses_prolific_participants_and_mixed_stimuli(
    admin: Any, tmp_path: Path
) -> None:
    # when
    out = _import(tmp_path, "hmix-categorical", "hmix-cat")
    # then
    study = Study.objects.get(slug="hmix-cat")
    assert out.splitlines()[0] == (
        "Imported 'hmix-cat' (hmix-categorical, categorical): 7 responses (2 repeats) from 2 "
        "participants in 2 batches, 3 stimuli (0 with images); 2 of 9 rows skipped (not "
        "responses)."
    )
    assert out.splitlines()[1].startswith("Time: ")
    assert (study.label_method, study.label_params) == (
        "hmix-2023",
        {"gamma": 0.1, "include_repeats": True},
    )
    assert list(
        study.participants.order_by("external_id").values_list(
            "external_id", "platform", "platform_study_id", "batch__number"
        )
    ) == [
        ("hsubj-one", "prolific", fx.HMIX_STUDY_ID, 2),
        ("hsubj-two", "prolific", fx.HMIX_STUDY_ID, 5),
    ]
    stimulus = study.stimuli.get(key="mixed_0.5_Automobile_555_Truck_666.png")
    assert (
        stimulus.kind,
        stimulus.class1,
        stimulus.class2,
        stimulus.lam,
        stimulus.source1,
        stimulus.source2,
        stimulus.true_class,
        stimulus.mixup_label,
    ) == ("mixed", "Automobile", "Truck", 0.5, "555", "666", "", {"Automobile": 0.5, "Truck": 0.5})
    assert list(
        Response.objects.filter(study=study, kind="repeat")
        .order_by("participant__external_id")
        .values_list("top_class", "p1_pct", "second_class", "p2_pct", "impossible")
    ) == [
        (fx.CAT, 60.0, fx.DOG, 20.0, [0, 1, 6, 8, 9]),
        (fx.CAT, 40.0, fx.DOG, 30.0, [0, 1, 3, 5, 6, 8, 9]),
    ]


def test_hmix_categorical_labels_are_the_hand_computed_hmix_2023_construction(
    admin: Any, tmp_path: Path
) -> None:
    # given
    _import(tmp_path, "hmix-categorical", "hmix-cat")
    # when
    _run("aggregate", study="hmix-cat")
    annotations = _export(tmp_path, "hmix-cat", "annotation-soft-labels")
    labels = _export(tmp_path, "hmix-cat", "soft-labels")
    # then
    assert annotations["method"]["name"] == "hmix-2023"
    assert sorted(annotations["labels"]) == sorted(fx.HMIX_LABELS)
    for key, expected in fx.HMIX_LABELS.items():
        _assert_same_multiset(annotations["labels"][key], expected)
    cat_dog = labels["labels"]["mixed_0.25_Cat_111_Dog_222.png"]
    assert (cat_dog["n_annotations"], cat_dog["n_annotators"]) == (4, 2)
    assert math.fsum(cat_dog["probs"]) == pytest.approx(1.0, rel=0, abs=1e-12)


# --- H-Mix mixing factor -----------------------------------------------------------------------


def _result(export: Any, kind: str, key: str, include_repeats: bool = True) -> dict[str, Any]:
    (row,) = [
        r
        for r in export["results"]
        if r["kind"] == kind
        and r["key"] == key
        and r["params"].get("include_repeats", include_repeats) == include_repeats
    ]
    return row


def test_mixing_factor_import_gives_the_hand_computed_summaries(admin: Any, tmp_path: Path) -> None:
    # given
    _import(tmp_path, "hmix-mixing-factor", "hmix-mix")
    study = Study.objects.get(slug="hmix-mix")
    # when
    _run("aggregate", study="hmix-mix")
    export = _export(tmp_path, "hmix-mix", "mixing-factor")
    # then
    assert study.trial_type == "mixing_factor"
    assert list(
        Response.objects.filter(study=study)
        .order_by("participant__external_id", "position")
        .values_list("participant__external_id", "kind", "value", "top_class")
    ) == [
        ("msubj-one", "main", {"lam_hat": 0.75, "confidence": 0.5}, None),
        ("msubj-one", "main", {"lam_hat": 1.0, "confidence": 1.0}, None),
        ("msubj-one", "repeat", {"lam_hat": 0.6, "confidence": 0.8}, None),
        ("msubj-two", "main", {"lam_hat": 0.25, "confidence": 1.0}, None),
        ("msubj-two", "main", {"lam_hat": 0.5, "confidence": 0.2}, None),
    ]
    assert study.stimuli.get(key="mixed_0.25_Cat_7_Frog_8.png").meta["class_pair"] == "Cat_7_Frog_8"
    # Cat/Frog (λ .25): λ̂ {.75, .6, .25}, c {.5, .8, 1}; λ̂·c {.375, .48, .25}
    cat_frog = _result(export, "mixing-stimulus", "mixed_0.25_Cat_7_Frog_8.png")
    assert cat_frog["n"] == 3
    assert cat_frog["n_annotators"] == 2
    assert cat_frog["mean_lam_hat"] == pytest.approx(1.6 / 3, rel=0, abs=1e-12)
    assert cat_frog["mean_confidence"] == pytest.approx(2.3 / 3, rel=0, abs=1e-12)
    assert cat_frog["relabel_difference"] == pytest.approx(0.25 - 1.6 / 3, rel=0, abs=1e-12)
    assert cat_frog["confidence_weighted_mean"] == pytest.approx(1.105 / 2.3, rel=0, abs=1e-12)
    assert cat_frog["hmix_weighted_relabel"] == pytest.approx(1.105 / 3, rel=0, abs=1e-12)
    assert cat_frog["hmix_weighted_difference"] == pytest.approx(0.25 - 1.105 / 3, rel=0, abs=1e-12)
    assert cat_frog["human_relabel"] == pytest.approx([1.6 / 3, 1.4 / 3], rel=0, abs=1e-12)
    # without the repeat: λ̂ {.75, .25}, c {.5, 1}
    no_repeat = _result(export, "mixing-stimulus", "mixed_0.25_Cat_7_Frog_8.png", False)
    assert no_repeat["n"] == 2
    assert no_repeat["hmix_weighted_relabel"] == pytest.approx(0.3125, rel=0, abs=1e-12)
    # Airplane/Horse (λ .75): λ̂ {1, .5}, c {1, .2}
    airplane_horse = _result(export, "mixing-stimulus", "mixed_0.75_Airplane_9_Horse_10.png")
    assert airplane_horse["mean_lam_hat"] == pytest.approx(0.75, rel=0, abs=1e-12)
    assert airplane_horse["sd_lam_hat"] == pytest.approx(0.25, rel=0, abs=1e-12)
    assert airplane_horse["hmix_weighted_relabel"] == pytest.approx(0.55, rel=0, abs=1e-12)
    assert airplane_horse["hmix_weighted_difference"] == pytest.approx(0.2, rel=0, abs=1e-12)
    level = _result(export, "mixing-lambda", "0.75")
    assert (level["n"], level["share_extreme"]) == (2, 0.5)


# --- H-Mix midpoints ---------------------------------------------------------------------------


def test_construct_import_gives_the_hand_computed_midpoint_summaries(
    admin: Any, tmp_path: Path
) -> None:
    # given
    _import(tmp_path, "hmix-construct", "hmix-construct")
    study = Study.objects.get(slug="hmix-construct")
    # when
    _run("aggregate", study="hmix-construct")
    export = _export(tmp_path, "hmix-construct", "midpoints")
    # then
    assert study.trial_type == "construct_midpoint"
    assert list(study.stimuli.order_by("key").values_list("key", "kind", "class1", "class2")) == [
        ("Bird_3_Frog_4", "series", "Bird", "Frog"),
        ("Cat_1_Dog_2", "series", "Cat", "Dog"),
    ]
    assert list(
        Response.objects.filter(study=study)
        .order_by("participant__external_id", "position")
        .values_list("kind", "value", "display")
    ) == [
        ("main", {"start_step": 1, "final_step": 6}, {"start_step": 1}),
        ("main", {"start_step": 1, "final_step": 5}, {"start_step": 1}),
        ("repeat", {"start_step": 1, "final_step": 5}, {"start_step": 1}),
        ("main", {"start_step": 9, "final_step": 3}, {"start_step": 9}),
        ("main", {"start_step": 9, "final_step": 8}, {"start_step": 9}),
    ]
    # all answers: steps {6, 5, 5, 3, 8}
    overall = _result(export, "midpoint", "construct|all|__all__")
    assert (overall["n"], overall["histogram"]) == (5, [0, 0, 0, 1, 0, 2, 1, 0, 1, 0, 0])
    assert overall["mean"] == pytest.approx(0.54, rel=0, abs=1e-12)
    assert overall["sd"] == pytest.approx(math.sqrt(13.2 / 4) / 10, rel=0, abs=1e-12)
    assert (overall["median"], overall["share_half"], overall["share_near_half"]) == (0.5, 0.4, 0.6)
    pair = _result(export, "midpoint", "construct|all|Cat_1_Dog_2")
    assert (pair["n"], pair["median"]) == (3, 0.5)
    assert pair["mean"] == pytest.approx(1.4 / 3, rel=0, abs=1e-12)
    from_one = _result(export, "midpoint", "construct|1|__all__")
    from_nine = _result(export, "midpoint", "construct|9|__all__")
    assert (from_one["n"], from_nine["n"], from_nine["median"]) == (3, 2, 0.55)
    consistency = _result(export, "midpoint-consistency", "construct")
    assert (consistency["n_pairs"], consistency["share_identical"]) == (1, 0.0)
    assert consistency["mean_abs_diff"] == pytest.approx(0.1, rel=0, abs=1e-12)


def test_select_import_gives_the_hand_computed_midpoint_summaries(
    admin: Any, tmp_path: Path
) -> None:
    # given
    _import(tmp_path, "hmix-select-shuffled", "hmix-select")
    # when
    _run("aggregate", study="hmix-select")
    export = _export(tmp_path, "hmix-select", "midpoints")
    # then: steps {3, 5, 3, 6}
    assert Study.objects.get(slug="hmix-select").trial_type == "select_midpoint"
    overall = _result(export, "midpoint", "select|all|__all__")
    assert (overall["n"], overall["histogram"]) == (4, [0, 0, 0, 2, 0, 1, 1, 0, 0, 0, 0])
    assert overall["mean"] == pytest.approx(0.425, rel=0, abs=1e-12)
    assert (overall["median"], overall["share_half"], overall["share_near_half"]) == (
        0.4,
        0.25,
        0.5,
    )
    consistency = _result(export, "midpoint-consistency", "select")
    assert (
        consistency["n_pairs"],
        consistency["mean_abs_diff"],
        consistency["share_identical"],
    ) == (
        1,
        0.0,
        1.0,
    )


# --- images --------------------------------------------------------------------------------------


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return imaging.encode_png(pixels)


def test_images_are_attached_when_present_and_optional_otherwise(
    admin: Any, tmp_path: Path
) -> None:
    # given a folder with one of the four images
    images = tmp_path / "images"
    images.mkdir()
    (images / "cifar10_train_17_Cat.png").write_bytes(_png(1))
    # when
    out = _import(tmp_path, "cifar10s", "with-images", None, "--images", str(images))
    # then
    study = Study.objects.get(slug="with-images")
    with_image = [s.key for s in study.stimuli.order_by("key") if s.image]
    assert with_image == ["cifar10_train_17_Cat.png"]
    stored = study.stimuli.get(key="cifar10_train_17_Cat.png")
    with stored.image.open("rb") as fh:
        assert np.array_equal(imaging.decode_image(fh.read()), imaging.decode_image(_png(1)))
    assert "cifar10_train_17_Cat" not in stored.image.name  # the stored name does not tell
    assert "4 stimuli (1 with images)" in out


def test_series_frames_are_attached_only_for_complete_series(admin: Any, tmp_path: Path) -> None:
    # given all 11 steps of Cat_1_Dog_2 and 5 of Bird_3_Frog_4
    images = tmp_path / "series"
    images.mkdir()
    for step in range(11):
        (images / frame_filename("Cat_1_Dog_2", step)).write_bytes(_png(step))
    for step in range(5):
        (images / frame_filename("Bird_3_Frog_4", step)).write_bytes(_png(20 + step))
    # when
    legacy_import(
        study_slug="series-images",
        fmt="hmix-construct",
        source=fx.lines(fx.construct_csv()),
        owner=admin,
        images_dir=images,
    )
    # then
    study = Study.objects.get(slug="series-images")
    frames = StimulusImage.objects.filter(stimulus__study=study).order_by("stimulus__key", "index")
    assert frame_filename("Cat_1_Dog_2", 10) == "mixed_1.0_Cat_1_Dog_2.png"
    assert [(f.stimulus.key, f.role, f.index, f.meta) for f in frames] == [
        ("Cat_1_Dog_2", "step", step, {"lam": step / 10}) for step in range(11)
    ]
    with frames[3].image.open("rb") as fh:
        assert np.array_equal(imaging.decode_image(fh.read()), imaging.decode_image(_png(3)))


def test_an_unreadable_image_imports_nothing(admin: Any, tmp_path: Path, settings: Any) -> None:
    # given
    images = tmp_path / "images"
    images.mkdir()
    (images / "cifar10_train_17_Cat.png").write_bytes(_png(1))
    (images / "cifar10_train_42_Truck.png").write_bytes(b"not a png")
    # when
    with pytest.raises(CommandError, match=r"Nothing was imported: Image .*cifar10_train_42_Truck"):
        _import(tmp_path, "cifar10s", "bad-image", None, "--images", str(images))
    # then
    assert _counts() == (0, 0, 0, 0, 0, 0, 0, 0)
    assert _media_files(settings) == []


# --- malformed files -----------------------------------------------------------------------------


def _bad(rows: list[dict[str, Any]], index: int, **changes: Any) -> list[dict[str, Any]]:
    rows[index] = {**rows[index], **changes}
    return rows


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        (
            "cifar10s",
            fx.csv_text([c for c in fx.CIFAR10S_HEADER if c != "label"], []),
            "line 1: missing column(s) for cifar10s: label",
        ),
        (
            "cifar10s",
            fx.csv_text(fx.CIFAR10S_HEADER, _bad(fx.cifar10s_rows(), 14, response="{bad json")),
            "line 16, column 'response': unparsable JSON",
        ),
        (
            "hmix-categorical",
            fx.csv_text(
                fx.HMIX_CATEGORICAL_HEADER,
                _bad(fx.hmix_categorical_rows(), 8, response=fx.form("Cat", "50", "Wombat", "5")),
            ),
            "line 10, column 'response': unknown class name 'Wombat'",
        ),
        (
            "hmix-mixing-factor",
            fx.csv_text(
                fx.MIXING_HEADER,
                _bad(fx.mixing_rows(), 5, responses='{"mixingcoeff": 150, "confidence": 50}'),
            ),
            "line 7, column 'responses': mixingcoeff must be in 0..100, got 150",
        ),
        (
            "hmix-construct",
            fx.csv_text(fx.CONSTRUCT_HEADER, _bad(fx.construct_rows(), 4, final_value="1.2")),
            "line 6, column 'final_value': 1.2 is not one of the 11 steps",
        ),
        (
            "hmix-select-shuffled",
            fx.csv_text(fx.SELECT_HEADER, _bad(fx.select_rows(), 1, class_pair="Cat_1_Yak_2")),
            "line 3, column 'class_pair': unknown class name 'Yak'",
        ),
    ],
)
def test_a_malformed_file_is_refused_with_the_line_and_nothing_is_written(
    admin: Any, tmp_path: Path, fmt: str, text: str, message: str
) -> None:
    # when
    with pytest.raises(CommandError) as exc:
        _import(tmp_path, fmt, "malformed", text)
    # then
    assert str(exc.value).startswith("Nothing was imported: 1 problem(s) in the file:\n")
    assert message in str(exc.value)
    assert _counts() == (0, 0, 0, 0, 0, 0, 0, 0)


def test_the_service_raises_the_format_error_with_every_row(admin: Any) -> None:
    # given
    rows = _bad(fx.select_rows(), 0, response='{"select": "select7"}')
    rows = _bad(rows, 3, response="[1, 2]")
    # when
    with pytest.raises(legacy.LegacyFormatError) as exc:
        legacy_import(
            study_slug="malformed",
            fmt="hmix-select-shuffled",
            source=fx.lines(fx.csv_text(fx.SELECT_HEADER, rows)),
            owner=admin,
        )
    # then
    assert [str(e) for e in exc.value.errors] == [
        "line 2, column 'response': 7.0 is not one of the 11 steps 0.0, 0.1, ..., 1.0",
        "line 5, column 'response': expected a JSON object, got '[1, 2]'",
    ]
    assert _counts() == (0, 0, 0, 0, 0, 0, 0, 0)


# --- re-imports ----------------------------------------------------------------------------------


def test_importing_an_existing_slug_again_is_refused_and_changes_nothing(
    admin: Any, tmp_path: Path
) -> None:
    # given
    _import(tmp_path, "cifar10s", "c10s")
    before = _counts()
    keys = sorted(Response.objects.values_list("client_key", flat=True))
    # when
    with pytest.raises(CommandError, match="A study with slug 'c10s' already exists"):
        _import(tmp_path, "cifar10s", "c10s")
    # then
    assert _counts() == before
    assert sorted(Response.objects.values_list("client_key", flat=True)) == keys


def test_replace_deletes_the_old_study_and_imports_the_file_again(
    admin: Any, tmp_path: Path, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given an earlier import with an image and computed labels
    images = tmp_path / "images"
    images.mkdir()
    (images / "cifar10_train_17_Cat.png").write_bytes(_png(1))
    _import(tmp_path, "cifar10s", "c10s", None, "--images", str(images))
    _run("aggregate", study="c10s")
    old = Study.objects.get(slug="c10s")
    old_image = (
        Path(settings.MEDIA_ROOT) / old.stimuli.get(key="cifar10_train_17_Cat.png").image.name
    )
    # and a corrected file: subject bravo's Deer/Deer answer becomes Deer 75 / Cat 25
    rows = _bad(fx.cifar10s_rows(), 9, response=fx.form("Deer", "75", "Cat", "25"))
    text = fx.csv_text(fx.CIFAR10S_HEADER, rows)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        _import(tmp_path, "cifar10s", "c10s", text, "--replace")
    # then
    new = Study.objects.get(slug="c10s")
    assert new.pk != old.pk
    assert _counts() == (1, 4, 0, 2, 6, 3, 9, 9)
    assert SoftLabel.objects.count() == 0
    assert old_image.exists() is False
    changed = Response.objects.get(study=new, participant__external_id="subj-bravo-02", position=0)
    assert (changed.top_class, changed.second_class, changed.p2_pct) == (fx.DEER, fx.CAT, 25.0)
    assert changed.client_key == client_key_for(
        study_slug="c10s", subject="subj-bravo-02", trial_index=4
    )


def test_replace_of_a_missing_slug_just_imports(admin: Any) -> None:
    # when
    result = legacy_import(
        study_slug="fresh",
        fmt="hmix-select-shuffled",
        source=fx.lines(fx.select_csv()),
        owner=admin,
        replace=True,
    )
    # then
    assert (result.n_responses, Response.objects.filter(study=result.study).count()) == (4, 4)


def test_the_service_refuses_an_existing_slug_with_a_conflict(admin: Any) -> None:
    # given
    legacy_import(
        study_slug="taken",
        fmt="hmix-select-shuffled",
        source=fx.lines(fx.select_csv()),
        owner=admin,
    )
    # when
    with pytest.raises(ApplicationError) as exc:
        legacy_import(
            study_slug="taken",
            fmt="hmix-construct",
            source=fx.lines(fx.construct_csv()),
            owner=admin,
        )
    # then
    assert exc.value.status == 409
    assert Study.objects.get(slug="taken").trial_type == "select_midpoint"


# --- owner ---------------------------------------------------------------------------------------


def test_the_owner_is_the_first_superuser_or_the_named_user(tmp_path: Path) -> None:
    # given
    UserFactory(username="zed", is_superuser=True)
    UserFactory(username="amy", is_superuser=True)
    researcher = UserFactory(username="researcher")
    # when
    _import(tmp_path, "hmix-select-shuffled", "default-owner")
    _import(tmp_path, "hmix-select-shuffled", "named-owner", None, "--owner", "researcher")
    # then
    assert Study.objects.get(slug="default-owner").owner.username == "zed"
    assert Study.objects.get(slug="named-owner").owner == researcher


def test_without_a_superuser_or_with_an_unknown_owner_nothing_is_imported(tmp_path: Path) -> None:
    # when / then
    with pytest.raises(CommandError, match="No superuser to own the study"):
        _import(tmp_path, "hmix-select-shuffled", "no-owner")
    with pytest.raises(CommandError, match="No user 'nobody'"):
        _import(tmp_path, "hmix-select-shuffled", "no-owner", None, "--owner", "nobody")
    assert _counts() == (0, 0, 0, 0, 0, 0, 0, 0)


# --- the percentage constraint -------------------------------------------------------------------


def test_only_imported_responses_may_store_a_percentage_above_100(admin: Any) -> None:
    # given an imported response whose typed p1 was "2550"
    result = legacy_import(
        study_slug="c10s", fmt="cifar10s", source=fx.lines(fx.cifar10s_csv()), owner=admin
    )
    imported = Response.objects.get(study=result.study, p1_pct=2550.0)
    # when the same value is stored as a live response
    with pytest.raises(IntegrityError), transaction.atomic():
        Response.objects.filter(pk=imported.pk).update(source=Response.Source.LIVE)
    # then
    imported.refresh_from_db()
    assert imported.source == "imported"


# --- a subject who took the study twice ----------------------------------------------------------


def test_a_subject_with_two_sessions_imports_as_two_participants(admin: Any) -> None:
    # given the CIFAR-10S file with a second complete session of subj-bravo-02 (trial_index and
    # time_elapsed restart, the same batch)
    source = fx.lines(fx.cifar10s_two_sessions_csv())
    # when
    result = legacy_import(study_slug="c10s-twice", fmt="cifar10s", source=source, owner=admin)
    # then nothing is refused, and the split is reported
    study = result.study
    assert (result.n_participants, result.n_responses, result.n_repeats) == (4, 12, 2)
    assert result.split_subjects == {"subj-bravo-02": 2}
    assert study.settings["legacy_import"]["split_subjects"] == {"subj-bravo-02": 2}
    assert list(
        study.participants.order_by("external_id").values_list("external_id", "batch__number")
    ) == [
        ("subj-alpha-01", 3),
        ("subj-bravo-02", 3),
        ("subj-bravo-02#2", 3),
        ("subj-charlie-03", 4),
    ]
    assert list(study.batches.order_by("number").values_list("number", "target")) == [
        (3, 3),
        (4, 1),
    ]
    # each session keeps its own trials, numbered from 0, and its own idempotency keys
    second = Response.objects.filter(participant__external_id="subj-bravo-02#2").order_by(
        "position"
    )
    assert list(
        second.values_list(
            "position", "kind", "stimulus__key", "top_class", "second_class", "p2_pct", "impossible"
        )
    ) == [
        (0, "main", "cifar10_train_17_Cat.png", fx.CAT, fx.DOG, None, [fx.DOG]),
        (
            1,
            "main",
            "cifar10_train_42_Truck.png",
            fx.TRUCK,
            None,
            None,
            fx.all_but_indices("Truck"),
        ),
        (2, "repeat", "cifar10_train_42_Truck.png", fx.TRUCK, fx.TRUCK, None, [fx.CAT]),
    ]
    assert [r.client_key for r in second] == [
        client_key_for(study_slug="c10s-twice", subject="subj-bravo-02#2", trial_index=i)
        for i in (4, 5, 6)
    ]
    assert len({r.client_key for r in Response.objects.filter(study=study)}) == 12
    assert {r.raw["subject"] for r in second} == {"subj-bravo-02"}


def test_two_sessions_reproduce_the_published_construction(admin: Any, tmp_path: Path) -> None:
    # given
    _import(tmp_path, "cifar10s", "c10s-twice", fx.cifar10s_two_sessions_csv())
    # when
    _run("aggregate", study="c10s-twice")
    annotations = _export(tmp_path, "c10s-twice", "annotation-soft-labels")
    # then every annotation of both sessions is the hand-computed published vector (the blank
    # p2 second classes contribute nothing to the construction)
    assert sorted(annotations["labels"]) == sorted(fx.CIFAR10S_TWO_SESSIONS_LABELS)
    for key, expected in fx.CIFAR10S_TWO_SESSIONS_LABELS.items():
        _assert_same_multiset(annotations["labels"][key], expected)


def test_the_command_reports_the_split_subject(admin: Any, tmp_path: Path) -> None:
    # when
    out = _import(tmp_path, "cifar10s", "c10s-twice", fx.cifar10s_two_sessions_csv())
    # then
    assert (
        "Subject 'subj-bravo-02' has 2 sessions in the file (trial_index restarts); imported as "
        "2 participants: 'subj-bravo-02', 'subj-bravo-02#2'."
    ) in out
    assert "from 4 participants" in out


def test_a_trial_index_repeated_without_a_restart_still_imports_nothing(admin: Any) -> None:
    # given a duplicated response row (same trial_index, the clock running on)
    rows = fx.cifar10s_rows()
    rows.insert(6, {**rows[5], "time_elapsed": 200000})
    # when / then
    with pytest.raises(legacy.LegacyFormatError, match="time_elapsed did not restart"):
        legacy_import(
            study_slug="c10s",
            fmt="cifar10s",
            source=fx.lines(fx.csv_text(fx.CIFAR10S_HEADER, rows)),
            owner=admin,
        )
    assert _counts() == (0, 0, 0, 0, 0, 0, 0, 0)
