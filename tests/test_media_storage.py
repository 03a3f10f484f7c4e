"""Media on S3-compatible object storage (HMIX_S3_BUCKET): the settings' choice of backend, and
the real media paths run against a real S3 server process (moto's server mode, on loopback)
that this module starts and stops."""

import csv
import io
import os
import re
import runpy
import secrets
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient

from elicitation import services, stimulus_services, uploads
from elicitation.models import ImageSet, Study
from hmix_site.env import BASE_DIR
from hmix_site.storage import FILE_SYSTEM_STORAGE, s3_storage
from jobs.models import Job
from tests import legacy_fixtures as fx
from tests.conftest import (
    answer_remaining_trials,
    categorical_answer,
    start_in_trials,
    token_client,
)
from tests.factories import StudyFactory

SERVER_START_TIMEOUT_S = 60.0
# moto accepts any credentials; these only have to be the same on both sides.
ACCESS_KEY = "hmix-test-key"
SECRET_KEY = "hmix-test-secret"
REGION = "us-east-1"
S3_VARIABLES = (
    "HMIX_S3_BUCKET",
    "HMIX_S3_ENDPOINT_URL",
    "HMIX_S3_REGION",
    "HMIX_S3_ACCESS_KEY_ID",
    "HMIX_S3_SECRET_ACCESS_KEY",
    "HMIX_S3_PREFIX",
    "HMIX_S3_ADDRESSING_STYLE",
)


# --- the settings ----------------------------------------------------------------------------


def _base_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """hmix_site/settings/base.py run afresh on exactly these HMIX_S3_* variables."""
    for name in S3_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(BASE_DIR / "hmix_site" / "settings" / "base.py"))


@pytest.mark.parametrize("env", [{}, {"HMIX_S3_BUCKET": ""}], ids=["unset", "empty"])
def test_without_a_bucket_media_are_local_files(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    # when
    settings = _base_settings(monkeypatch, **env)
    # then
    assert settings["STORAGES"]["default"] == {
        "BACKEND": "django.core.files.storage.FileSystemStorage"
    }
    assert settings["STORAGES"]["default"] == FILE_SYSTEM_STORAGE


def test_a_bucket_switches_media_to_private_s3_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    # when
    settings = _base_settings(
        monkeypatch,
        HMIX_S3_BUCKET="hmix-media",
        HMIX_S3_ENDPOINT_URL="http://minio:9000",
        HMIX_S3_REGION="eu-west-1",
        HMIX_S3_ACCESS_KEY_ID="key-id",
        HMIX_S3_SECRET_ACCESS_KEY="secret",
        HMIX_S3_PREFIX="/prod/",
    )
    # then
    assert settings["STORAGES"]["default"] == {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": "hmix-media",
            "location": "prod",
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": 600,
            "file_overwrite": False,
            "max_memory_size": 5 * 1024 * 1024,
            "addressing_style": "path",
            "endpoint_url": "http://minio:9000",
            "region_name": "eu-west-1",
            "access_key": "key-id",
            "secret_key": "secret",
        },
    }
    assert settings["STORAGES"]["staticfiles"] == {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
    }


def test_on_aws_without_keys_boto3_finds_the_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # when
    settings = _base_settings(monkeypatch, HMIX_S3_BUCKET="hmix-media")
    # then: no endpoint, region or keys are passed, so boto3's defaults (role, AWS_*) apply
    assert settings["STORAGES"]["default"]["OPTIONS"] == {
        "bucket_name": "hmix-media",
        "location": "",
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": 600,
        "file_overwrite": False,
        "max_memory_size": 5 * 1024 * 1024,
        "addressing_style": "auto",
    }


@pytest.mark.parametrize("module", ["hmix_site.settings.test", "hmix_site.settings.production"])
def test_test_and_production_settings_honour_the_bucket(module: str) -> None:
    # given
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HMIX_S3_")},
        "DJANGO_SETTINGS_MODULE": module,
        # Production settings refuse a weak key, and need a cache URL (not connected to here).
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "HMIX_CACHE_URL": "redis://127.0.0.1:6379/0",
        "HMIX_S3_BUCKET": "hmix-media",
    }
    script = (
        "from django.conf import settings; "
        "print(settings.STORAGES['default']['BACKEND'], "
        "settings.STORAGES['default']['OPTIONS']['bucket_name'])"
    )
    # when
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # then
    assert out.stdout.split() == ["storages.backends.s3.S3Storage", "hmix-media"]


# --- a real S3 server ------------------------------------------------------------------------


@dataclass
class S3Server:
    endpoint_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )


def _wait_for_endpoint(process: subprocess.Popen[bytes], log_path: Path) -> str:
    # Started on port 0, the server binds a free port and names it in its startup line.
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        log = log_path.read_text(errors="replace")
        found = re.search(r"Running on (http://127\.0\.0\.1:\d+)", log)
        if found:
            return found.group(1)
        if process.poll() is not None:
            pytest.fail(f"moto server exited with {process.returncode}:\n{log}")
        if time.monotonic() > deadline:
            pytest.fail(f"moto server not up after {SERVER_START_TIMEOUT_S:.0f} s:\n{log}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server process on 127.0.0.1, for this module's tests; stopped at its end."""
    log_path = tmp_path_factory.mktemp("moto") / "moto-server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        yield S3Server(_wait_for_endpoint(process, log_path), process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Bucket:
    name: str
    client: Any

    def objects(self) -> dict[str, bytes]:
        listed = self.client.list_objects_v2(Bucket=self.name).get("Contents", [])
        return {
            o["Key"]: self.client.get_object(Bucket=self.name, Key=o["Key"])["Body"].read()
            for o in listed
        }


@pytest.fixture
def bucket(s3_server: S3Server, settings: Any) -> Bucket:
    """A fresh private bucket on the server, made the default storage as base.py would."""
    name = f"hmix-test-{uuid.uuid4().hex[:12]}"
    client = s3_server.client()
    client.create_bucket(Bucket=name)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(
            bucket=name,
            endpoint_url=s3_server.endpoint_url,
            region=REGION,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
        ),
    }
    return Bucket(name, client)


