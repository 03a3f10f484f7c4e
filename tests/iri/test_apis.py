"""The IRI endpoints and the builder's IRI page: wiring, permissions, bad input, no PyTorch."""

import sys

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from elicitation.models import Stimulus, Study
from iri import cnn
from iri.models import Network
from jobs.models import Job
from tests.conftest import token_client
from tests.factories import UserFactory
from tests.iri_fixtures import iri_study_create

pytestmark = pytest.mark.django_db

GENERATE = "/api/iris/generate/"


def _body(**changes):
    """A valid request with changes; a change to None leaves the field out."""
    body = {
        "model": "tiny",
        "image_set": "iri-shapes",
        "new_study": {"slug": "api-iris", "title": "Closer?", "trial_type": "iri_2afc"},
        "per_class": 1,
        "steps": 5,
        "seeds": [0],
        **changes,
    }
    return {k: v for k, v in body.items() if v is not None}


def test_generate_answers_202_and_the_job_fills_the_new_study(
    researcher, shapes, make_network, django_capture_on_commit_callbacks
):
    make_network(name="tiny")
    client = token_client(researcher)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(GENERATE, _body(), format="json")

    assert response.status_code == 202, response.json()
    assert response["Location"] == f"/api/jobs/{response.json()['id']}/"
    job = Job.objects.get()
    assert (job.kind, job.status) == (Job.Kind.IRI_GENERATE, Job.Status.DONE)
    assert Stimulus.objects.filter(study__slug="api-iris").count() == 8
    detail = client.get(f"/api/jobs/{job.public_id}/").json()
    assert detail["status"] == "done"
    assert detail["progress"] == 1.0


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"colour": "red"}, "colour", "Unknown field."),
        ({"model": "nope"}, "model", "You have no model named 'nope'."),
        ({"image_set": "nope"}, "image_set", "No image set 'nope' that you can use."),
        ({"start": "grey"}, "start", '"grey" is not a valid choice.'),
        ({"steps": 0}, "steps", "Ensure this value is greater than or equal to 1."),
        ({"new_study": None}, "study", "Give either `study` (an existing draft) or `new_study`."),
    ],
)
def test_bad_generate_input_is_a_400_naming_it_and_nothing_is_stored(
    researcher, shapes, make_network, changes, field, message
):
    make_network(name="tiny")
    response = token_client(researcher).post(GENERATE, _body(**changes), format="json")

    assert response.status_code == 400
    assert message in str(response.json()["extra"]["fields"][field])
    assert Job.objects.exists() is False
    assert Study.objects.filter(slug="api-iris").exists() is False


def test_generating_into_someone_elses_study_is_forbidden(researcher, shapes, make_network):
    make_network(name="tiny")
    other = UserFactory(username="other")
    study = iri_study_create(owner=other, trial_type=Study.TrialType.IRI_2AFC, slug="theirs")

    response = token_client(researcher).post(
        GENERATE, _body(new_study=None, study=study.slug), format="json"
    )

    assert response.status_code == 403
    assert Job.objects.exists() is False


def test_without_pytorch_generate_is_a_503_saying_what_to_install(
    researcher, shapes, make_network, monkeypatch
):
    make_network(name="tiny")
    monkeypatch.setitem(sys.modules, "torch", None)

    response = token_client(researcher).post(GENERATE, _body(), format="json")

    assert response.status_code == 503
    assert "need PyTorch, which is not installed" in response.json()["message"]
    assert "pip install -e '.[iri]'" in response.json()["message"]
    assert Job.objects.exists() is False
    assert Study.objects.filter(slug="api-iris").exists() is False


def test_upload_a_torchscript_model(researcher):
    data = cnn.to_torchscript(cnn.SmallCNN(3, width=4))

    response = token_client(researcher).post(
        "/api/models/",
        {
            "name": "mine",
            "file": SimpleUploadedFile("mine.pt", data),
            "input_size": 32,
            "layer": "penultimate",
            "mean": [0.5, 0.5, 0.5],
            "std": [0.25, 0.25, 0.25],
        },
        format="multipart",
    )

    assert response.status_code == 201, response.json()
    assert response.json()["meta"]["output_shape"] == [16]
    network = Network.objects.get(name="mine")
    assert (network.mean, network.std, network.input_size) == ([0.5] * 3, [0.25] * 3, 32)
    listed = token_client(researcher).get("/api/models/").json()
    assert [n["name"] for n in listed] == ["mine"]


