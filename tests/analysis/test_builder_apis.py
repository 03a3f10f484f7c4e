"""The study builder over REST: wiring, bad input (400 naming the problem, nothing written) and
the researcher-only rule for every endpoint."""

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient

from elicitation import imaging, stimulus_services
from elicitation.builder_services import PROLIFIC_COMPLETION_URL
from elicitation.defaults import study_texts
from elicitation.models import Batch, ImageSet, SourceImage, Stimulus, Study
from jobs.models import Job
from tests.conftest import start_in_trials, token_client
from tests.factories import CLASSES, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db

SHAPES = ("Circle", "Square")
# Where the refused pickle would have left its mark (protocol 0: os.system("touch ...")).
EXPLOIT_MARKER = "/tmp/hmix-pwned-builder"  # noqa: S108


def _png(value: int, size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (value, 255 - value, 128)).save(out, format="PNG")
    return out.getvalue()


def _zip(files: dict[str, bytes]) -> SimpleUploadedFile:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return SimpleUploadedFile("images.zip", out.getvalue(), content_type="application/zip")


def _images_zip() -> SimpleUploadedFile:
    return _zip(
        {f"{c}/{i}.png": _png(40 * i + 100 * j) for j, c in enumerate(SHAPES) for i in range(3)}
    )


def _image_set(owner: Any, name: str = "pairs") -> ImageSet:
    images = [
        imaging.BaseImage(
            class_name=c, ref=str(i), pixels=np.full((8, 8, 3), 30 * i + 90 * j, np.uint8)
        )
        for j, c in enumerate(SHAPES)
        for i in range(3)
    ]
    return stimulus_services.image_set_create(
        name=name, source=ImageSet.Source.FOLDER, images=images, owner_id=owner.pk
    )


def _draft(owner: Any, **fields: Any) -> Study:
    return StudyFactory(owner=owner, **fields)


def _url(name: str, study: Study | None = None) -> str:
    return reverse(f"api:{name}", kwargs={"slug": study.slug} if study is not None else {})


# ---------------------------------------------------------------------------------------------
# studies
# ---------------------------------------------------------------------------------------------


def test_create_a_draft_study_with_the_default_texts_of_its_interface(researcher: Any) -> None:
    # when
    res = token_client(researcher).post(
        _url("study-list"),
        {"slug": "blends", "title": "Blends", "trial_type": "mixing_factor", "repeats": 1},
        format="json",
    )
    # then
    study = Study.objects.get(slug="blends")
    texts = study_texts("mixing_factor")
    assert res.status_code == 201
    assert res.json()["status"] == "draft"
    assert res.json()["instructions"] == texts["instructions"]
    assert res.json()["settings"] == {"catch_rate": 0.0, "catch_threshold": 80.0}
    assert (study.owner, study.trial_type, study.repeats, study.participants_per_batch) == (
        researcher,
        "mixing_factor",
        1,
        5,
    )
    assert study.comprehension == texts["comprehension"]
    assert study.prolific_completion_url == PROLIFIC_COMPLETION_URL


def test_the_study_list_is_still_a_get_on_the_same_url(researcher: Any) -> None:
    # given
    mine = _draft(researcher)
    _draft(UserFactory(username="other"))
    # when
    res = token_client(researcher).get(_url("study-list"))
    # then
    assert res.status_code == 200
    assert [s["slug"] for s in res.json()] == [mine.slug]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"slug": "taken"}, "slug: Study with this Slug already exists."),
        ({"slug": "not a slug"}, 'slug: Enter a valid "slug"'),
        ({"trial_type": "free_text"}, 'trial_type: "free_text" is not a valid choice.'),
        ({"repeats": 21}, "repeats: Ensure this value is less than or equal to 20."),
        ({"participants_per_batch": 0}, "participants_per_batch: Ensure this value is greater"),
        ({"completion_cod": "X"}, "completion_cod: Unknown field."),
        ({"classes": ["Cat", "Cat"]}, "classes: Class names must be unique."),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(
    researcher: Any, body: dict[str, Any], message: str
) -> None:
    # given
    _draft(researcher, slug="taken")
    # when
    res = token_client(researcher).post(
        _url("study-list"),
        {"slug": "fresh", "title": "T", "trial_type": "categorical", **body},
        format="json",
    )
    # then
    assert res.status_code == 400
    assert res.json()["message"].startswith(message)
    assert list(Study.objects.values_list("slug", flat=True)) == ["taken"]


