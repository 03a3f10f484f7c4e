"""The study builder's jobs (elicitation.builder_job_services): the same stimuli and images as
the direct services, progress while they run, all-or-nothing failures and idempotent runs."""

import io
import json
import pickle
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from elicitation import builder_job_services, builder_services, imaging, stimulus_services, uploads
from elicitation.models import ImageSet, SourceImage, Stimulus, StimulusImage, Study
from elicitation.tasks import image_upload_job_run, stimuli_generate_job_run
from jobs.models import Job
from tests.factories import StudyFactory, UserFactory

pytestmark = pytest.mark.django_db

SHAPES = ("Circle", "Square", "Triangle")


def _png(value: int, size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (value, 255 - value, 90)).save(out, format="PNG")
    return out.getvalue()


def _undecodable_png() -> bytes:
    """A PNG whose header and checksums are right but whose pixel data is not zlib: the
    request's header check passes it, only a full decode (in the worker) refuses it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"not zlib at all")
        + chunk(b"IEND", b"")
    )


def _pickled(value: Any) -> bytes:
    return pickle.dumps(value, protocol=2)


def _zip(files: dict[str, bytes], name: str = "shapes.zip") -> SimpleUploadedFile:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return SimpleUploadedFile(name, out.getvalue(), content_type="application/zip")


def _shapes(per_class: int = 2) -> dict[str, bytes]:
    return {
        f"{c}/{i}.png": _png(30 * i + 70 * j)
        for j, c in enumerate(SHAPES)
        for i in range(per_class)
    }


def _image_set(name: str = "shapes", owner: Any = None) -> ImageSet:
    images = [
        imaging.BaseImage(
            class_name=c, ref=str(i), pixels=np.full((6, 6, 3), 25 * i + 80 * j, np.uint8)
        )
        for j, c in enumerate(SHAPES)
        for i in range(3)
    ]
    return stimulus_services.image_set_create(
        name=name, source=ImageSet.Source.FOLDER, images=images, owner_id=owner and owner.pk
    )


def _files(settings: Any, folder: str) -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / folder
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _stimulus_rows(study: Study) -> list[tuple[Any, ...]]:
    """Everything a stimulus is, apart from its ids: its fields and its images' pixels."""

    def pixels(field: Any) -> bytes:
        with field.open("rb") as fh:
            return np.asarray(Image.open(fh).convert("RGB")).tobytes()

    return [
        (
            s.key,
            s.kind,
            s.lam,
            s.class1,
            s.class2,
            s.true_class,
            s.source1,
            s.source2,
            s.meta,
            pixels(s.image) if s.image else None,
            [(f.role, f.index, f.meta, pixels(f.image)) for f in s.frames.order_by("index")],
        )
        for s in Stimulus.objects.filter(study=study).order_by("key")
    ]


