"""iri.services: models (upload, training) and IRI generation jobs into E and F studies."""

import io
import json
import sys
import zipfile

import numpy as np
import pytest
import torch
from django.core.exceptions import ValidationError

from elicitation.models import Stimulus, StimulusImage, Study
from hmix_site.common.exceptions import ApplicationError
from iri import cnn, services
from iri.models import Network
from jobs import services as job_services
from jobs.models import Job
from tests.iri_fixtures import iri_study_create

pytestmark = pytest.mark.django_db


# --- networks ------------------------------------------------------------------------------


def test_an_uploaded_torchscript_model_is_checked_and_stored(make_network):
    network = make_network(name="tiny")

    assert network.source == Network.Source.UPLOADED
    assert network.meta["output_shape"] == [32]
    assert len(network.meta["sha256"]) == 64
    module = services.network_load(network)
    assert tuple(module.penultimate(torch.zeros(2, 3, 32, 32)).shape) == (2, 32)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"data": b"garbage"}, "file", "not a TorchScript model file"),
        ({"layer": "layer9"}, "file", "no layer (method) 'layer9'"),
        ({"input_size": 4}, "input_size", "input_size must be from 8 to 512"),
        ({"std": [1.0, 0.0, 1.0]}, "std", "std must be positive"),
        ({"name": "not a slug"}, "name", "Enter a valid"),
    ],
)
def test_a_bad_upload_is_refused_and_nothing_stored(researcher, changes, field, message):
    args = {
        "owner_id": researcher.id,
        "name": "tiny",
        "data": cnn.to_torchscript(cnn.SmallCNN(2, width=4)),
        "input_size": 32,
        "mean": [0.0, 0.0, 0.0],
        "std": [1.0, 1.0, 1.0],
        "layer": "penultimate",
        **changes,
    }

    with pytest.raises(ValidationError) as info:
        services.network_upload(**args)

    assert message in " ".join(info.value.message_dict[field])
    assert Network.objects.exists() is False


def test_training_a_robust_cnn_as_a_job(researcher, shapes, django_capture_on_commit_callbacks):
    # given
    with django_capture_on_commit_callbacks(execute=True):
        job = services.network_train_job_create(
            owner_id=researcher.id,
            name="shapes-robust",
            image_set=shapes,
            regime="robust",
            epochs=1,
        )

    # then the eager task has run it
    job.refresh_from_db()
    assert job.status == Job.Status.DONE, job.error
    network = Network.objects.get(name="shapes-robust")
    assert network.source == Network.Source.TRAINED
    assert network.regime == "robust"
    assert network.layer == "penultimate"
    assert network.classes == sorted(shapes.classes)
    assert network.meta["training"]["regime"] == "robust"
    assert network.meta["n_images"] == 16
    assert 0.0 <= network.meta["train_accuracy"] <= 1.0
    assert json.loads(job.result.read())["network"] == "shapes-robust"


def test_training_refuses_a_taken_name(researcher, shapes, make_network):
    make_network(name="taken")

    with pytest.raises(ValidationError) as info:
        services.network_train_job_create(owner_id=researcher.id, name="taken", image_set=shapes)

    assert "already have a model named 'taken'" in info.value.message_dict["name"][0]
    assert Job.objects.exists() is False


# --- generation ----------------------------------------------------------------------------


def _generate(researcher, network, shapes, capture, **kwargs):
    with capture(execute=True):
        job = services.iri_generate_job_create(
            owner_id=researcher.id, network=network, image_set=shapes, **kwargs
        )
    job.refresh_from_db()
    return job