def test_patch_edits_texts_and_settings(researcher: Any) -> None:
    # given
    study = _draft(researcher, trial_type=Study.TrialType.IRI_2AFC)
    # when
    res = token_client(researcher).patch(
        _url("study-detail", study),
        {
            "consent_html": "<p>New consent.</p>",
            "instructions": [{"title": "Task", "html": "<p>Choose.</p>"}],
            "comprehension": [{"question": "Which?", "options": ["A", "B", "C"], "answer": 2}],
            "debrief_questions": ["Comments?"],
            "completion_code": "DONE-1",
            "completion_url": "https://example.org/done?c={code}",
            "settings": {"catch_rate": 0.25},
        },
        format="json",
    )
    # then
    study.refresh_from_db()
    assert res.status_code == 200
    assert res.json()["settings"] == {"catch_rate": 0.25, "catch_threshold": 80.0}
    assert study.consent_html == "<p>New consent.</p>"
    assert study.instructions == [{"title": "Task", "html": "<p>Choose.</p>"}]
    assert study.comprehension == [{"question": "Which?", "options": ["A", "B", "C"], "answer": 2}]
    assert (study.completion_code, study.completion_url) == (
        "DONE-1",
        "https://example.org/done?c={code}",
    )
    assert study.settings == {"catch_rate": 0.25}


def test_get_on_the_study_url_still_reads_it(researcher: Any) -> None:
    # given
    study = _draft(researcher)
    # when
    res = token_client(researcher).get(_url("study-detail", study))
    # then
    assert res.status_code == 200
    assert res.json()["links"]["completion_code"] == "CODE123"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"comprehension": [{"question": "Q", "options": ["A", "B"], "answer": 2}]},
            400,
            "comprehension: The right answer of question 1 must be one of its 2 options (0 to 1), "
            "got 2.",
        ),
        (
            {"comprehension": [{"question": "Q", "options": ["A"], "answer": 0}]},
            400,
            "comprehension: 0: options: Ensure this field has at least 2 elements.",
        ),
        ({"completion_url": "ftp://x"}, 400, "completion_url: The completion URL must be"),
        ({"settings": {"catch_rate": 2}}, 400, "settings: "),
        ({"title": ""}, 400, "title: This field may not be blank."),
        ({"status": "live"}, 400, "status: Unknown field."),
        (
            {"classes": ["Cat", "Dog"]},
            409,
            "classes can only change while the study is a draft; it is live.",
        ),
        ({"repeats": 5}, 409, "repeats can only change while the study is a draft; it is live."),
        (
            {"trial_type": "iri_2afc"},
            400,
            "trial_type: The trial type cannot change once the study has stimuli.",
        ),
        (
            {"classes": ["Airplane"]},
            400,
            "classes: The study's stimuli use classes ['Cat', 'Dog'], which must stay in the list.",
        ),
    ],
)
def test_patch_refuses_bad_input_and_saves_nothing(
    make_study: Any, body: dict[str, Any], status: int, message: str
) -> None:
    # given a live study
    study = make_study()
    before = Study.objects.filter(id=study.id).values().get()
    # when
    res = token_client(study.owner).patch(
        _url("study-detail", study), {**body, "completion_code": "NEW"}, format="json"
    )
    # then
    assert res.status_code == status
    assert res.json()["message"].startswith(message)
    assert Study.objects.filter(id=study.id).values().get() == before


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------


def _accepted_job(res: Any) -> Job:
    """The job a 202 answer describes, checked against the answer."""
    assert res.status_code == 202, res.content
    job = Job.objects.get(public_id=res.json()["id"])
    assert res["Location"] == f"/api/jobs/{job.public_id}/"
    return job


def _result(client: APIClient, job: Job) -> Any:
    res = client.get(f"/api/jobs/{job.public_id}/download/")
    assert res.status_code == 200
    return json.loads(b"".join(res.streaming_content))


