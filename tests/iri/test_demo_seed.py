"""The demo's E and F studies (iri.demo_seed): from IRIs generated at seed time with PyTorch,
or from the committed set without it."""

import sys

import pytest

from elicitation.models import Stimulus, StimulusImage, Study
from iri import demo, demo_files, demo_seed
from iri.models import Network

pytestmark = pytest.mark.django_db

# 8 shapes × 2 seeds × 2 models; clustering: per model, 8 targets with one pair each → 2 sets.
N_IRIS = 32
N_SETS = 4


def _check_seeded(researcher) -> None:
    afc = Study.objects.get(slug="demo-iri-2afc")
    cluster = Study.objects.get(slug="demo-iri-cluster")
    assert (afc.status, cluster.status) == (Study.Status.LIVE, Study.Status.LIVE)
    assert Stimulus.objects.filter(study=afc, kind=Stimulus.Kind.IRI).count() == N_IRIS
    assert Stimulus.objects.filter(study=cluster, kind=Stimulus.Kind.IRI_SET).count() == N_SETS
    models = set(Stimulus.objects.filter(study=afc).values_list("meta__model", flat=True))
    assert models == {"demo-cnn-standard", "demo-cnn-robust"}
    regimes = set(Stimulus.objects.filter(study=afc).values_list("meta__regime", flat=True))
    assert regimes == {"standard", "robust"}
    assert StimulusImage.objects.filter(stimulus__study=cluster, role="row").count() == 6 * N_SETS
    assert sorted(Network.objects.filter(owner=researcher).values_list("name", flat=True)) == [
        "demo-cnn-robust",
        "demo-cnn-standard",
    ]


def test_the_committed_set_is_small_and_complete():
    made = demo_files.read_demo_set()

    total = sum(p.stat().st_size for p in demo_files.DEMO_SET_DIR.rglob("*") if p.is_file())
    assert total < 1_000_000
    assert len(made.rows) == N_IRIS
    assert set(made.model_files) == {"demo-cnn-standard", "demo-cnn-robust"}
    assert all(row["iri"] in made.files for row in made.rows)
    # generated with the method's defaults
    assert all('"steps": 5000' in row["settings"] for row in made.rows)


def test_without_pytorch_the_demo_imports_the_committed_set(researcher, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)

    seeded = demo_seed.iri_demos_seed(user_id=researcher.id, mode="auto")

    assert [created for _, created in seeded] == [True, True]
    _check_seeded(researcher)
    again = demo_seed.iri_demos_seed(user_id=researcher.id, mode="auto")
    assert [created for _, created in again] == [False, False]
    assert Stimulus.objects.filter(study__slug="demo-iri-2afc").count() == N_IRIS


def test_with_pytorch_the_demo_generates_its_iris_at_seed_time(researcher, monkeypatch):
    # given a short budget (the real seed-time run is demo.SEED_TIME: 300 steps from the
    # committed models)
    assert demo.SEED_TIME.train is False
    monkeypatch.setattr(demo, "SEED_TIME", demo.DemoBudget(steps=3, train=False))

    made, origin = demo_seed.demo_iri_set(mode="generate")
    demo_seed.iri_demos_seed(user_id=researcher.id, mode="generate")

    assert origin == "generated"
    assert all('"steps": 3' in row["settings"] for row in made.rows)
    assert made.model_files == demo_files.read_demo_set().model_files
    _check_seeded(researcher)
    stimulus = Stimulus.objects.filter(study__slug="demo-iri-2afc").first()
    assert stimulus.meta["seed"] in (0, 1)


def test_the_demo_models_train_on_the_shapes_and_are_tested_on_held_out_ones():
    # the committed set's path (make iri-demo-set), with a tiny budget
    made = demo.demo_set(demo.DemoBudget(epochs=1, pgd_steps=1, steps=2), seeds=(0, 1))

    assert set(made.model_files) == {"demo-cnn-standard", "demo-cnn-robust"}
    for info in made.models.values():
        assert 0.0 <= info["test_accuracy"] <= 1.0
        assert info["training"]["epochs"] == 1
    assert len(made.rows) == 32
    assert all('"steps": 2' in row["settings"] for row in made.rows)
    committed = demo_files.read_demo_set().models
    assert all(info["test_accuracy"] >= 0.85 for info in committed.values())