def test_generation_into_a_new_2afc_study_writes_full_manifest_rows(
    researcher, shapes, make_network, django_capture_on_commit_callbacks
):
    # given
    network = make_network(name="tiny")

    # when: one target per class, two seeds, 20 steps
    job = _generate(
        researcher,
        network,
        shapes,
        django_capture_on_commit_callbacks,
        new_study={"slug": "iri-new", "title": "Which is closer?", "trial_type": "iri_2afc"},
        per_class=1,
        seeds=[0, 1],
        steps=20,
        eta=1.0,
    )

    # then
    assert job.status == Job.Status.DONE, job.error
    study = Study.objects.get(slug="iri-new")
    assert job.study_id == study.id
    assert study.status == Study.Status.DRAFT
    stimuli = list(Stimulus.objects.filter(study=study).order_by("key"))
    assert len(stimuli) == 16
    meta = stimuli[0].meta
    assert {k: meta[k] for k in ("model", "layer", "regime", "regulariser")} == {
        "model": "tiny",
        "layer": "penultimate",
        "regime": "standard",
        "regulariser": "none",
    }
    assert meta["seed"] in (0, 1)
    generation = meta["generation"]
    assert generation["settings"]["steps"] == 20
    assert generation["settings"]["eta"] == 1.0
    assert generation["settings"]["start"] == "noise"
    assert generation["distance"] < generation["start_distance"]
    assert generation["final_loss"] == pytest.approx(generation["distance"], rel=1e-3)
    assert set(
        StimulusImage.objects.filter(stimulus=stimuli[0]).values_list("role", flat=True)
    ) == {
        "query",
        "target",
        "start",
    }
    # every IRI of a seed shares that seed's noise start
    starts = {s.meta["start"] for s in stimuli}
    assert len(starts) == 2
    # the result holds the manifest, the images and each run's noise as saved arrays
    with zipfile.ZipFile(io.BytesIO(job.result.read())) as archive:
        names = archive.namelist()
        manifest = archive.read("manifest.csv").decode().splitlines()
        noise = np.load(io.BytesIO(archive.read(next(n for n in names if n.endswith(".npy")))))
    assert manifest[0].startswith("iri,target,start,model,layer,regime,regulariser,seed,final_loss")
    assert len(manifest) == 17
    assert noise.shape == (3, 32, 32)
    assert sum(n.endswith(".npy") for n in names) == 2


def test_generation_into_an_existing_clustering_study_makes_sets(
    researcher, shapes, make_network, django_capture_on_commit_callbacks
):
    # given a draft F study
    study = iri_study_create(owner=researcher, trial_type=Study.TrialType.IRI_CLUSTER, slug="f")
    network = make_network(name="tiny")

    # when: 6 targets × 2 seeds, the human-leaning regulariser
    job = _generate(
        researcher,
        network,
        shapes,
        django_capture_on_commit_callbacks,
        study=study,
        targets=["Circle/0", "Cross/0", "Diamond/0", "Heart/0", "Ring/0", "Square/0"],
        seeds=[3, 4],
        steps=5,
        regulariser="tv-norm+transform",
        lam=0.1,
    )

    # then two sets of 3 columns × 2 rows
    assert job.status == Job.Status.DONE, job.error
    sets = list(Stimulus.objects.filter(study=study))
    assert len(sets) == 2
    assert all(s.kind == Stimulus.Kind.IRI_SET for s in sets)
    assert sets[0].meta["regulariser"] == "human-aligned"
    rows = StimulusImage.objects.filter(stimulus=sets[0], role="row")
    assert rows.count() == 6
    row = rows.first()
    assert row.meta["generation"]["settings"]["regulariser"] == "tv-norm+transform"
    assert row.meta["generation"]["settings"]["lam"] == 0.1


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"seeds": [0]}, "seeds", "A clustering set needs 3 targets with 2 IRIs each"),
        ({"seeds": [0, 1], "targets": ["Circle/0", "Nope/9"]}, "targets", "Nope/9"),
        ({"seeds": [0, 1], "start": "grey"}, "start", "Unknown start 'grey'"),
        ({"seeds": [0, 1], "steps": 0}, "steps", "steps must be from 1"),
        ({"seeds": [0, 0]}, "seeds", "different seeds"),
        (
            {"seeds": [0, 1], "start": "image", "start_image": "Circle/0"},
            "start_image",
            "also a target",
        ),
    ],
)
def test_a_bad_generation_request_writes_nothing(
    researcher, shapes, make_network, kwargs, field, message
):
    network = make_network()

    with pytest.raises(ValidationError) as info:
        services.iri_generate_job_create(
            owner_id=researcher.id,
            network=network,
            image_set=shapes,
            new_study={"slug": "never", "title": "Never", "trial_type": "iri_cluster"},
            **kwargs,
        )

    assert message in " ".join(info.value.message_dict[field])
    assert Job.objects.exists() is False
    assert Study.objects.filter(slug="never").exists() is False


