"""The study builder pages: each step's happy path, its refusals (with nothing written), the
upload checks, the researcher-only rule, and a preview that records nothing."""

import io
import json
import pickle
import struct
import uuid
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, TestCase
from django.urls import reverse
from PIL import Image, ImageDraw

from elicitation import services
from elicitation.builder_services import PROLIFIC_COMPLETION_URL
from elicitation.defaults import study_texts
from elicitation.models import (
    Batch,
    ComprehensionAttempt,
    ImageSet,
    Participant,
    Response,
    SourceImage,
    Stimulus,
    StimulusImage,
    Study,
    Trial,
)
from jobs.models import Job
from tests.conftest import start_in_trials
from tests.factories import CLASSES, StudyFactory, UserFactory
from tests.iri_fixtures import iri_sets_create, iri_stimuli_create, iri_study_create

pytestmark = pytest.mark.django_db

SHAPE_CLASSES = ("Circle", "Square", "Triangle")
MANIFEST_HEADER = b"iri,target,start,model,layer,regime,regulariser,seed\n"


def _logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _drawing(class_name: str, index: int, size: int = 16) -> bytes:
    image = Image.new("RGB", (size, size), (255, 255, 255 - 40 * index))
    draw = ImageDraw.Draw(image)
    box = (3, 3, size - 4, size - 4)
    if class_name == "Circle":
        draw.ellipse(box, fill=(200, 30, 30))
    elif class_name == "Square":
        draw.rectangle(box, fill=(30, 30, 200))
    else:
        draw.polygon([(size // 2, 2), (size - 3, size - 3), (2, size - 3)], fill=(30, 160, 30))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def _shapes_zip(per_class: int = 2) -> bytes:
    return _zip(
        {f"{c}/{c.lower()}{i}.png": _drawing(c, i) for c in SHAPE_CLASSES for i in range(per_class)}
    )


def _png_bomb(side: int = 20_000) -> bytes:
    """A real decompression bomb: a valid 1-bit PNG of side² pixels (50 MB decoded at 20,000)
    whose zlib stream of zeros is a few tens of kilobytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _cifar_batch(labels: list[int], seed: int = 0) -> bytes:
    data = np.random.default_rng(seed).integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    return pickle.dumps({b"batch_label": b"test", b"labels": labels, b"data": data}, protocol=2)


class _Exploit:
    """Unpickling this would run a command: the CIFAR upload must refuse it unrun."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, (f"touch {self.marker}",))


def _upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def _url(name: str, study: Study) -> str:
    return reverse(f"dashboard:{name}", kwargs={"slug": study.slug})


def _preview_url(name: str, study: Study) -> str:
    return reverse(f"builder-preview:{name}", kwargs={"slug": study.slug})


def _draft(researcher: Any, **fields: Any) -> Study:
    fields.setdefault("trial_type", Study.TrialType.CATEGORICAL)
    return StudyFactory(owner=researcher, **fields)


def _jobs_run() -> Any:
    """Runs the on-commit callbacks of the block when it ends: the builder's jobs (eager
    Celery tasks here) are queued on commit, which a test's transaction never reaches."""
    return TestCase.captureOnCommitCallbacks(execute=True)


def _image_set(researcher: Any, name: str = "shapes") -> ImageSet:
    with _jobs_run():
        _logged_in(researcher).post(
            _url("build-images", _draft(researcher, slug=f"upload-{name}")),
            {"name": name, "source": "zip", "zip_file": _upload("shapes.zip", _shapes_zip())},
        )
    return ImageSet.objects.get(name=name)


def _job_page(response: Any, study: Study) -> tuple[Job, str]:
    """The job a builder form redirected to, and its page as rendered now."""
    assert response.status_code == 302
    job = Job.objects.order_by("-id").first()
    assert job is not None
    assert response["Location"] == f"/dashboard/studies/{study.slug}/build/jobs/{job.public_id}/"
    page = _logged_in(job.owner).get(response["Location"])
    assert page.status_code == 200
    return job, page.content.decode().replace("&#x27;", "'")


def _errors(response: Any) -> str:
    return response.content.decode()


# ---------------------------------------------------------------------------------------------
# new study
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("trial_type", [Study.TrialType.CATEGORICAL, Study.TrialType.IRI_2AFC])
def test_new_study_is_a_draft_with_the_default_texts_of_its_interface(
    researcher: Any, trial_type: str
) -> None:
    # given
    client = _logged_in(researcher)
    # when
    res = client.post(
        reverse("dashboard:study-new"),
        {
            "title": "Shapes",
            "slug": "shapes",
            "trial_type": trial_type,
            "participants_per_batch": 4,
            "repeats": 1,
        },
    )
    # then
    study = Study.objects.get(slug="shapes")
    texts = study_texts(trial_type)
    assert res.status_code == 302
    assert res["Location"] == "/dashboard/studies/shapes/build/"
    assert (study.owner, study.status, study.trial_type, study.title) == (
        researcher,
        Study.Status.DRAFT,
        trial_type,
        "Shapes",
    )
    assert (study.participants_per_batch, study.repeats) == (4, 1)
    assert study.classes == []
    assert study.consent_html == texts["consent_html"]
    assert study.instructions == texts["instructions"]
    assert study.comprehension == texts["comprehension"]
    assert study.debrief_questions == texts["debrief_questions"]
    assert (study.completion_code, study.prolific_completion_url) == ("", PROLIFIC_COMPLETION_URL)


def test_the_study_list_links_to_a_new_study_and_the_study_page_to_its_builder(
    researcher: Any,
) -> None:
    # given
    study = _draft(researcher)
    client = _logged_in(researcher)
    # when
    listing = client.get(reverse("dashboard:studies")).content.decode()
    page = client.get(_url("study", study)).content.decode()
    # then
    assert 'href="/dashboard/new/" id="new-study"' in listing
    assert f'href="/dashboard/studies/{study.slug}/build/" id="edit-study"' in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"slug": "taken"}, "Study with this Slug already exists."),
        ({"slug": "not a slug"}, "Enter a valid “slug”"),
        ({"trial_type": "free_text"}, "Select a valid choice. free_text is not one of"),
        ({"participants_per_batch": 0}, "Ensure this value is greater than or equal to 1."),
        ({"repeats": 21}, "Ensure this value is less than or equal to 20."),
    ],
)
def test_new_study_refuses_bad_input_and_writes_nothing(
    researcher: Any, data: dict[str, Any], message: str
) -> None:
    # given
    _draft(researcher, slug="taken")
    form = {
        "title": "Shapes",
        "slug": "fresh",
        "trial_type": "categorical",
        "participants_per_batch": 4,
        "repeats": 2,
        **data,
    }
    # when
    res = _logged_in(researcher).post(reverse("dashboard:study-new"), form)
    # then
    assert res.status_code == 400
    assert message in _errors(res)
    assert list(Study.objects.values_list("slug", flat=True)) == ["taken"]


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------