def test_upload_a_zip_of_class_folders(
    researcher: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    client = token_client(researcher)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        res = client.post(
            _url("image-set-list"),
            {"name": "api-shapes", "source": "zip", "zip_file": _images_zip()},
            format="multipart",
        )
    # then the answer is the queued job, which the worker (eager here) has since run
    job = _accepted_job(res)
    assert (res.json()["kind"], res.json()["status"]) == ("image_upload", "pending")
    detail = client.get(f"/api/jobs/{job.public_id}/").json()
    assert (detail["status"], detail["progress"], detail["message"]) == (
        "done",
        1.0,
        "Imported 6 images of 2 classes into 'api-shapes': Circle, Square.",
    )
    assert _result(client, job) == {
        "name": "api-shapes",
        "source": "folder",
        "classes": ["Circle", "Square"],
        "n_images": 6,
    }
    image_set = ImageSet.objects.get(name="api-shapes")
    assert (image_set.owner, image_set.images.count()) == (researcher, 6)


def test_upload_cifar10_batches(researcher: Any, django_capture_on_commit_callbacks: Any) -> None:
    # given
    def batch(name: str, labels: list[int]) -> SimpleUploadedFile:
        data = np.zeros((len(labels), 3072), dtype=np.uint8)
        return SimpleUploadedFile(name, pickle.dumps({b"data": data, b"labels": labels}))

    # when
    with django_capture_on_commit_callbacks(execute=True):
        res = token_client(researcher).post(
            _url("image-set-list"),
            {
                "name": "api-cifar",
                "source": "cifar10",
                "cifar_files": [batch("data_batch_1", [3, 5]), batch("data_batch_2", [3])],
            },
            format="multipart",
        )
    # then
    job = _accepted_job(res)
    job.refresh_from_db()
    assert (job.status, job.params["classes"], job.params["n_images"]) == (
        Job.Status.DONE,
        ["Cat", "Dog"],
        3,
    )
    assert ImageSet.objects.get(name="api-cifar").classes == ["Cat", "Dog"]
    assert sorted(SourceImage.objects.values_list("class_name", "ref")) == [
        ("Cat", "0"),
        ("Cat", "2"),
        ("Dog", "1"),
    ]


def _bad_upload(case: str) -> dict[str, Any]:
    exploit = f"cposix\nsystem\n(S'touch {EXPLOIT_MARKER}'\ntR.".encode()
    return {
        "not an image": {
            "source": "zip",
            "zip_file": _zip({"Circle/0.png": b"text", "Square/0.png": _png(1)}),
        },
        "no images": {"source": "zip", "zip_file": _zip({"readme.txt": b"hello"})},
        "no zip": {"source": "zip"},
        "no batches": {"source": "cifar10"},
        "a pickle that runs code": {
            "source": "cifar10",
            "cifar_files": [SimpleUploadedFile("data_batch_1", exploit)],
        },
        "a taken name": {"name": "taken", "source": "zip", "zip_file": _images_zip()},
    }[case]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not an image", "zip_file: Nothing was imported: Circle/0.png: not a readable image"),
        ("no images", "zip_file: Nothing was imported: zip contains no images"),
        ("no zip", "zip_file: Give the zip file."),
        ("no batches", "cifar_files: Give at least one CIFAR-10 batch file."),
        (
            "a pickle that runs code",
            "cifar_files: Nothing was imported: data_batch_1: not a CIFAR-10 python batch file "
            "(refused to load posix.system)",
        ),
        ("a taken name", "name: Image set with this Name already exists."),
    ],
)
def test_bad_uploads_answer_400_and_store_nothing(researcher: Any, case: str, message: str) -> None:
    # given
    _image_set(UserFactory(username="other"), "taken")
    # when
    res = token_client(researcher).post(
        _url("image-set-list"), {"name": "new", **_bad_upload(case)}, format="multipart"
    )
    # then
    assert res.status_code == 400
    assert res.json()["message"].startswith(message)
    assert list(ImageSet.objects.values_list("name", flat=True)) == ["taken"]
    assert SourceImage.objects.count() == 6
    assert Job.objects.exists() is False
    assert Path(EXPLOIT_MARKER).exists() is False