def test_generation_into_a_live_study_is_refused(researcher, shapes, make_network):
    study = iri_study_create(owner=researcher, trial_type=Study.TrialType.IRI_2AFC, slug="live")
    Study.objects.filter(id=study.id).update(status=Study.Status.LIVE)
    study.refresh_from_db()

    with pytest.raises(ApplicationError, match="only while the study is a draft") as info:
        services.iri_generate_job_create(
            owner_id=researcher.id, network=make_network(), image_set=shapes, study=study
        )

    assert info.value.status == 409
    assert Job.objects.exists() is False


def test_a_cancelled_pending_job_is_never_run(researcher, shapes, make_network):
    # given a queued job whose task has not run yet
    job = services.iri_generate_job_create(
        owner_id=researcher.id,
        network=make_network(),
        image_set=shapes,
        new_study={"slug": "c", "title": "C", "trial_type": "iri_2afc"},
        steps=5,
    )

    # when the owner cancels, then the task arrives
    job_services.job_cancel(job=job)
    services.iri_generate_job_run(job=job)

    # then
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert Stimulus.objects.exists() is False


def test_a_running_generation_stops_when_cancelled(researcher, shapes, make_network, monkeypatch):
    # given a job that its worker has claimed, and a cancel arriving at the first progress point
    job = services.iri_generate_job_create(
        owner_id=researcher.id,
        network=make_network(),
        image_set=shapes,
        new_study={"slug": "c", "title": "C", "trial_type": "iri_2afc"},
        steps=2000,
    )
    real_progress = job_services.job_progress
    calls = []

    def progress_then_cancel(*, job, fraction, message=""):
        calls.append(fraction)
        real_progress(job=job, fraction=fraction, message=message)
        if len(calls) == 1:
            job_services.job_cancel(job=job)

    # the owner's cancel (the API's service) arrives while the worker reports its first progress
    monkeypatch.setattr(services, "job_progress", progress_then_cancel)
    services.iri_generate_job_run(job=job)

    # then it stopped at that point and wrote nothing
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert len(calls) == 1
    assert job.message == "Cancelled; nothing was written"
    assert Stimulus.objects.exists() is False


def test_a_finished_job_cannot_be_cancelled(researcher):
    job = job_services.job_create(owner_id=researcher.id, kind=Job.Kind.IRI_GENERATE)
    job_services.job_finish(job=job)

    with pytest.raises(ApplicationError, match="cannot be cancelled: it is done") as info:
        job_services.job_cancel(job=job)

    assert info.value.status == 409


def test_without_pytorch_generation_says_what_is_missing(
    researcher, shapes, monkeypatch, make_network
):
    network = make_network()
    # given an interpreter where `import torch` fails (as on a server without the extra)
    monkeypatch.setitem(sys.modules, "torch", None)

    with pytest.raises(ApplicationError) as info:
        services.iri_generate_job_create(
            owner_id=researcher.id,
            network=network,
            image_set=shapes,
            new_study={"slug": "t", "title": "T", "trial_type": "iri_2afc"},
        )

    assert info.value.status == 503
    assert "need PyTorch, which is not installed" in info.value.message
    assert "pip install -e '.[iri]'" in info.value.message
    assert Job.objects.exists() is False
    assert Study.objects.filter(slug="t").exists() is False