def test_upload_of_a_file_that_is_not_torchscript_is_a_400(researcher):
    response = token_client(researcher).post(
        "/api/models/",
        {"name": "bad", "file": SimpleUploadedFile("bad.pt", b"nope"), "input_size": 32},
        format="multipart",
    )

    assert response.status_code == 400
    assert "not a TorchScript model file" in str(response.json())
    assert Network.objects.exists() is False


def test_train_endpoint_queues_a_training_job(researcher, shapes):
    response = token_client(researcher).post(
        "/api/models/train/",
        {"name": "cnn", "image_set": "iri-shapes", "regime": "robust", "epochs": 1},
        format="json",
    )

    assert response.status_code == 202
    job = Job.objects.get()
    assert job.kind == Job.Kind.NETWORK_TRAIN
    assert job.params["regime"] == "robust"


def test_cancel_endpoint(researcher, shapes, make_network):
    make_network(name="tiny")
    client = token_client(researcher)
    job_id = client.post(GENERATE, _body(), format="json").json()["id"]

    cancelled = client.post(f"/api/jobs/{job_id}/cancel/")
    again = client.post(f"/api/jobs/{job_id}/cancel/")

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert again.status_code == 409
    assert "cannot be cancelled: it is cancelled" in again.json()["message"]
    other = token_client(UserFactory(username="other"))
    assert other.post(f"/api/jobs/{job_id}/cancel/").status_code == 404


# --- the builder page ----------------------------------------------------------------------


def test_the_builder_iri_page_queues_a_generation_and_follows_it(
    client, researcher, shapes, make_network
):
    make_network(name="tiny")
    study = iri_study_create(owner=researcher, trial_type=Study.TrialType.IRI_CLUSTER, slug="f")
    client.force_login(researcher)
    url = reverse("dashboard:build-iris", kwargs={"slug": study.slug})

    page = client.get(url)
    posted = client.post(
        url,
        {
            "form": "generate",
            "model": "tiny",
            "image_set": "iri-shapes",
            "per_class": 1,
            "start": "noise",
            "regulariser": "none",
            "lam": 0.05,
            "steps": 5,
            "eta": 1.0,
            "seeds": "0, 1",
        },
    )

    assert page.status_code == 200
    assert "Model → IRIs → study" in page.content.decode()
    assert posted.status_code == 302
    job = Job.objects.get(kind=Job.Kind.IRI_GENERATE)
    assert posted["Location"].endswith(f"/build/iris/jobs/{job.public_id}/")
    job_page = client.get(posted["Location"])
    assert job_page.status_code == 200
    assert 'id="job-cancel"' in job_page.content.decode()
    cancel = client.post(f"{posted['Location']}cancel/")
    assert cancel.status_code == 302
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED


def test_the_builder_iri_page_shows_bad_input_and_stores_nothing(
    client, researcher, shapes, make_network
):
    make_network(name="tiny")
    study = iri_study_create(owner=researcher, trial_type=Study.TrialType.IRI_CLUSTER, slug="f")
    client.force_login(researcher)

    response = client.post(
        reverse("dashboard:build-iris", kwargs={"slug": study.slug}),
        {
            "form": "generate",
            "model": "tiny",
            "image_set": "iri-shapes",
            "per_class": 1,
            "start": "noise",
            "regulariser": "none",
            "lam": 0.05,
            "steps": 5,
            "eta": 1.0,
            "seeds": "0",
        },
    )

    assert response.status_code == 400
    assert "A clustering set needs 3 targets with 2 IRIs each" in response.content.decode()
    assert Job.objects.exists() is False


def test_the_builder_iri_page_is_for_iri_studies_only(client, researcher, make_study):
    study = make_study()
    client.force_login(researcher)

    response = client.get(reverse("dashboard:build-iris", kwargs={"slug": study.slug}))

    assert response.status_code == 404


def test_a_new_study_of_another_interface_is_refused_and_not_created(
    researcher, shapes, make_network
):
    make_network(name="tiny")
    body = _body(new_study={"slug": "api-iris", "title": "T", "trial_type": "categorical"})

    response = token_client(researcher).post(GENERATE, body, format="json")

    assert response.status_code == 400
    assert "IRIs go into 'iri_2afc' or 'iri_cluster' studies" in str(response.json())
    assert Study.objects.filter(slug="api-iris").exists() is False
    assert Job.objects.exists() is False