def test_a_zip_of_class_folders_becomes_an_image_set_of_the_researcher(researcher: Any) -> None:
    # given
    study = _draft(researcher)
    # when the zip is posted (its job runs when the request commits)
    with _jobs_run():
        res = _logged_in(researcher).post(
            _url("build-images", study),
            {"name": "shapes", "source": "zip", "zip_file": _upload("shapes.zip", _shapes_zip())},
        )
    # then the page of its job says what was imported and links to the stimuli step
    job, page = _job_page(res, study)
    image_set = ImageSet.objects.get(name="shapes")
    assert (job.kind, job.status, job.progress) == (Job.Kind.IMAGE_UPLOAD, Job.Status.DONE, 1.0)
    assert job.message == (
        "Imported 6 images of 3 classes into 'shapes': Circle, Square, Triangle."
    )
    assert job.message in page
    assert f'href="/dashboard/studies/{study.slug}/build/stimuli/?image_set=shapes"' in page
    assert (image_set.owner, image_set.source, image_set.classes) == (
        researcher,
        ImageSet.Source.FOLDER,
        list(SHAPE_CLASSES),
    )
    assert sorted(image_set.images.values_list("class_name", "ref")) == [
        ("Circle", "circle0"),
        ("Circle", "circle1"),
        ("Square", "square0"),
        ("Square", "square1"),
        ("Triangle", "triangle0"),
        ("Triangle", "triangle1"),
    ]


def test_the_upload_request_returns_before_any_image_is_stored(researcher: Any) -> None:
    # given
    study = _draft(researcher)
    # when the request's on-commit callbacks (the queued task) are held back
    with TestCase.captureOnCommitCallbacks(execute=False) as queued:
        res = _logged_in(researcher).post(
            _url("build-images", study),
            {"name": "shapes", "source": "zip", "zip_file": _upload("shapes.zip", _shapes_zip())},
        )
    # then the job is pending with its zip stored, and no image set exists yet
    job, page = _job_page(res, study)
    assert (job.status, job.progress, len(queued)) == (Job.Status.PENDING, 0.0, 1)
    assert job.upload.name == f"jobs/{job.public_id}/images.zip"
    assert job.params["classes"] == list(SHAPE_CLASSES)
    assert 'data-status="pending"' in page
    assert ImageSet.objects.exists() is False
    assert SourceImage.objects.exists() is False


def test_cifar10_batches_with_their_meta_become_an_image_set(researcher: Any) -> None:
    # given
    study = _draft(researcher)
    meta = pickle.dumps({b"label_names": [b"cat", b"dog"]}, protocol=2)
    # when
    with _jobs_run():
        res = _logged_in(researcher).post(
            _url("build-images", study),
            {
                "name": "cifar-mini",
                "source": "cifar10",
                "cifar_files": [
                    _upload("data_batch_1", _cifar_batch([0, 1, 0])),
                    _upload("data_batch_2", _cifar_batch([1, 1], seed=1)),
                ],
                "cifar_meta": _upload("batches.meta", meta),
                "limit_per_class": 2,
            },
        )
    # then
    job, _ = _job_page(res, study)
    image_set = ImageSet.objects.get(name="cifar-mini")
    assert job.status == Job.Status.DONE
    assert (image_set.source, image_set.classes) == (ImageSet.Source.CIFAR10, ["Cat", "Dog"])
    assert sorted(image_set.images.values_list("class_name", "ref")) == [
        ("Cat", "0"),
        ("Cat", "2"),
        ("Dog", "1"),
        ("Dog", "3"),
    ]


def _bad_uploads(tmp_path: Path) -> dict[str, tuple[dict[str, Any], str]]:
    marker = tmp_path / "pwned"
    return {
        "not an image": (
            {
                "zip_file": _upload(
                    "x.zip", _zip({"Cat/a.png": b"hello", "Dog/b.png": _drawing("Square", 0)})
                )
            },
            "Nothing was imported: Cat/a.png: not a readable image (supported: PNG, JPEG, BMP, "
            "WEBP)",
        ),
        "not a zip": (
            {"zip_file": _upload("x.zip", b"just text")},
            "Nothing was imported: x.zip: not a readable zip file",
        ),
        "decompression bomb": (
            {
                "zip_file": _upload(
                    "bomb.zip",
                    _zip({"Cat/bomb.png": _png_bomb(), "Dog/b.png": _drawing("Square", 0)}),
                )
            },
            "Nothing was imported: Cat/bomb.png: refused as a decompression bomb (Image size "
            "(400000000 pixels) exceeds limit of 178956970 pixels",
        ),
        "an image over the pixel limit": (
            {
                "zip_file": _upload(
                    "big.zip",
                    _zip({"Cat/big.png": _png_bomb(5000), "Dog/b.png": _drawing("Square", 0)}),
                )
            },
            "Nothing was imported: Cat/big.png: 5000x5000 = 25000000 pixels exceeds the limit of "
            "16777216 (possible decompression bomb)",
        ),
        "zip-slip": (
            {"zip_file": _upload("x.zip", _zip({"../Cat/a.png": _drawing("Circle", 0)}))},
            "Nothing was imported: ../Cat/a.png: unsafe path in zip (zip-slip)",
        ),
        "a pickle that runs code": (
            {
                "source": "cifar10",
                "cifar_files": [_upload("data_batch_1", pickle.dumps(_Exploit(marker)))],
            },
            "Nothing was imported: data_batch_1: not a CIFAR-10 python batch file (refused to "
            "load posix.system)",
        ),
        "a CIFAR batch that is not one": (
            {"source": "cifar10", "cifar_files": [_upload("data_batch_1", b"\x80\x02garbage")]},
            "Nothing was imported: data_batch_1: not a CIFAR-10 python batch file",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not an image",
        "not a zip",
        "decompression bomb",
        "an image over the pixel limit",
        "zip-slip",
        "a pickle that runs code",
        "a CIFAR batch that is not one",
    ],
)
def test_bad_uploads_are_refused_with_a_clear_message_and_nothing_is_stored(
    researcher: Any, tmp_path: Path, case: str
) -> None:
    # given
    study = _draft(researcher)
    fields, message = _bad_uploads(tmp_path)[case]
    # when
    res = _logged_in(researcher).post(
        _url("build-images", study), {"name": "bad", "source": "zip", **fields}
    )
    # then
    assert res.status_code == 400
    assert message in _errors(res).replace("&#x27;", "'")
    assert ImageSet.objects.exists() is False
    assert SourceImage.objects.exists() is False
    assert Job.objects.exists() is False
    assert (tmp_path / "pwned").exists() is False


