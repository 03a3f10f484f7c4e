import csv
import io
import json
import pickle
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from analysis.models import SoftLabel
from elicitation import imaging, services
from elicitation.demo import DEMO_SLUG
from elicitation.models import ImageSet, Participant, Response, Stimulus, Study, Trial
from tests.conftest import advance_to_trials, categorical_answer
from tests.iri_fixtures import iri_study_live

pytestmark = pytest.mark.django_db


def _run(*args: Any, **kwargs: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue()


def test_seed_demo_is_idempotent() -> None:
    # when
    first = _run("seed_demo")
    counts = (Study.objects.count(), Stimulus.objects.count(), ImageSet.objects.count())
    second = _run("seed_demo")
    # then
    study = Study.objects.get(slug=DEMO_SLUG)
    assert first.startswith(f"Created study '{DEMO_SLUG}' with 48 stimuli in 6 batches.")
    assert second.startswith(f"Already present: study '{DEMO_SLUG}'")
    assert (Study.objects.count(), Stimulus.objects.count(), ImageSet.objects.count()) == counts
    assert study.status == Study.Status.LIVE
    assert len(study.classes) == 8
    assert study.stimuli.filter(kind=Stimulus.Kind.MIXED).count() == 40
    assert all(s.image for s in study.stimuli.all())


@pytest.mark.django_db(transaction=True)
def test_simulate_participants_over_real_http_stores_every_response() -> None:
    # given
    _run("seed_demo")
    # when the command starts the site itself and pilots it
    out = _run("simulate_participants", study=DEMO_SLUG, participants=12, concurrency=4)
    # then
    result = json.loads(out.strip().splitlines()[-1])
    assert {
        "completed",
        "responses",
        "errors",
        "trials_per_s",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    } <= set(result)
    assert result["errors"] == 0
    assert result["completed"] == 12
    assert result["all_completed_stored"] is True
    completed = Participant.objects.filter(stage=Participant.Stage.COMPLETED)
    assert completed.count() == 12
    assert (
        Response.objects.count()
        == result["responses"]
        == Trial.objects.filter(participant__in=completed).count()
    )
    assert SoftLabel.objects.filter(study__slug=DEMO_SLUG).count() > 0


def test_aggregate_and_export_annotation_labels_json(tmp_path: Path) -> None:
    # given a demo study with two simulated answers stored through the service layer
    _run("seed_demo")

    study = Study.objects.get(slug=DEMO_SLUG)
    p = advance_to_trials(services.participant_start(study=study, platform="direct")[0])
    trial = p.trials.order_by("position").first()
    services.response_record(
        participant=p,
        trial_id=trial.id,
        client_key=uuid.uuid4(),
        rt_ms=5,
        answer=categorical_answer(
            top_class="Circle", p1=70, second_class="Square", p2=30, impossible=["Star"]
        ),
    )
    # when
    agg = json.loads(_run("aggregate", study=DEMO_SLUG, method="cifar10s-top2-clamp", gamma=0.1))
    out = tmp_path / "ann.json"
    _run(
        "export",
        study=DEMO_SLUG,
        what="annotation-soft-labels",
        format="json",
        out=out,
        method="cifar10s-top2-clamp",
    )
    # then: Circle .7, Square .3 (S = 1): renormalise, γ = .1 over the 5 possible zero classes
    data = json.loads(out.read_text())
    assert agg == {
        "study": DEMO_SLUG,
        "method": "cifar10s-top2-clamp",
        "params": {"gamma": 0.1, "smoothing": 0.0, "include_repeats": True},
        "labels": 1,
    }
    assert data["classes"] == list(imaging.DEMO_CLASSES)
    assert list(data["labels"]) == [trial.stimulus.key]
    expected = {"Circle": 0.63, "Square": 0.27, "Star": 0.0}
    [vector] = data["labels"][trial.stimulus.key]
    for name, value in expected.items():
        assert vector[data["classes"].index(name)] == pytest.approx(value, abs=1e-12)
    assert sorted(round(v, 12) for v in vector) == sorted([0.63, 0.27, 0.0] + [0.02] * 5)


def test_export_npy_writes_the_array_and_its_index(tmp_path: Path) -> None:
    # given
    _run("seed_demo")
    study = Study.objects.get(slug=DEMO_SLUG)
    stimuli = list(study.stimuli.order_by("key")[:3])
    for i, s in enumerate(stimuli):
        SoftLabel.objects.create(
            study=study,
            stimulus=s,
            method="clean-top2-clamp",
            params={"gamma": 0.1, "smoothing": 0.0, "include_repeats": True},
            params_key=json.dumps(
                {
                    "gamma": 0.1,
                    "include_repeats": True,
                    "method": "clean-top2-clamp",
                    "smoothing": 0.0,
                },
                sort_keys=True,
            ),
            probs=[1.0 if j == i else 0.0 for j in range(8)],
            n_annotations=1,
            n_annotators=1,
            entropy=0.0,
        )
    out = tmp_path / "labels.npy"
    # when
    _run("export", study=DEMO_SLUG, what="soft-labels", format="npy", out=out)
    # then
    array = np.load(out)
    index = list(csv.DictReader((tmp_path / "labels.index.csv").open()))
    np.testing.assert_array_equal(array, np.eye(8)[:3])
    assert [row["stimulus"] for row in index] == [s.key for s in stimuli]


def test_export_refuses_npy_for_responses(tmp_path: Path) -> None:
    # given
    _run("seed_demo")
    # when / then
    with pytest.raises(
        CommandError, match=re.escape("Responses export as csv, json or jsonl, not npy.")
    ):
        _run("export", study=DEMO_SLUG, what="responses", format="npy", out=tmp_path / "r.npy")
    assert not (tmp_path / "r.npy").exists()


def test_aggregate_unknown_study_or_method_is_a_clear_error() -> None:
    # given
    _run("seed_demo")
    # when / then
    with pytest.raises(CommandError, match=re.escape("No study with slug 'nope'.")):
        _run("aggregate", study="nope")
    with pytest.raises(CommandError, match="unknown construction"):
        _run("aggregate", study=DEMO_SLUG, method="magic")


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def test_import_folder_then_create_a_mixup_study(tmp_path: Path, researcher: Any) -> None:
    # given a folder of two classes with two images each
    for cls, colour in (("Cat", (200, 0, 0)), ("Dog", (0, 0, 200))):
        for i in range(2):
            _png(tmp_path / "imgs" / cls / f"{i}.png", colour)
    # when
    _run("import_images", name="pets", folder=tmp_path / "imgs")
    out = _run(
        "create_mixup_study",
        slug="pets-mixup",
        title="Pets",
        owner=researcher.username,
        image_set="pets",
        n_pairs=2,
        lambdas=[0.25, 0.75],
        batch_size=2,
        live=True,
        completion_code="ABC",
    )
    # then
    study = Study.objects.get(slug="pets-mixup")
    assert out.startswith("Created 'pets-mixup': 4 stimuli in 2 batches, status live.")
    assert study.classes == ["Cat", "Dog"]
    s = study.stimuli.filter(lam=0.25).first()
    pixels = np.asarray(Image.open(s.image.open("rb")))
    # round(0.25·Cat + 0.75·Dog) = (50, 0, 150)
    assert pixels[0, 0].tolist() == [50, 0, 150]
    assert s.key.startswith("mixed_0.25_Cat_")
    assert (
        study.prolific_completion_url == "https://app.prolific.com/submissions/complete?cc={code}"
    )


def test_import_cifar_batches(tmp_path: Path) -> None:
    # given a tiny batch in the CIFAR-10 python format: 2 images, labels cat (3) and dog (5)
    data = np.zeros((2, 3072), dtype=np.uint8)
    data[0, :1024] = 255  # image 0: red plane full
    batch = {b"data": data, b"labels": [3, 5], b"filenames": [b"a.png", b"b.png"]}
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(batch))
    # when
    out = _run("import_images", name="cifar-mini", cifar=[path])
    # then
    image_set = ImageSet.objects.get(name="cifar-mini")
    assert out.startswith("Imported 2 images of 2 classes into 'cifar-mini': Cat, Dog")
    cat = image_set.images.get(class_name="Cat")
    assert cat.ref == "0"
    assert np.asarray(Image.open(cat.image.open("rb")))[5, 5].tolist() == [255, 0, 0]