def test_an_oversized_upload_answers_400(researcher: Any, settings: Any) -> None:
    # given
    settings.HMIX_MAX_UPLOAD_BYTES = 100
    # when
    res = token_client(researcher).post(
        _url("image-set-list"),
        {"name": "big", "source": "zip", "zip_file": _images_zip()},
        format="multipart",
    )
    # then
    assert res.status_code == 400
    assert "is larger than the upload limit of 0.1 KB" in res.json()["message"]
    assert ImageSet.objects.exists() is False
    assert Job.objects.exists() is False


def test_image_sets_lists_yours_and_shared_ones_only(researcher: Any) -> None:
    # given
    _image_set(researcher, "mine")
    _image_set(UserFactory(username="other"), "theirs")
    stimulus_services.image_set_create(
        name="shared", source=ImageSet.Source.DEMO, images=imaging.generate_demo_images(per_class=1)
    )
    # when
    res = token_client(researcher).get(_url("image-set-list"))
    # then
    assert [(s["name"], s["owned"]) for s in res.json()] == [("mine", True), ("shared", False)]


def test_iri_import_into_a_draft_iri_study(researcher: Any) -> None:
    # given
    study = _draft(researcher, trial_type=Study.TrialType.IRI_2AFC)
    manifest = SimpleUploadedFile(
        "manifest.csv",
        b"iri,target,start,model,layer,regime,regulariser,seed\nq.png,t.png,s.png,m,l,r,none,1\n",
    )
    # when
    res = token_client(researcher).post(
        _url("iri-import", study),
        {
            "zip_file": _zip({"q.png": _png(1), "t.png": _png(2), "s.png": _png(3)}),
            "manifest": manifest,
        },
        format="multipart",
    )
    bad = token_client(researcher).post(
        _url("iri-import", study),
        {
            "zip_file": _zip({"q.png": _png(1)}),
            "manifest": SimpleUploadedFile("manifest.txt", b"x"),
        },
        format="multipart",
    )
    # then
    assert (res.status_code, res.json()) == (201, {"created": 1, "total": 1, "keys": ["q.png"]})
    assert (bad.status_code, bad.json()["message"]) == (
        400,
        "manifest: Nothing was imported: manifest.txt: a manifest must be a .csv or .json file",
    )
    assert Stimulus.objects.count() == 1


# ---------------------------------------------------------------------------------------------
# stimuli, batches, status
# ---------------------------------------------------------------------------------------------