def test_an_upload_over_the_size_limit_is_refused(researcher: Any, settings: Any) -> None:
    # given
    settings.HMIX_MAX_UPLOAD_BYTES = 1024
    study = _draft(researcher)
    data = _shapes_zip(per_class=4)
    # when
    res = _logged_in(researcher).post(
        _url("build-images", study),
        {"name": "big", "source": "zip", "zip_file": _upload("big.zip", data)},
    )
    # then
    assert res.status_code == 400
    assert (
        f"Nothing was imported: big.zip: {len(data) / 1024:.1f} KB is larger than the upload "
        "limit of 1.0 KB"
    ) in _errors(res)
    assert ImageSet.objects.exists() is False


def test_an_upload_over_the_total_pixel_limit_is_refused(researcher: Any, settings: Any) -> None:
    # given six 16x16 images: 1536 pixels
    settings.HMIX_MAX_UPLOAD_TOTAL_PIXELS = 1000
    study = _draft(researcher)
    # when
    res = _logged_in(researcher).post(
        _url("build-images", study),
        {"name": "many", "source": "zip", "zip_file": _upload("many.zip", _shapes_zip())},
    )
    # then
    assert res.status_code == 400
    assert "the zip&#x27;s images have more than 1000 pixels in total" in _errors(res)
    assert ImageSet.objects.exists() is False


def test_an_image_set_name_in_use_is_refused(researcher: Any) -> None:
    # given
    _image_set(researcher, "shapes")
    study = _draft(researcher)
    # when
    res = _logged_in(researcher).post(
        _url("build-images", study),
        {"name": "shapes", "source": "zip", "zip_file": _upload("s.zip", _shapes_zip())},
    )
    # then
    assert res.status_code == 400
    assert "Image set with this Name already exists." in _errors(res)
    assert SourceImage.objects.count() == 6


def test_an_iri_zip_and_manifest_become_the_studys_stimuli(researcher: Any) -> None:
    # given
    study = _draft(researcher, trial_type=Study.TrialType.IRI_2AFC)
    files = {name: _drawing("Circle", i % 3) for i, name in enumerate(["q.png", "t.png", "s.png"])}
    manifest = (
        b"iri,target,start,model,layer,regime,regulariser,seed\nq.png,t.png,s.png,m,l,r,none,1\n"
    )
    # when
    res = _logged_in(researcher).post(
        _url("build-images", study),
        {
            "zip_file": _upload("iri.zip", _zip(files)),
            "manifest": _upload("manifest.csv", manifest),
            "seed": 0,
        },
    )
    # then
    assert res.status_code == 302
    assert list(study.stimuli.values_list("key", "kind")) == [("q.png", Stimulus.Kind.IRI)]
    assert StimulusImage.objects.count() == 3


def test_an_iri_manifest_with_problems_imports_nothing_and_lists_them(researcher: Any) -> None:
    # given
    study = _draft(researcher, trial_type=Study.TrialType.IRI_2AFC)
    manifest = MANIFEST_HEADER + b"q.png,t.png,gone.png,m,l,r,maybe,1\n"
    # when
    res = _logged_in(researcher).post(
        _url("build-images", study),
        {
            "zip_file": _upload(
                "iri.zip", _zip({"q.png": _drawing("Circle", 0), "t.png": _drawing("Square", 0)})
            ),
            "manifest": _upload("manifest.csv", manifest),
            "seed": 0,
        },
    )
    # then
    page = _errors(res).replace("&#x27;", "'")
    assert res.status_code == 400
    assert "Nothing was imported: 2 problem(s)." in page
    assert "gone.png" in page
    assert "maybe" in page
    assert Stimulus.objects.exists() is False


# ---------------------------------------------------------------------------------------------
# stimuli
# ---------------------------------------------------------------------------------------------


def test_mixup_stimuli_from_an_image_set_with_plain_images(researcher: Any) -> None:
    # given
    image_set = _image_set(researcher)
    study = _draft(researcher)
    client = _logged_in(researcher)
    # when
    with _jobs_run():
        res = client.post(
            _url("build-stimuli", study),
            {
                "image_set": image_set.name,
                "lambdas": "0.25, 0.75",
                "n_pairs": 3,
                "plain_per_class": 1,
                "seed": 0,
            },
        )
    # then
    job, page = _job_page(res, study)
    study.refresh_from_db()
    kinds = sorted(study.stimuli.values_list("kind", "lam"), key=str)
    assert (job.kind, job.status, job.study_id) == (
        Job.Kind.GENERATE_STIMULI,
        Job.Status.DONE,
        study.id,
    )
    assert study.classes == list(SHAPE_CLASSES)
    assert kinds.count((Stimulus.Kind.MIXED, 0.25)) == 3
    assert kinds.count((Stimulus.Kind.MIXED, 0.75)) == 3
    assert kinds.count((Stimulus.Kind.PLAIN, None)) == 3
    assert "Generated 9 new stimuli (9 in total)." in page
    assert f'href="/dashboard/studies/{study.slug}/build/stimuli/" id="job-next"' in page
    stimuli_page = _errors(client.get(_url("build-stimuli", study)))
    assert stimuli_page.count('title="mixed_') + stimuli_page.count('title="plain_') == 8