def _png(value: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (value, 255 - value, 128)).save(out, format="PNG")
    return out.getvalue()


def _images_zip() -> SimpleUploadedFile:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for j, class_name in enumerate(("Cat", "Dog")):
            for i in range(2):
                archive.writestr(f"{class_name}/{i}.png", _png(60 * i + 120 * j))
    return SimpleUploadedFile("images.zip", out.getvalue(), content_type="application/zip")


def _nothing_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.s3
@pytest.mark.django_db
def test_images_stimuli_and_job_results_live_in_the_bucket(
    bucket: Bucket,
    settings: Any,
    researcher: Any,
    api_client: APIClient,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given an uploaded image set (as the builder stores it) and a live study made from it
    images = uploads.images_from_zip(_images_zip(), limits=uploads.upload_limits())
    image_set = stimulus_services.image_set_create(
        name="s3-shapes", source=ImageSet.Source.FOLDER, images=images, owner_id=researcher.pk
    )
    study = StudyFactory(owner=researcher, repeats=0)
    stimuli = stimulus_services.stimuli_generate_mixup(
        study=study, image_set=image_set, lambdas=[0.25, 0.75], n_pairs=1
    )
    services.batches_build(study=study, stimuli=stimuli, batch_size=2)
    services.study_set_status(study=study, status=Study.Status.LIVE)
    participant = start_in_trials(study, "PID-S3")

    # when the participant's browser fetches its trial's image by the URL it was given
    state = api_client.get(
        reverse("participant-api:session-detail", kwargs={"token": str(participant.token)})
    ).json()
    by_url = {
        reverse("elicitation:stimulus-image", kwargs={"public_id": s.public_id}): s for s in stimuli
    }
    shown = by_url[state["trial"]["image_url"]]
    image = api_client.get(state["trial"]["image_url"])
    image_bytes = b"".join(image.streaming_content)

    # then it is streamed from the bucket by the app: no redirect, nothing naming the key
    stored = bucket.objects()
    assert image.status_code == 200
    assert image["Content-Type"] == "image/png"
    assert "Location" not in image
    assert image_bytes == stored[shown.image.name]
    assert shown.image.name == f"stimuli/{study.id}/{shown.public_id}.png"
    assert shown.key not in str(image.headers)

    # when the participant answers and the researcher exports the responses through a job
    answer_remaining_trials(participant, lambda _trial: categorical_answer())
    researcher_client = token_client(researcher)
    with django_capture_on_commit_callbacks(execute=True):
        created = researcher_client.post(
            reverse("api:export-job-create", kwargs={"slug": study.slug}),
            {"what": "responses", "format": "csv"},
            format="json",
        )
    job = Job.objects.get(public_id=created.json()["id"])
    download = researcher_client.get(reverse("api:job-download", kwargs={"job_id": job.public_id}))
    body = b"".join(download.streaming_content)

    # then the job's result is an object in the bucket, and the download is its bytes
    stored = bucket.objects()
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert (created.status_code, job.status, download.status_code) == (202, "done", 200)
    assert job.result.name == f"jobs/{job.public_id}/{study.slug}-responses.csv"
    assert body == stored[job.result.name]
    assert sorted(r["stimulus"] for r in rows) == sorted(s.key for s in stimuli)
    # and every media file is in the bucket, none on this host's disk
    sources = sorted(image_set.images.values_list("image", flat=True))
    stimulus_files = sorted(s.image.name for s in stimuli)
    assert sorted(stored) == sorted([*sources, *stimulus_files, job.result.name])
    # (an uploaded set is stored before its row exists, so under sources/new/)
    assert (len(sources), {name.rsplit("/", 1)[0] for name in sources}) == (4, {"sources/new"})
    assert _nothing_under(Path(settings.MEDIA_ROOT)) == []


@pytest.mark.s3
@pytest.mark.django_db
def test_a_job_upload_written_by_the_web_host_is_read_back_by_the_worker_from_the_bucket(
    bucket: Bucket, settings: Any, researcher: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given the published CSV, uploaded by the web host as a legacy import job's input
    client = token_client(researcher)
    upload = SimpleUploadedFile("raw_human_data.csv", fx.cifar10s_csv().encode())
    # when the worker (an eager task here) reads it back through the storage and imports it
    with django_capture_on_commit_callbacks(execute=True):
        res = client.post(
            reverse("api:legacy-import-create"),
            {"file": upload, "format": "cifar10s", "study": "s3-legacy"},
            format="multipart",
        )
    job = Job.objects.get(public_id=res.json()["id"])
    # then the import ran from the bucket's copy, and its summary is a bucket object too
    stored = bucket.objects()
    assert (res.status_code, job.status, job.error) == (202, "done", "")
    assert Study.objects.get(slug="s3-legacy").responses.count() == 9
    assert sorted(stored) == sorted([job.upload.name, job.result.name])
    assert stored[job.upload.name] == fx.cifar10s_csv().encode()
    assert job.upload.name == f"jobs/{job.public_id}/upload.csv"
    assert _nothing_under(Path(settings.MEDIA_ROOT)) == []