def test_generate_mixup_stimuli_from_an_image_set(
    researcher: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    study = _draft(researcher)
    _image_set(researcher)
    client = token_client(researcher)
    body = {"image_set": "pairs", "lambdas": [0.25, 0.5], "n_pairs": 3, "plain_per_class": 1}
    # when the same request is made twice
    with django_capture_on_commit_callbacks(execute=True):
        res = client.post(_url("stimuli-generate", study), body, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(_url("stimuli-generate", study), body, format="json")
    # then each answer is a job of the study; the first made 8 stimuli, the second none
    first, second = _accepted_job(res), _accepted_job(again)
    assert (res.json()["kind"], res.json()["study"]) == ("generate_stimuli", study.slug)
    assert _result(client, first) == {
        "study": study.slug,
        "image_set": "pairs",
        "created": 8,
        "total": 8,
        "classes": ["Circle", "Square"],
        "keys": list(
            Stimulus.objects.filter(study=study).order_by("id").values_list("key", flat=True)
        ),
    }
    assert client.get(f"/api/jobs/{second.public_id}/").json()["message"] == (
        "Generated 0 new stimuli (8 in total)."
    )
    assert sorted(study.stimuli.values_list("kind", flat=True)) == ["mixed"] * 6 + ["plain"] * 2


def test_generate_midpoint_series(researcher: Any, django_capture_on_commit_callbacks: Any) -> None:
    # given
    study = _draft(researcher, trial_type=Study.TrialType.SELECT_MIDPOINT)
    _image_set(researcher)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        res = token_client(researcher).post(
            _url("stimuli-generate", study), {"image_set": "pairs", "n_pairs": 2}, format="json"
        )
    # then
    job = _accepted_job(res)
    job.refresh_from_db()
    assert (job.status, job.message) == (Job.Status.DONE, "Generated 2 new stimuli (2 in total).")
    assert set(study.stimuli.values_list("kind", flat=True)) == {"series"}


def test_the_generation_request_returns_before_any_stimulus_is_made(
    researcher: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    study = _draft(researcher)
    _image_set(researcher)
    # when the queued task is held back
    with django_capture_on_commit_callbacks(execute=False) as queued:
        res = token_client(researcher).post(
            _url("stimuli-generate", study),
            {"image_set": "pairs", "lambdas": [0.5], "n_pairs": 2},
            format="json",
        )
    # then
    job = _accepted_job(res)
    assert (res.json()["status"], res.json()["progress"], len(queued)) == ("pending", 0.0, 1)
    assert job.params == {
        "image_set": "pairs",
        "image_set_id": ImageSet.objects.get(name="pairs").id,
        "n_pairs": 2,
        "lambdas": [0.5],
        "plain_per_class": 0,
        "seed": 0,
        "planned": 2,
    }
    assert Stimulus.objects.exists() is False


def test_another_researcher_cannot_see_a_builder_job(
    researcher: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    study = _draft(researcher)
    _image_set(researcher)
    with django_capture_on_commit_callbacks(execute=True):
        res = token_client(researcher).post(
            _url("stimuli-generate", study),
            {"image_set": "pairs", "lambdas": [0.5], "n_pairs": 1},
            format="json",
        )
    job = _accepted_job(res)
    stranger = token_client(UserFactory(username="stranger"))
    # when
    detail = stranger.get(f"/api/jobs/{job.public_id}/")
    download = stranger.get(f"/api/jobs/{job.public_id}/download/")
    anonymous = APIClient().get(f"/api/jobs/{job.public_id}/")
    # then
    assert (detail.status_code, download.status_code, anonymous.status_code) == (404, 404, 401)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"lambdas": [0.5, 1.2]}, "lambdas: 1: Ensure this value is less than or equal to 1."),
        ({"lambdas": []}, "lambdas: Give at least one λ."),
        ({"lambdas": [0.5, 0.5]}, "lambdas: The λ grid lists the same value twice."),
        ({"n_pairs": 50}, "n_pairs: not enough images for 50 distinct pairs"),
        ({"n_pairs": 0}, "n_pairs: Ensure this value is greater than or equal to 1."),
        ({"image_set": "theirs"}, "image_set: No image set 'theirs' that you can use."),
        ({"image_set": "nope"}, "image_set: No image set 'nope' that you can use."),
        ({"lamdbas": [0.5]}, "lamdbas: Unknown field."),
    ],
)
def test_generate_refuses_bad_input_and_writes_nothing(
    researcher: Any, body: dict[str, Any], message: str
) -> None:
    # given
    study = _draft(researcher)
    _image_set(researcher)
    _image_set(UserFactory(username="other"), "theirs")
    # when
    res = token_client(researcher).post(
        _url("stimuli-generate", study),
        {"image_set": "pairs", "lambdas": [0.5], "n_pairs": 1, **body},
        format="json",
    )
    # then
    study.refresh_from_db()
    assert res.status_code == 400
    assert res.json()["message"].startswith(message)
    assert Stimulus.objects.exists() is False
    assert Job.objects.exists() is False
    assert study.classes == CLASSES


def test_generate_is_refused_once_the_study_is_live(make_study: Any) -> None:
    # given
    study = make_study()
    _image_set(study.owner)
    # when
    res = token_client(study.owner).post(
        _url("stimuli-generate", study),
        {"image_set": "pairs", "lambdas": [0.5], "n_pairs": 1},
        format="json",
    )
    # then
    assert res.status_code == 409
    assert res.json()["message"] == (
        "Stimuli can be generated only while the study is a draft; it is live."
    )
    assert study.stimuli.count() == 4
    assert Job.objects.exists() is False