def test_the_builder_shows_the_uploaded_classes_not_a_default_list(researcher: Any) -> None:
    # given: a new study, and an upload of shapes
    client = _logged_in(researcher)
    client.post(
        reverse("dashboard:study-new"),
        {"title": "Shapes", "slug": "shapes", "trial_type": "categorical", "repeats": 1}
        | {"participants_per_batch": 3},
    )
    study = Study.objects.get(slug="shapes")
    image_set = _image_set(researcher)
    # when
    overview = _errors(client.get(_url("build", study)))
    stimuli = _errors(client.get(f"{_url('build-stimuli', study)}?image_set={image_set.name}"))
    with _jobs_run():
        client.post(
            _url("build-stimuli", study),
            {"image_set": image_set.name, "lambdas": "0.5", "n_pairs": 2, "seed": 0},
        )
    overview_after = _errors(client.get(_url("build", study)))
    stimuli_after = _errors(client.get(_url("build-stimuli", study)))
    # then: before the stimuli, the classes to come; after, the study's; CIFAR-10's never
    shapes = ", ".join(SHAPE_CLASSES)
    assert '<dd id="summary-classes">(set by the first stimuli)</dd>' in overview
    assert (
        f'<p id="classes-to-come">The first stimuli give the study the classes of '
        f"<code>shapes</code>: <strong>{shapes}</strong>.</p>"
    ) in stimuli
    assert f'<dd id="summary-classes">{shapes}</dd>' in overview_after
    assert f'<span id="study-classes">{shapes}</span>' in stimuli_after
    assert "classes-to-come" not in stimuli_after
    for page in (overview, stimuli, overview_after, stimuli_after):
        assert "Airplane" not in page


def test_the_stimuli_page_links_to_a_generation_still_running(researcher: Any) -> None:
    # given a generation queued but not run
    image_set = _image_set(researcher)
    study = _draft(researcher)
    client = _logged_in(researcher)
    with TestCase.captureOnCommitCallbacks(execute=False):
        res = client.post(
            _url("build-stimuli", study),
            {"image_set": image_set.name, "lambdas": "0.5", "n_pairs": 2, "seed": 0},
        )
    # when
    page = _errors(client.get(_url("build-stimuli", study)))
    # then
    assert f'<a href="{res["Location"]}">follow its progress' in page
    assert Stimulus.objects.exists() is False


def test_a_generation_that_fails_in_the_worker_shows_why_and_writes_nothing(
    researcher: Any,
) -> None:
    # given a generation queued while the study was a draft
    image_set = _image_set(researcher)
    study = _draft(researcher)
    with TestCase.captureOnCommitCallbacks(execute=False) as queued:
        res = _logged_in(researcher).post(
            _url("build-stimuli", study),
            {"image_set": image_set.name, "lambdas": "0.5", "n_pairs": 2, "seed": 0},
        )
    # when the study is launched before the worker runs the job
    Study.objects.filter(id=study.id).update(status=Study.Status.LIVE)
    for callback in queued:
        callback()
    # then
    job, page = _job_page(res, study)
    assert job.status == Job.Status.FAILED
    assert job.error == (
        "Nothing was generated: Stimuli can be generated only while the study is a draft; "
        "it is live."
    )
    assert job.error in page
    assert Stimulus.objects.exists() is False


def test_a_job_page_is_only_for_its_owner_and_its_study(researcher: Any) -> None:
    # given
    image_set = _image_set(researcher)
    study = _draft(researcher)
    with _jobs_run():
        res = _logged_in(researcher).post(
            _url("build-stimuli", study),
            {"image_set": image_set.name, "lambdas": "0.5", "n_pairs": 1, "seed": 0},
        )
    job = Job.objects.get(kind=Job.Kind.GENERATE_STIMULI)
    other_study = _draft(researcher, slug="other-draft")
    # when
    stranger = _logged_in(UserFactory(username="stranger")).get(res["Location"])
    wrong_study = _logged_in(researcher).get(
        reverse("dashboard:build-job", kwargs={"slug": other_study.slug, "job_id": job.public_id})
    )
    anonymous = Client().get(res["Location"])
    # then
    assert stranger.status_code == 403
    assert wrong_study.status_code == 404
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    "trial_type", [Study.TrialType.CONSTRUCT_MIDPOINT, Study.TrialType.SELECT_MIDPOINT]
)
def test_midpoint_series_from_an_image_set(researcher: Any, trial_type: str) -> None:
    # given
    image_set = _image_set(researcher)
    study = _draft(researcher, trial_type=trial_type)
    # when
    with _jobs_run():
        res = _logged_in(researcher).post(
            _url("build-stimuli", study), {"image_set": image_set.name, "n_pairs": 2, "seed": 0}
        )
    # then
    job, page = _job_page(res, study)
    assert job.status == Job.Status.DONE
    assert "Generated 2 new stimuli (2 in total)." in page
    assert list(study.stimuli.values_list("kind", flat=True)) == [Stimulus.Kind.SERIES] * 2
    assert StimulusImage.objects.filter(stimulus__study=study, role="step").count() == 22


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lambdas": "0.5, 1.5"}, "λ = 1.5 is outside 0 to 1."),
        ({"lambdas": "0.5, half"}, "&#x27;half&#x27; is not a number."),
        ({"lambdas": " , "}, "Give at least one λ"),
        ({"lambdas": "0.5, 0.50"}, "The λ grid lists the same value twice."),
        ({"n_pairs": 0}, "Ensure this value is greater than or equal to 1."),
        ({"n_pairs": 40}, "not enough images for 40 distinct pairs"),
        ({"image_set": "nope"}, "Select a valid choice."),
    ],
)
def test_stimulus_generation_refuses_bad_input_and_writes_nothing(
    researcher: Any, data: dict[str, Any], message: str
) -> None:
    # given
    image_set = _image_set(researcher)
    study = _draft(researcher)
    form = {"image_set": image_set.name, "lambdas": "0.5", "n_pairs": 2, "seed": 0, **data}
    # when
    res = _logged_in(researcher).post(_url("build-stimuli", study), form)
    # then
    study.refresh_from_db()
    assert res.status_code == 400
    assert message in _errors(res)
    assert Stimulus.objects.exists() is False
    assert Job.objects.filter(kind=Job.Kind.GENERATE_STIMULI).exists() is False
    assert study.classes == CLASSES