def test_import_of_a_non_image_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    # given
    bad = tmp_path / "imgs" / "Cat" / "x.png"
    bad.parent.mkdir(parents=True)
    bad.write_text("not an image")
    # when / then
    with pytest.raises(CommandError, match=re.escape("x.png")):
        _run("import_images", name="bad", folder=tmp_path / "imgs")
    assert ImageSet.objects.exists() is False


def test_create_study_needs_known_owner_and_image_set(researcher: Any) -> None:
    with pytest.raises(CommandError, match="No user 'ghost'"):
        _run("create_mixup_study", slug="x", title="x", owner="ghost", image_set="none", n_pairs=1)
    with pytest.raises(CommandError, match="No image set 'none'"):
        _run(
            "create_mixup_study",
            slug="x",
            title="x",
            owner=researcher.username,
            image_set="none",
            n_pairs=1,
        )
    assert Study.objects.exists() is False


def test_mixup_task_is_idempotent(make_image_study: Callable[..., Study]) -> None:
    # given
    from elicitation.tasks import stimuli_generate_mixup

    study = make_image_study(n_pairs=1)
    image_set = ImageSet.objects.get(name="test-shapes")
    before = study.stimuli.count()
    # when the same grid is generated twice (a retried task)
    created = stimuli_generate_mixup(study.id, image_set.id, [0.25, 0.75], 3, 0)
    again = stimuli_generate_mixup(study.id, image_set.id, [0.25, 0.75], 3, 0)
    # then
    assert (created, again) == (4, 0)
    assert study.stimuli.count() == before + 4


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("slug", "kinds"),
    [
        ("demo-mixing-factor", {"mixing-stimulus", "mixing-lambda"}),
        ("demo-construct-midpoint", {"midpoint", "midpoint-consistency"}),
        ("demo-select-midpoint", {"midpoint", "midpoint-consistency"}),
    ],
)
def test_simulated_participants_answer_every_demo_interface(slug: str, kinds: set[str]) -> None:
    # given
    _run("seed_demo")
    # when
    out = _run("simulate_participants", study=slug, participants=4, concurrency=2)
    # then every answer was accepted by the server's validation and analysed
    result = json.loads(out.strip().splitlines()[-1])
    study = Study.objects.get(slug=slug)
    assert (result["errors"], result["completed"]) == (0, 4)
    assert result["all_completed_stored"] is True
    trials = Trial.objects.filter(participant__study=study).count()
    assert Response.objects.filter(study=study).count() == result["responses"] == trials > 0
    assert set(study.analysis_results.values_list("kind", flat=True)) == kinds


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("trial_type", [Study.TrialType.IRI_2AFC, Study.TrialType.IRI_CLUSTER])
def test_simulated_participants_answer_the_iri_interfaces(trial_type: str, researcher: Any) -> None:
    # given an IRI study drawn by the test (catch trials / catch rows included)
    study = iri_study_live(
        owner=researcher,
        trial_type=trial_type,
        slug=f"sim-{trial_type}",
        n_stimuli=3,
        settings={"catch_rate": 0.5},
    )
    # when
    out = _run("simulate_participants", study=study.slug, participants=3, concurrency=3)
    # then
    result = json.loads(out.strip().splitlines()[-1])
    assert (result["errors"], result["completed"]) == (0, 3)
    assert result["all_completed_stored"] is True
    assert set(study.analysis_results.values_list("kind", flat=True)) == {"iri-alignment"}


def test_create_study_live_without_a_completion_code_stays_a_draft(
    tmp_path: Path, researcher: Any
) -> None:
    # given
    for cls, colour in (("Cat", (200, 0, 0)), ("Dog", (0, 0, 200))):
        for i in range(2):
            _png(tmp_path / "imgs" / cls / f"{i}.png", colour)
    _run("import_images", name="pets", folder=tmp_path / "imgs")
    # when
    with pytest.raises(CommandError) as exc:
        _run(
            "create_mixup_study",
            slug="pets-nocode",
            title="Pets",
            owner=researcher.username,
            image_set="pets",
            n_pairs=2,
            lambdas=[0.5],
            batch_size=2,
            live=True,
        )
    # then
    assert str(exc.value).startswith(
        "Created 'pets-nocode' as a draft, but it cannot go live: The study cannot go live yet: "
        "Set a completion code"
    )
    study = Study.objects.get(slug="pets-nocode")
    assert (study.status, study.transitions.exists()) == (Study.Status.DRAFT, False)