def test_build_batches_then_launch(
    researcher: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given a draft with 5 stimuli
    study = _draft(researcher)
    _image_set(researcher)
    client = token_client(researcher)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            _url("stimuli-generate", study),
            {"image_set": "pairs", "lambdas": [0.5], "n_pairs": 5},
            format="json",
        )
    # when
    batches = client.post(
        _url("batches", study), {"batch_size": 2, "participants_per_batch": 4}, format="json"
    )
    launched = client.post(_url("status", study), {"status": "live"}, format="json")
    paused = client.post(_url("status", study), {"status": "paused"}, format="json")
    # then
    study.refresh_from_db()
    assert (batches.status_code, batches.json()) == (
        201,
        [
            {"number": 1, "size": 2, "target": 4},
            {"number": 2, "size": 2, "target": 4},
            {"number": 3, "size": 1, "target": 4},
        ],
    )
    assert (launched.status_code, launched.json()["status"]) == (200, "live")
    assert (paused.status_code, study.status) == (200, Study.Status.PAUSED)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"batch_size": 0}, "batch_size: Ensure this value is greater than or equal to 1."),
        ({"batch_size": 2}, "batch_size: The study has no stimuli yet: generate them first."),
    ],
)
def test_batches_refuse_bad_input(researcher: Any, body: dict[str, Any], message: str) -> None:
    # given
    study = _draft(researcher)
    # when
    res = token_client(researcher).post(_url("batches", study), body, format="json")
    # then
    assert (res.status_code, res.json()["message"]) == (400, message)
    assert Batch.objects.exists() is False


def test_batches_are_not_rebuilt_once_participants_hold_them(make_study: Any) -> None:
    # given
    study = make_study()
    start_in_trials(study, "PID1")
    before = list(Batch.objects.values_list("id", flat=True))
    # when
    res = token_client(study.owner).post(_url("batches", study), {"batch_size": 4}, format="json")
    # then
    assert (res.status_code, res.json()["message"]) == (
        409,
        "Batches cannot be rebuilt once participants have consented to the study.",
    )
    assert list(Batch.objects.values_list("id", flat=True)) == before


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"status": "live"},
            409,
            "The study cannot go live yet: Build the batches (the Batches step). No batches yet.",
        ),
        ({"status": "draft"}, 409, "The study is already draft."),
        ({"status": "paused"}, 409, "A draft study cannot be paused: launch it first."),
        ({}, 400, "status: This field is required."),
    ],
)
def test_status_refuses(researcher: Any, body: dict[str, Any], status: int, message: str) -> None:
    # given
    study = _draft(researcher)
    # when
    res = token_client(researcher).post(_url("status", study), body, format="json")
    # then
    study.refresh_from_db()
    assert (res.status_code, res.json()["message"]) == (status, message)
    assert study.status == Study.Status.DRAFT
    assert study.transitions.exists() is False


# ---------------------------------------------------------------------------------------------
# the researcher-only rule
# ---------------------------------------------------------------------------------------------

STUDY_ENDPOINTS = [
    ("patch", "study-detail", {"completion_code": "HACKED"}, "json"),
    ("post", "stimuli-generate", {"image_set": "pairs", "lambdas": [0.5], "n_pairs": 1}, "json"),
    ("post", "batches", {"batch_size": 1, "participants_per_batch": 99}, "json"),
    ("post", "status", {"status": "closed"}, "json"),
    ("post", "iri-import", {}, "multipart"),
]


@pytest.mark.parametrize(("method", "name", "body", "fmt"), STUDY_ENDPOINTS)
def test_another_researcher_gets_403_and_changes_nothing(
    make_study: Any, method: str, name: str, body: dict[str, Any], fmt: str
) -> None:
    # given
    study = make_study()
    stranger = UserFactory(username="stranger")
    _image_set(stranger)
    before = Study.objects.filter(id=study.id).values().get()
    batches = list(Batch.objects.values_list("id", "target"))
    # when
    res = getattr(token_client(stranger), method)(_url(name, study), body, format=fmt)
    # then
    assert (res.status_code, res.json()["message"]) == (
        403,
        "You are not a researcher of this study.",
    )
    assert Study.objects.filter(id=study.id).values().get() == before
    assert list(Batch.objects.values_list("id", "target")) == batches
    assert study.stimuli.count() == 4
    assert Job.objects.exists() is False


@pytest.mark.parametrize(
    ("method", "name", "slug"),
    [
        ("post", "study-list", False),
        ("post", "image-set-list", False),
        ("get", "image-set-list", False),
        *[(method, name, True) for method, name, _, _ in STUDY_ENDPOINTS],
    ],
)
def test_anonymous_callers_get_401(make_study: Any, method: str, name: str, slug: bool) -> None:
    # given
    study = make_study()
    # when
    res = getattr(APIClient(), method)(_url(name, study if slug else None), {}, format="json")
    # then
    assert res.status_code == 401
    assert Study.objects.count() == 1