def test_another_researchers_image_set_cannot_be_used(researcher: Any) -> None:
    # given
    theirs = _image_set(UserFactory(username="other"), "theirs")
    study = _draft(researcher)
    # when
    res = _logged_in(researcher).post(
        _url("build-stimuli", study),
        {"image_set": theirs.name, "lambdas": "0.5", "n_pairs": 1, "seed": 0},
    )
    # then
    assert res.status_code == 400
    assert "Select a valid choice." in _errors(res)
    assert Stimulus.objects.exists() is False


def test_stimuli_are_only_generated_while_the_study_is_a_draft(
    researcher: Any, make_image_study: Callable[..., Study]
) -> None:
    # given
    study = make_image_study()
    image_set = ImageSet.objects.get(name="test-shapes")
    before = study.stimuli.count()
    # when
    res = _logged_in(researcher).post(
        _url("build-stimuli", study),
        {"image_set": image_set.name, "lambdas": "0.5", "n_pairs": 1, "seed": 5},
    )
    # then
    assert res.status_code == 400
    assert "Stimuli can be generated only while the study is a draft; it is live." in _errors(res)
    assert study.stimuli.count() == before


# ---------------------------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------------------------


def _study_with_stimuli(researcher: Any, n_pairs: int = 5) -> Study:
    image_set = _image_set(researcher)
    study = _draft(researcher)
    with _jobs_run():
        _logged_in(researcher).post(
            _url("build-stimuli", study),
            {"image_set": image_set.name, "lambdas": "0.5", "n_pairs": n_pairs, "seed": 0},
        )
    study.refresh_from_db()
    assert study.stimuli.count() == n_pairs
    return study


def test_batches_split_the_stimuli_for_the_participants_per_batch(researcher: Any) -> None:
    # given
    study = _study_with_stimuli(researcher)
    # when
    res = _logged_in(researcher).post(
        _url("build-batches", study), {"batch_size": 2, "participants_per_batch": 7, "seed": 0}
    )
    # then
    study.refresh_from_db()
    assert res.status_code == 302
    assert study.participants_per_batch == 7
    assert [(b.number, b.items.count(), b.target) for b in study.batches.all()] == [
        (1, 2, 7),
        (2, 2, 7),
        (3, 1, 7),
    ]


def test_batches_need_stimuli(researcher: Any) -> None:
    # given
    study = _draft(researcher)
    # when
    res = _logged_in(researcher).post(
        _url("build-batches", study), {"batch_size": 2, "participants_per_batch": 7, "seed": 0}
    )
    # then
    study.refresh_from_db()
    assert res.status_code == 400
    assert "The study has no stimuli yet: generate them first." in _errors(res)
    assert Batch.objects.exists() is False
    assert study.participants_per_batch == 3


def test_batches_are_not_rebuilt_once_participants_hold_them(
    make_study: Callable[..., Study],
) -> None:
    # given
    study = make_study(n_stimuli=4, batch_size=2)
    start_in_trials(study, "PID1")
    before = list(study.batches.values_list("id", "target"))
    # when
    res = _logged_in(study.owner).post(
        _url("build-batches", study), {"batch_size": 4, "participants_per_batch": 9, "seed": 0}
    )
    # then
    study.refresh_from_db()
    assert res.status_code == 400
    assert (
        "participants_per_batch can no longer change: participants have consented to the study."
        in _errors(res)
    )
    assert list(study.batches.values_list("id", "target")) == before
    assert study.participants_per_batch == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"batch_size": 0}, "Ensure this value is greater than or equal to 1."),
        ({"participants_per_batch": ""}, "This field is required."),
    ],
)
def test_batches_refuse_bad_numbers(researcher: Any, data: dict[str, Any], message: str) -> None:
    # given
    study = _study_with_stimuli(researcher)
    form = {"batch_size": 2, "participants_per_batch": 7, "seed": 0, **data}
    # when
    res = _logged_in(researcher).post(_url("build-batches", study), form)
    # then
    assert res.status_code == 400
    assert message in _errors(res)
    assert Batch.objects.exists() is False


# ---------------------------------------------------------------------------------------------
# texts
# ---------------------------------------------------------------------------------------------


def _texts_form(**overrides: Any) -> dict[str, Any]:
    form = {
        "title": "Shapes, blended",
        "consent_html": "<p>We record your answers.</p>",
        "debrief_questions": "Anything unclear?\nHow tired are you?",
        "max_comprehension_failures": "3",
        "completion_code": "C0DE-42",
        "completion_url": PROLIFIC_COMPLETION_URL,
        "pages-TOTAL_FORMS": "3",
        "pages-INITIAL_FORMS": "2",
        "pages-0-title": "The task",
        "pages-0-html": "<p>Label the image.</p>",
        "pages-1-title": "Old page",
        "pages-1-html": "<p>Remove me.</p>",
        "pages-1-DELETE": "on",
        "pages-2-title": "Added",
        "pages-2-html": "<p>A new page.</p>",
        "questions-TOTAL_FORMS": "2",
        "questions-INITIAL_FORMS": "1",
        "questions-0-question": "Whose labels?",
        "questions-0-options": "Mine\n100 workers'\nA computer's",
        "questions-0-answer": "2",
        "questions-1-question": "",
        "questions-1-options": "",
        "questions-1-answer": "",
    }
    form.update(overrides)
    return form