class ProgressSpy:
    """Records the job's progress writes (and still makes them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[float, str]] = []
        real = builder_job_services.job_progress

        def spy(*, job: Job, fraction: float, message: str = "") -> None:
            self.calls.append((round(fraction, 4), message))
            real(job=job, fraction=fraction, message=message)

        monkeypatch.setattr(builder_job_services, "job_progress", spy)


def _generation_job(study: Study, image_set: ImageSet, **params: Any) -> Job:
    fields: dict[str, Any] = {"n_pairs": 2, "lambdas": [0.25, 0.75], "seed": 3, **params}
    return builder_job_services.stimuli_generate_job_create(
        study=study, image_set=image_set, owner_id=study.owner_id, **fields
    )


# --- stimulus generation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trial_type", "params"),
    [
        (Study.TrialType.CATEGORICAL, {"plain_per_class": 2}),
        (Study.TrialType.MIXING_FACTOR, {}),
        (Study.TrialType.CONSTRUCT_MIDPOINT, {"lambdas": []}),
    ],
)
def test_a_generation_job_makes_the_same_stimuli_as_the_direct_service(
    researcher: Any, trial_type: str, params: dict[str, Any]
) -> None:
    # given two drafts on one image set
    image_set = _image_set()
    by_job = StudyFactory(owner=researcher, slug="by-job", trial_type=trial_type)
    direct = StudyFactory(owner=researcher, slug="direct", trial_type=trial_type)
    fields: dict[str, Any] = {"n_pairs": 2, "lambdas": [0.25, 0.75], "seed": 3, **params}
    # when one is generated through a job and the other directly
    job = _generation_job(by_job, image_set, **params)
    job = builder_job_services.stimuli_generate_job_run(job=job)
    builder_services.study_stimuli_generate(study=direct, image_set=image_set, **fields)
    # then
    assert (job.status, job.progress, job.error) == (Job.Status.DONE, 1.0, "")
    assert _stimulus_rows(by_job) == _stimulus_rows(direct)
    assert len(_stimulus_rows(by_job)) == job.params["planned"]
    by_job.refresh_from_db()
    direct.refresh_from_db()
    assert by_job.classes == direct.classes == list(SHAPES)


def test_a_generation_job_reports_progress_per_stimulus_and_a_summary(
    researcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    spy = ProgressSpy(monkeypatch)
    study = StudyFactory(owner=researcher, trial_type=Study.TrialType.CATEGORICAL)
    job = _generation_job(study, _image_set())
    # when
    job = builder_job_services.stimuli_generate_job_run(job=job)
    # then
    assert spy.calls == [
        (0.0, "Rendering the stimuli"),
        (0.25, "Rendered 1 of 4 new stimuli"),
        (0.5, "Rendered 2 of 4 new stimuli"),
        (0.75, "Rendered 3 of 4 new stimuli"),
        (0.99, "Rendered 4 of 4 new stimuli"),
    ]
    assert job.message == "Generated 4 new stimuli (4 in total)."
    with job.result.open("rb") as fh:
        summary = json.load(fh)
    assert summary == {
        "study": study.slug,
        "image_set": "shapes",
        "created": 4,
        "total": 4,
        "classes": list(SHAPES),
        "keys": list(
            Stimulus.objects.filter(study=study).order_by("id").values_list("key", flat=True)
        ),
    }


def test_a_redelivered_generation_task_does_nothing(researcher: Any) -> None:
    # given a job the worker already ran
    study = StudyFactory(owner=researcher)
    job = builder_job_services.stimuli_generate_job_run(job=_generation_job(study, _image_set()))
    before = Job.objects.filter(id=job.id).values().get()
    stimuli = list(Stimulus.objects.values_list("id", flat=True))
    # when the task is delivered again
    stimuli_generate_job_run(job.id)
    # then
    assert Job.objects.filter(id=job.id).values().get() == before
    assert list(Stimulus.objects.values_list("id", flat=True)) == stimuli


def test_a_generation_failing_midway_writes_nothing_and_deletes_its_files(
    researcher: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a renderer that breaks on the third stimulus
    study = StudyFactory(owner=researcher)
    job = _generation_job(study, _image_set())
    real = imaging.render_mix
    calls = []

    def breaking(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("out of memory")
        return real(*args)

    monkeypatch.setattr(imaging, "render_mix", breaking)
    # when
    job = builder_job_services.stimuli_generate_job_run(job=job)
    # then
    study.refresh_from_db()
    assert (job.status, job.message) == (Job.Status.FAILED, "Failed")
    assert job.error == (
        "Nothing was generated: the generation stopped on an unexpected error (the site's log "
        "has the details)."
    )
    assert Stimulus.objects.exists() is False
    assert _files(settings, "stimuli") == []
    assert study.classes != list(SHAPES)  # the class change is part of the write


def test_a_generation_whose_study_went_live_meanwhile_fails_with_the_reason(
    researcher: Any,
) -> None:
    # given
    study = StudyFactory(owner=researcher)
    job = _generation_job(study, _image_set())
    Study.objects.filter(id=study.id).update(status=Study.Status.LIVE)
    # when
    job = builder_job_services.stimuli_generate_job_run(job=job)
    # then
    assert (job.status, job.error) == (
        Job.Status.FAILED,
        "Nothing was generated: Stimuli can be generated only while the study is a draft; it is "
        "live.",
    )
    assert Stimulus.objects.exists() is False


def test_a_generation_whose_image_set_was_deleted_fails_with_the_reason(researcher: Any) -> None:
    # given
    study = StudyFactory(owner=researcher)
    image_set = _image_set()
    job = _generation_job(study, image_set)
    image_set.delete()
    # when
    job = builder_job_services.stimuli_generate_job_run(job=job)
    # then
    assert (job.status, job.error) == (
        Job.Status.FAILED,
        "Nothing was generated: the image set 'shapes' no longer exists.",
    )
    assert Stimulus.objects.exists() is False


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({"lambdas": [0.5, 0.5]}, {"lambdas": ["The λ grid lists the same value twice."]}),
        (
            {"n_pairs": 40},
            {
                "n_pairs": [
                    "not enough images for 40 distinct pairs: every image pair of Circle and "
                    "Square is already planned"
                ]
            },
        ),
    ],
)
def test_a_bad_generation_request_creates_no_job(
    researcher: Any, params: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    # given
    study = StudyFactory(owner=researcher)
    image_set = _image_set()
    # when
    with pytest.raises(ValidationError) as exc:
        _generation_job(study, image_set, **params)
    # then
    assert exc.value.message_dict == errors
    assert Job.objects.exists() is False


# --- image-set uploads ---------------------------------------------------------------------


def _upload_job(owner: Any, files: dict[str, bytes], name: str = "shapes") -> Job:
    return builder_job_services.image_upload_job_create(
        owner_id=owner.pk, name=name, source="zip", zip_file=_zip(files)
    )


def test_an_upload_job_stores_the_same_images_as_the_direct_service(researcher: Any) -> None:
    # given
    files = _shapes()
    # when one set is stored through a job and another directly
    job = builder_job_services.image_upload_job_run(job=_upload_job(researcher, files))
    direct = stimulus_services.image_set_create(
        name="direct",
        source=ImageSet.Source.FOLDER,
        images=uploads.images_from_zip(_zip(files), limits=uploads.upload_limits()),
    )
    # then
    by_job = ImageSet.objects.get(name="shapes")

    def content(image_set: ImageSet) -> list[tuple[str, str, bytes]]:
        return [
            (row.class_name, row.ref, row.image.read())
            for row in image_set.images.order_by("class_name", "ref")
        ]

    assert (job.status, job.message) == (
        Job.Status.DONE,
        "Imported 6 images of 3 classes into 'shapes': Circle, Square, Triangle.",
    )
    assert (by_job.source, by_job.classes, by_job.owner) == (
        ImageSet.Source.FOLDER,
        direct.classes,
        researcher,
    )
    assert content(by_job) == content(direct)
    assert all(row.image.name.startswith("sources/new/") for row in by_job.images.all())


def test_an_upload_job_reports_progress_per_image(
    researcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    spy = ProgressSpy(monkeypatch)
    job = _upload_job(researcher, _shapes(per_class=1))
    # when
    builder_job_services.image_upload_job_run(job=job)
    # then decoding fills the first half of the bar, storing the second
    assert spy.calls == [
        (0.1667, "Checked 1 of 3 images"),
        (0.3333, "Checked 2 of 3 images"),
        (0.5, "Checked 3 of 3 images"),
        (0.6667, "Stored 1 of 3 images"),
        (0.8333, "Stored 2 of 3 images"),
        (0.99, "Stored 3 of 3 images"),
    ]


def test_the_upload_request_keeps_the_zip_in_the_jobs_storage(researcher: Any) -> None:
    # given
    upload = _zip(_shapes())
    # when
    job = builder_job_services.image_upload_job_create(
        owner_id=researcher.pk, name="shapes", source="zip", zip_file=upload
    )
    # then
    upload.seek(0)
    with job.upload.open("rb") as fh:
        assert fh.read() == upload.read()
    assert (job.kind, job.status, job.study_id) == (Job.Kind.IMAGE_UPLOAD, Job.Status.PENDING, None)
    assert job.params == {
        "name": "shapes",
        "source": "zip",
        "limit_per_class": None,
        "filenames": ["shapes.zip"],
        "classes": list(SHAPES),
        "n_images": 6,
    }
    assert ImageSet.objects.exists() is False


def test_an_image_broken_inside_its_pixel_data_fails_the_job_and_stores_nothing(
    researcher: Any, settings: Any
) -> None:
    # given a zip whose headers all pass the request's check
    files = {**_shapes(), "Square/9.png": _undecodable_png()}
    job = _upload_job(researcher, files)
    # when
    job = builder_job_services.image_upload_job_run(job=job)
    # then
    assert (job.status, job.error) == (
        Job.Status.FAILED,
        "Nothing was imported: Square/9.png: not a valid image (OSError: broken data stream "
        "when reading image file)",
    )
    assert ImageSet.objects.exists() is False
    assert SourceImage.objects.exists() is False
    assert _files(settings, "sources") == []


def test_an_upload_whose_name_was_taken_meanwhile_fails_and_deletes_its_files(
    researcher: Any, settings: Any
) -> None:
    # given
    job = _upload_job(researcher, _shapes())
    _image_set("shapes", owner=UserFactory(username="quicker"))
    stored = _files(settings, "sources")
    # when
    job = builder_job_services.image_upload_job_run(job=job)
    # then
    assert (job.status, job.error) == (
        Job.Status.FAILED,
        "Nothing was imported: Image set with this Name already exists.",
    )
    assert SourceImage.objects.count() == 9
    assert _files(settings, "sources") == stored


def test_an_image_set_taken_between_the_check_and_the_write_is_refused(
    researcher: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a set of that name written while this one's images were being stored
    images = [imaging.BaseImage(class_name="Circle", ref="0", pixels=np.zeros((4, 4, 3), np.uint8))]

    def concurrent(done: int, total: int) -> None:
        ImageSet.objects.create(name="race", source=ImageSet.Source.FOLDER, classes=["Circle"])

    # when
    with pytest.raises(ValidationError) as exc:
        stimulus_services.image_set_create(
            name="race", source=ImageSet.Source.FOLDER, images=images, progress=concurrent
        )
    # then
    assert exc.value.message_dict == {"name": ["Image set with this Name already exists."]}
    assert SourceImage.objects.exists() is False
    assert _files(settings, "sources") == []


def test_a_redelivered_upload_task_does_nothing(researcher: Any) -> None:
    # given
    job = builder_job_services.image_upload_job_run(job=_upload_job(researcher, _shapes()))
    before = Job.objects.filter(id=job.id).values().get()
    # when
    image_upload_job_run(job.id)
    # then
    assert Job.objects.filter(id=job.id).values().get() == before
    assert SourceImage.objects.count() == 6


def test_cifar_batches_go_to_the_worker_in_one_packed_file(researcher: Any) -> None:
    # given
    rng = np.random.default_rng(0)

    def batch(name: str, labels: list[int]) -> SimpleUploadedFile:
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        return SimpleUploadedFile(name, _pickled({b"data": data, b"labels": labels}))

    batches = [batch("data_batch_1", [0, 1, 0]), batch("data_batch_2", [1])]
    meta = SimpleUploadedFile("batches.meta", _pickled({b"label_names": [b"cat", b"dog"]}))
    # when
    job = builder_job_services.image_upload_job_create(
        owner_id=researcher.pk, name="mini", source="cifar10", cifar_files=batches, cifar_meta=meta
    )
    job = builder_job_services.image_upload_job_run(job=job)
    # then the worker read the same images the request checked
    direct = uploads.images_from_cifar(batches, meta=meta, limits=uploads.upload_limits())
    stored = ImageSet.objects.get(name="mini")
    assert job.status == Job.Status.DONE
    assert (stored.source, stored.classes) == (ImageSet.Source.CIFAR10, ["Cat", "Dog"])
    assert sorted(stored.images.values_list("class_name", "ref")) == sorted(
        (i.class_name, i.ref) for i in direct
    )


def test_stimulus_image_files_of_a_series_are_written_with_their_rows(researcher: Any) -> None:
    # given
    study = StudyFactory(owner=researcher, trial_type=Study.TrialType.SELECT_MIDPOINT)
    job = _generation_job(study, _image_set(), lambdas=[])
    # when
    builder_job_services.stimuli_generate_job_run(job=job)
    # then
    frames = StimulusImage.objects.filter(stimulus__study=study)
    assert frames.count() == 22
    assert all(f.image.name == f"stimuli/{study.id}/{f.public_id}.png" for f in frames)
    assert all(f.image.storage.exists(f.image.name) for f in frames)