def test_texts_page_saves_consent_pages_questions_debrief_and_completion(researcher: Any) -> None:
    # given
    study = _draft(researcher)
    # when
    res = _logged_in(researcher).post(_url("build-texts", study), _texts_form())
    # then
    study.refresh_from_db()
    assert res.status_code == 302
    assert study.title == "Shapes, blended"
    assert study.consent_html == "<p>We record your answers.</p>"
    assert study.instructions == [
        {"title": "The task", "html": "<p>Label the image.</p>"},
        {"title": "Added", "html": "<p>A new page.</p>"},
    ]
    assert study.comprehension == [
        {
            "question": "Whose labels?",
            "options": ["Mine", "100 workers'", "A computer's"],
            "answer": 1,
        }
    ]
    assert study.debrief_questions == ["Anything unclear?", "How tired are you?"]
    assert (study.max_comprehension_failures, study.completion_code) == (3, "C0DE-42")


def test_texts_page_saves_the_arrival_and_check_settings(researcher: Any) -> None:
    # given
    study = _draft(researcher, trial_type=Study.TrialType.CONSTRUCT_MIDPOINT)
    form = _texts_form(
        prolific_completion_url=PROLIFIC_COMPLETION_URL,
        completion_url="https://lab.example.org/done?c={code}",
        full_code="FULL-2",
        excluded_code="EXCL-2",
        expected_minutes="30",
        lease_minutes="40",
        min_response_ms="700",
        allow_no_steps="on",
    )
    # when
    res = _logged_in(researcher).post(_url("build-texts", study), form)
    # then
    study.refresh_from_db()
    assert res.status_code == 302
    assert (
        study.prolific_completion_url,
        study.completion_url,
        study.full_code,
        study.excluded_code,
        study.expected_minutes,
        study.lease_minutes,
        study.min_response_ms,
        study.allow_no_steps,
    ) == (
        PROLIFIC_COMPLETION_URL,
        "https://lab.example.org/done?c={code}",
        "FULL-2",
        "EXCL-2",
        30,
        40,
        700,
        True,
    )


def test_the_no_step_setting_is_only_offered_for_interface_c(researcher: Any) -> None:
    # given
    study = _draft(researcher)
    # when
    page = _logged_in(researcher).get(_url("build-texts", study)).content.decode()
    # then
    assert 'name="full_code"' in page
    assert 'name="allow_no_steps"' not in page


def test_texts_page_shows_the_current_texts(researcher: Any) -> None:
    # given
    study = _draft(researcher, completion_code="SHOWN1")
    # when
    page = _logged_in(researcher).get(_url("build-texts", study)).content.decode()
    # then
    assert 'value="SHOWN1"' in page
    assert "Whose labels?" in page
    assert 'name="questions-0-answer" value="2"' in page
    assert 'name="pages-TOTAL_FORMS" value="2"' in page
    assert "New page (fill in to add)" in page


def test_interface_settings_are_on_the_texts_page_of_iri_studies(researcher: Any) -> None:
    # given
    study = _draft(researcher, trial_type=Study.TrialType.IRI_2AFC)
    # when
    res = _logged_in(researcher).post(
        _url("build-texts", study), _texts_form(catch_rate="0.2", catch_threshold="75")
    )
    # then
    study.refresh_from_db()
    assert res.status_code == 302
    assert study.settings == {"catch_rate": 0.2, "catch_threshold": 75.0}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"questions-0-options": "Only one"}, "Give at least 2 options, one per line."),
        ({"questions-0-answer": "4"}, "Choose an option number from 1 to 3."),
        ({"questions-0-answer": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"questions-0-options": "Same\nSame"}, "Question 1 has the same option twice."),
        ({"pages-0-html": ""}, "This field is required."),
        (
            {"completion_code": "has space"},
            "The completion code may only hold letters, digits, &#x27;-&#x27; and &#x27;_&#x27;.",
        ),
        ({"completion_url": "javascript:alert(1)"}, "The completion URL must be a web address"),
        (
            {"debrief_questions": "Same?\nSame?"},
            "The same debrief question appears twice.",
        ),
        ({"consent_html": ""}, "This field is required."),
    ],
)
def test_texts_page_refuses_bad_texts_and_saves_nothing(
    researcher: Any, overrides: dict[str, Any], message: str
) -> None:
    # given
    study = _draft(researcher)
    before = Study.objects.filter(id=study.id).values().get()
    # when
    res = _logged_in(researcher).post(_url("build-texts", study), _texts_form(**overrides))
    # then
    assert res.status_code == 400
    assert message in _errors(res)
    assert Study.objects.filter(id=study.id).values().get() == before


# ---------------------------------------------------------------------------------------------
# the researcher-only rule
# ---------------------------------------------------------------------------------------------

PAGES = ["build", "build-images", "build-stimuli", "build-batches", "build-texts"]
PREVIEW_PAGES = ["session", "restart", "consent", "instructions", "comprehension", "debrief"]


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("method", ["get", "post"])
def test_another_researcher_gets_403_on_every_builder_page(
    researcher: Any, name: str, method: str
) -> None:
    # given
    study = _study_with_stimuli(researcher, n_pairs=2)
    stranger = _logged_in(UserFactory(username="stranger"))
    before = Study.objects.filter(id=study.id).values().get()
    # when
    res = getattr(stranger, method)(
        _url(name, study),
        {"batch_size": 1, "participants_per_batch": 1, **_texts_form()} if method == "post" else {},
    )
    # then
    if name == "build" and method == "post":
        assert res.status_code == 405
    else:
        assert res.status_code == 403
    assert Study.objects.filter(id=study.id).values().get() == before
    assert Batch.objects.exists() is False


@pytest.mark.parametrize("name", PREVIEW_PAGES)
def test_another_researcher_gets_403_on_the_preview(researcher: Any, name: str) -> None:
    # given
    study = _study_with_stimuli(researcher, n_pairs=2)
    stranger = _logged_in(UserFactory(username="stranger"))
    # when
    res = (stranger.get if name == "session" else stranger.post)(_preview_url(name, study))
    answer = stranger.post(
        _preview_url("responses", study), {"trial": 1}, content_type="application/json"
    )
    # then
    assert (res.status_code, answer.status_code) == (403, 403)


def test_builder_pages_need_a_login(researcher: Any) -> None:
    # given
    study = _draft(researcher)
    # when
    responses = [Client().get(_url(name, study)) for name in PAGES]
    responses.append(Client().get(reverse("dashboard:study-new")))
    responses.append(Client().get(_preview_url("session", study)))
    # then
    assert {r.status_code for r in responses} == {302}
    assert all(r["Location"].startswith("/accounts/login/?next=") for r in responses)


def test_a_collaborator_can_build(researcher: Any) -> None:
    # given
    study = _draft(researcher)
    colleague = UserFactory(username="colleague")
    services.study_add_researcher(study=study, username="colleague")
    # when
    res = _logged_in(colleague).post(_url("build-texts", study), _texts_form())
    # then
    study.refresh_from_db()
    assert res.status_code == 302
    assert study.completion_code == "C0DE-42"


# ---------------------------------------------------------------------------------------------
# preview
# ---------------------------------------------------------------------------------------------


def _assert_nothing_recorded() -> None:
    assert Participant.objects.exists() is False
    assert Trial.objects.exists() is False
    assert Response.objects.exists() is False
    assert ComprehensionAttempt.objects.exists() is False


def _answer(client: Client, study: Study, trial: int, answer: Any, key: str | None = None) -> Any:
    return client.post(
        _preview_url("responses", study),
        json.dumps(
            {"trial": trial, "client_key": key or str(uuid.uuid4()), "rt_ms": 900, "answer": answer}
        ),
        content_type="application/json",
    )


CAT_ANSWER = {"top_class": "Circle", "p1": 70, "second_class": None, "p2": None, "impossible": []}


def test_a_full_preview_walks_the_journey_and_records_nothing(researcher: Any) -> None:
    # given a draft categorical study with stimuli and a completion code
    study = _study_with_stimuli(researcher, n_pairs=4)
    services.study_update(study=study, completion_code="PREVIEW1")
    client = _logged_in(researcher)
    session = _preview_url("session", study)
    pages = []
    # when the researcher consents, reads, fails then passes the check, answers, and finishes
    pages.append(client.get(session))
    client.post(_preview_url("consent", study), {"adult": "on", "understood": "on", "agree": "on"})
    pages.append(client.get(session))
    client.post(_preview_url("instructions", study))
    pages.append(client.get(session))
    client.post(_preview_url("comprehension", study), {"q0": 0})
    failed = client.get(session)
    client.post(_preview_url("instructions", study))
    client.post(_preview_url("comprehension", study), {"q0": 1})
    answers = []
    for trial in (1, 2, 3):
        pages.append(client.get(session))
        answers.append(_answer(client, study, trial, CAT_ANSWER))
    pages.append(client.get(session))
    client.post(_preview_url("debrief", study), {"a0": "fine"})
    done = client.get(session)
    # then every page was the participant's, under the preview banner, and nothing was stored
    templates = [p.templates[0].name for p in pages]
    assert templates == [
        "elicitation/consent.html",
        "elicitation/instructions.html",
        "elicitation/comprehension.html",
        "elicitation/trial_categorical.html",
        "elicitation/trial_categorical.html",
        "elicitation/trial_categorical.html",
        "elicitation/debrief.html",
    ]
    assert all("Preview — nothing is recorded." in p.content.decode() for p in [*pages, done])
    assert "Some answers to the check were not right." in failed.content.decode()
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert answers[0].json()["value"] == {
        "top_class": 0,
        "p1_pct": 70.0,
        "second_class": None,
        "p2_pct": None,
        "impossible": [],
    }
    assert done.templates[0].name == "elicitation/complete.html"
    assert '<strong id="completion-code" class="code">PREVIEW1</strong>' in done.content.decode()
    assert "completion-url" not in done.content.decode()  # no redirect away from a preview
    _assert_nothing_recorded()


def test_preview_forms_post_to_the_preview_and_the_trial_to_its_endpoint(
    researcher: Any,
) -> None:
    # given
    study = _study_with_stimuli(researcher, n_pairs=2)
    client = _logged_in(researcher)
    # when
    consent = client.get(_preview_url("session", study)).content.decode()
    client.post(_preview_url("consent", study), {"adult": "on", "understood": "on", "agree": "on"})
    client.post(_preview_url("instructions", study))
    client.post(_preview_url("comprehension", study), {"q0": 1})
    trial = client.get(_preview_url("session", study))
    # then
    assert f'action="/dashboard/preview/{study.slug}/consent/"' in consent
    assert trial.context["trial_config"] == {
        "trial_id": 1,
        "view": {"class_order": trial.context["state"]["trial"]["view"]["class_order"]},
        "submit_url": f"/dashboard/preview/{study.slug}/responses/",
        "session_url": f"/dashboard/preview/{study.slug}/",
    }
    assert sorted(trial.context["state"]["trial"]["view"]["class_order"]) == list(SHAPE_CLASSES)
    _assert_nothing_recorded()


def test_preview_answers_are_checked_by_the_real_parser(researcher: Any) -> None:
    # given a preview at its first trial
    study = _study_with_stimuli(researcher, n_pairs=2)
    client = _logged_in(researcher)
    client.get(_preview_url("session", study))
    client.post(_preview_url("consent", study), {"adult": "on", "understood": "on", "agree": "on"})
    client.post(_preview_url("instructions", study))
    client.post(_preview_url("comprehension", study), {"q0": 1})
    key = str(uuid.uuid4())
    # when
    bad = _answer(client, study, 1, {**CAT_ANSWER, "p1": 120})
    wrong_trial = _answer(client, study, 2, CAT_ANSWER)
    no_json = client.post(_preview_url("responses", study), {"trial": 1})
    good = _answer(client, study, 1, CAT_ANSWER, key)
    retried = _answer(client, study, 1, CAT_ANSWER, key)
    # then
    assert (bad.status_code, bad.json()["message"]) == (
        400,
        "p1 must be between 0 and 100, got 120.",
    )
    assert (wrong_trial.status_code, wrong_trial.json()["message"]) == (
        409,
        "This is not the current trial.",
    )
    assert no_json.status_code == 415
    assert (good.status_code, retried.status_code) == (201, 200)
    assert client.get(_preview_url("session", study)).context["state"]["progress"] == {
        "answered": 1,
        "total": 2,
        "percent": 50,
    }
    _assert_nothing_recorded()


def test_preview_of_a_live_study_records_nothing_and_leaves_its_data_alone(
    make_image_study: Callable[..., Study],
) -> None:
    # given a live study with one participant in the trials
    study = make_image_study()
    start_in_trials(study, "PID1")
    counts = (Participant.objects.count(), Trial.objects.count(), Response.objects.count())
    client = _logged_in(study.owner)
    # when
    client.get(_preview_url("session", study))
    client.post(_preview_url("consent", study), {"adult": "on", "understood": "on", "agree": "on"})
    client.post(_preview_url("instructions", study))
    client.post(_preview_url("comprehension", study), {"q0": 1})
    answer = _answer(client, study, 1, CAT_ANSWER)
    # then
    assert answer.status_code == 201
    assert (Participant.objects.count(), Trial.objects.count(), Response.objects.count()) == counts


def test_preview_restart_and_decline(researcher: Any) -> None:
    # given
    study = _study_with_stimuli(researcher, n_pairs=2)
    client = _logged_in(researcher)
    client.get(_preview_url("session", study))
    # when
    client.post(_preview_url("consent", study), {"decline": "on"})
    declined = client.get(_preview_url("session", study))
    client.post(_preview_url("restart", study))
    restarted = client.get(_preview_url("session", study))
    # then
    assert declined.templates[0].name == "elicitation/ended.html"
    assert "You chose not to take part." in declined.content.decode()
    assert restarted.templates[0].name == "elicitation/consent.html"
    _assert_nothing_recorded()


def test_preview_of_a_study_without_stimuli_skips_the_trials(researcher: Any) -> None:
    # given
    study = _draft(researcher, comprehension=[])
    client = _logged_in(researcher)
    # when
    first = client.get(_preview_url("session", study))
    client.post(_preview_url("consent", study), {"adult": "on", "understood": "on", "agree": "on"})
    client.post(_preview_url("instructions", study))
    after = client.get(_preview_url("session", study))
    # then
    assert "The study has no stimuli yet, so the preview has no trials." in first.content.decode()
    assert after.templates[0].name == "elicitation/debrief.html"


@pytest.mark.parametrize(
    ("trial_type", "template", "answer"),
    [
        (
            Study.TrialType.MIXING_FACTOR,
            "elicitation/trial_mixing_factor.html",
            {"mixing": 30, "confidence": 70, "moved_mixing": True, "moved_confidence": True},
        ),
        (
            Study.TrialType.CONSTRUCT_MIDPOINT,
            "elicitation/trial_construct_midpoint.html",
            {"final_step": 2, "visits": [{"step": 1, "t_ms": 0}, {"step": 2, "t_ms": 50}]},
        ),
        (
            Study.TrialType.SELECT_MIDPOINT,
            "elicitation/trial_select_midpoint.html",
            {"chosen_position": 4},
        ),
    ],
)
def test_preview_shows_each_interfaces_own_trial_page(
    researcher: Any, trial_type: str, template: str, answer: dict[str, Any]
) -> None:
    # given
    image_set = _image_set(researcher)
    study = _draft(researcher, trial_type=trial_type)
    data = {"image_set": image_set.name, "n_pairs": 2, "seed": 0}
    if trial_type == Study.TrialType.MIXING_FACTOR:
        data["lambdas"] = "0.25"
    with _jobs_run():
        _logged_in(researcher).post(_url("build-stimuli", study), data)
    client = _logged_in(researcher)
    client.get(_preview_url("session", study))
    client.post(_preview_url("consent", study), {"adult": "on", "understood": "on", "agree": "on"})
    client.post(_preview_url("instructions", study))
    client.post(_preview_url("comprehension", study), {"q0": 1})
    # when
    page = client.get(_preview_url("session", study))
    stored = _answer(client, study, 1, answer)
    # then
    assert page.templates[0].name == template
    assert stored.status_code == 201
    _assert_nothing_recorded()


@pytest.mark.parametrize(
    ("trial_type", "template", "answer"),
    [
        (Study.TrialType.IRI_2AFC, "elicitation/trial_iri_2afc.html", {"choice": "left"}),
        (
            Study.TrialType.IRI_CLUSTER,
            "elicitation/trial_iri_cluster.html",
            {"assignments": [0, 1, 2, 0, 1, 2]},
        ),
    ],
)
def test_preview_shows_the_iri_trial_pages(
    researcher: Any, trial_type: str, template: str, answer: dict[str, Any]
) -> None:
    # given a draft IRI study (no catch rows, so a set shows its 6 IRI rows)
    study = iri_study_create(
        owner=researcher, trial_type=trial_type, slug="iri", settings={"catch_rate": 0.0}
    )
    build = iri_stimuli_create if trial_type == Study.TrialType.IRI_2AFC else iri_sets_create
    build(study=study, n=2)
    client = _logged_in(researcher)
    client.get(_preview_url("session", study))
    client.post(_preview_url("consent", study), {"adult": "on", "understood": "on", "agree": "on"})
    client.post(_preview_url("instructions", study))
    client.post(_preview_url("comprehension", study), {"q0": 1})
    # when
    page = client.get(_preview_url("session", study))
    stored = _answer(client, study, 1, answer)
    # then
    assert page.templates[0].name == template
    assert stored.status_code == 201
    _assert_nothing_recorded()
