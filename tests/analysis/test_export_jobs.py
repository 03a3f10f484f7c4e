import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from analysis import export_services, exports, services
from analysis.tasks import bundle_job_run, export_job_run
from elicitation.models import Study
from jobs import services as job_services
from jobs.models import Job
from tests.conftest import answer_all_trials, categorical_answer, token_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(make_study: Callable[..., Study]) -> Study:
    study = make_study(n_stimuli=2, batch_size=2, repeats=1)
    for pid in ("a", "b"):
        answer_all_trials(study, pid, lambda _trial: categorical_answer(), rt_ms=5)
    services.study_aggregate(study=study)
    return study


def _export_url(study: Study) -> str:
    return reverse("api:export-job-create", kwargs={"slug": study.slug})


def _bundle_url(study: Study) -> str:
    return reverse("api:bundle-job-create", kwargs={"slug": study.slug})


def _streamed(client: APIClient, study: Study, what: str, fmt: str) -> bytes:
    res = client.get(
        reverse("api:export", kwargs={"slug": study.slug}), {"what": what, "format": fmt}
    )
    assert res.status_code == 200
    return b"".join(res.streaming_content)


def _download(client: APIClient, job: Job) -> bytes:
    res = client.get(reverse("api:job-download", kwargs={"job_id": job.public_id}))
    assert res.status_code == 200
    return b"".join(res.streaming_content)


def _job_files(settings: Any, job: Job) -> list[str]:
    folder = Path(settings.MEDIA_ROOT) / "jobs" / str(job.public_id)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- lifecycle --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("what", "fmt", "filename"),
    [
        ("responses", "csv", "responses.csv"),
        ("responses", "json", "responses.json"),
        ("responses", "jsonl", "responses.jsonl"),
        ("annotation-soft-labels", "npy", "annotation-soft-labels.npy"),
        ("soft-labels", "npy", "soft-labels.npy"),
        ("soft-labels", "npy-index", "soft-labels.index.csv"),
        ("soft-labels", "csv", "soft-labels.csv"),
    ],
)
def test_export_job_runs_after_commit_and_downloads_the_streamed_file(
    study: Study,
    django_capture_on_commit_callbacks: Any,
    what: str,
    fmt: str,
    filename: str,
) -> None:
    # given
    client = token_client(study.owner)
    # when (Celery is eager in the tests: the task runs when the callbacks do)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        res = client.post(_export_url(study), {"what": what, "format": fmt}, format="json")
    # then the request answers at once with the pending job ...
    body = res.json()
    job = Job.objects.get()
    assert res.status_code == 202
    assert len(callbacks) == 1
    assert body["id"] == str(job.public_id)
    assert (body["kind"], body["status"], body["progress"]) == ("export", "pending", 0.0)
    assert body["study"] == study.slug
    assert body["download_url"] is None
    # ... which the worker then finished, with the same bytes as the streaming export
    detail = client.get(reverse("api:job-detail", kwargs={"job_id": job.public_id})).json()
    assert (detail["status"], detail["progress"], detail["error"]) == ("done", 1.0, "")
    assert detail["download_url"] == f"/api/jobs/{job.public_id}/download/"
    assert detail["finished_at"] is not None
    assert job.params == {
        "what": what,
        "format": fmt,
        "method": {
            "name": "clean-top2-clamp",
            "gamma": 0.1,
            "smoothing": 0.0,
            "include_repeats": True,
        },
        "raw_ids": False,
    }
    assert job.result.name == f"jobs/{job.public_id}/{study.slug}-{filename}"
    assert _download(client, job) == _streamed(client, study, what, fmt)


def test_export_job_with_method_parameters_uses_them(
    study: Study, django_capture_on_commit_callbacks: Any
) -> None:
    # given labels stored under top1 without repeats
    from analysis.aggregation import Method

    top1 = Method(name="top1", include_repeats=False)
    services.study_aggregate(study=study, method=top1)
    client = token_client(study.owner)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            _export_url(study),
            {"what": "soft-labels", "format": "json", "method": "top1", "exclude_repeats": True},
            format="json",
        )
    # then
    job = Job.objects.get()
    streamed = b"".join(
        c.encode() if isinstance(c, str) else c
        for c in exports.export_stream(study=study, what="soft-labels", fmt="json", method=top1)
    )
    assert job.params["method"] == {
        "name": "top1",
        "gamma": 0.1,
        "smoothing": 0.0,
        "include_repeats": False,
    }
    assert _download(client, job) == streamed
    assert b'"name": "top1"' in streamed


def test_bundle_job_builds_the_zip(study: Study, django_capture_on_commit_callbacks: Any) -> None:
    # given
    client = token_client(study.owner)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        res = client.post(_bundle_url(study), {}, format="json")
    # then
    job = Job.objects.get()
    zf = zipfile.ZipFile(io.BytesIO(_download(client, job)))
    assert res.status_code == 202
    assert (res.json()["kind"], res.json()["status"]) == ("bundle", "pending")
    assert (job.kind, job.status, job.progress) == ("bundle", "done", 1.0)
    # 6 responses (csv, jsonl), 2 soft labels (csv, json, npy with its index), 6 annotations
    assert job.message == "8 files, 24 rows"
    assert job.result.name == f"jobs/{job.public_id}/{study.slug}-dataset.zip"
    assert [n.split("/", 1)[1] for n in zf.namelist()] == [
        "README.md",
        "responses.csv",
        "responses.jsonl",
        "soft-labels.csv",
        "soft-labels.json",
        "soft-labels.index.csv",
        "soft-labels.npy",
        "annotation-soft-labels.json",
    ]
    assert zf.read(f"{study.slug}-dataset/responses.csv") == _streamed(
        client, study, "responses", "csv"
    )


# --- idempotency and failures -----------------------------------------------------------------


def test_a_job_delivered_twice_runs_once(
    study: Study, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given a pending job whose task has not run yet
    with django_capture_on_commit_callbacks(execute=False):
        job = export_services.export_job_create(
            study=study, owner_id=study.owner_id, what="responses", fmt="csv"
        )
    export_job_run(job.id)
    job.refresh_from_db()
    first = (job.status, job.result.name, job.finished_at, job.updated_at)
    # when the broker delivers it again
    export_job_run(job.id)
    # then
    job.refresh_from_db()
    assert (job.status, job.result.name, job.finished_at, job.updated_at) == first
    assert _job_files(settings, job) == [f"{study.slug}-responses.csv"]


def test_a_job_another_worker_claimed_is_left_alone(
    study: Study, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given a bundle job another worker is running
    with django_capture_on_commit_callbacks(execute=False):
        job = export_services.bundle_job_create(study=study, owner_id=study.owner_id)
    assert job_services.job_start(job=job) is True
    # when
    bundle_job_run(job.id)
    # then
    job.refresh_from_db()
    assert (job.status, job.progress, job.result.name, job.finished_at) == (
        "running",
        0.0,
        "",
        None,
    )
    assert _job_files(settings, job) == []


def test_a_job_of_the_other_kind_or_gone_is_ignored(
    study: Study, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    with django_capture_on_commit_callbacks(execute=False):
        job = export_services.bundle_job_create(study=study, owner_id=study.owner_id)
    # when
    export_job_run(job.id)  # the wrong task for a bundle job
    bundle_job_run(job.id + 1000)  # no such job
    # then
    job.refresh_from_db()
    assert job.status == "pending"


def test_a_failing_export_ends_failed_with_its_error_and_no_result(
    study: Study, settings: Any
) -> None:
    # given a job whose stored parameters no longer name an export
    job = job_services.job_create(
        owner_id=study.owner_id,
        kind=Job.Kind.EXPORT,
        study_id=study.id,
        params={
            "what": "everything",
            "format": "csv",
            "method": {"name": "clean-top2-clamp", "gamma": 0.1},
        },
    )
    # when
    export_job_run(job.id)
    # then
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error == (
        "Unknown export 'everything'; expected one of ['responses', 'annotation-soft-labels', "
        "'soft-labels', 'mixing-factor', 'midpoints', 'iri-alignment']."
    )
    assert job_services.job_start(job=job) is False
    assert (job.message, job.result.name) == ("Failed", "")
    assert job.finished_at is not None
    assert _job_files(settings, job) == []


def test_a_storage_failure_ends_the_bundle_job_failed(
    study: Study, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a full disk (the storage is the boundary)
    def full(self: FileSystemStorage, name: str, content: Any) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FileSystemStorage, "_save", full)
    job = job_services.job_create(
        owner_id=study.owner_id,
        kind=Job.Kind.BUNDLE,
        study_id=study.id,
        params={"method": {"name": "clean-top2-clamp"}},
    )
    # when
    bundle_job_run(job.id)
    # then
    job.refresh_from_db()
    assert (job.status, job.error, job.result.name) == (
        "failed",
        "OSError: [Errno 28] No space left on device",
        "",
    )
    assert _job_files(settings, job) == []
    res = token_client(study.owner).get(
        reverse("api:job-download", kwargs={"job_id": job.public_id})
    )
    assert res.status_code == 404


def test_progress_is_written_every_n_rows_and_stops_short_of_one(study: Study) -> None:
    # given
    job = job_services.job_create(owner_id=study.owner_id, kind=Job.Kind.EXPORT)
    progress = export_services.JobProgress(job, every=3)
    progress.start(10)
    # when / then
    progress.advance(2, "responses.csv")
    job.refresh_from_db()
    assert (job.progress, job.message) == (0.0, "")
    progress.advance(2, "responses.csv")
    job.refresh_from_db()
    assert (job.progress, job.message) == (0.4, "responses.csv: 4 of about 10 rows")
    progress.advance(20, "responses.jsonl")
    job.refresh_from_db()
    assert (job.progress, job.message) == (0.99, "responses.jsonl: 24 of about 10 rows")


# --- permissions and bad input ----------------------------------------------------------------


@pytest.mark.parametrize("url", [_export_url, _bundle_url])
def test_anonymous_users_get_401_and_no_job(study: Study, url: Callable[[Study], str]) -> None:
    # when
    res = APIClient().post(url(study), {"what": "responses", "format": "csv"}, format="json")
    # then
    assert res.status_code == 401
    assert res.json()["message"] == "Authentication credentials were not provided."
    assert Job.objects.exists() is False


@pytest.mark.parametrize("url", [_export_url, _bundle_url])
def test_other_researchers_get_403_and_no_job(study: Study, url: Callable[[Study], str]) -> None:
    # when
    res = token_client(UserFactory(username="stranger")).post(
        url(study), {"what": "responses", "format": "csv"}, format="json"
    )
    # then
    assert res.status_code == 403
    assert res.json()["message"] == "You are not a researcher of this study."
    assert Job.objects.exists() is False


def test_a_collaborator_may_start_jobs_of_their_own(
    study: Study, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    collaborator = UserFactory(username="collab")
    study.researchers.add(collaborator)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        res = token_client(collaborator).post(_bundle_url(study), {}, format="json")
    # then
    assert res.status_code == 202
    assert Job.objects.get().owner == collaborator


@pytest.mark.parametrize("name", ["api:job-detail", "api:job-download"])
def test_only_the_jobs_owner_sees_it(
    study: Study, django_capture_on_commit_callbacks: Any, name: str
) -> None:
    # given a finished job of the study's owner
    with django_capture_on_commit_callbacks(execute=True):
        job = export_services.export_job_create(
            study=study, owner_id=study.owner_id, what="responses", fmt="csv"
        )
    url = reverse(name, kwargs={"job_id": job.public_id})
    # when
    anonymous = APIClient().get(url)
    stranger = token_client(UserFactory(username="stranger")).get(url)
    owner = token_client(study.owner).get(url)
    # then
    assert anonymous.status_code == 401
    assert stranger.status_code == 404
    assert stranger.json()["message"] == "No such job."
    assert owner.status_code == 200


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"what": "everything", "format": "csv"},
            "export: Unknown export 'everything'; expected one of ['responses', "
            "'annotation-soft-labels', 'soft-labels', 'mixing-factor', 'midpoints', "
            "'iri-alignment'].",
        ),
        (
            {"what": "responses", "format": "xlsx"},
            "export: Unknown format 'xlsx'; expected one of "
            "['csv', 'json', 'jsonl', 'npy', 'npy-index'].",
        ),
        (
            {"what": "responses", "format": "npy"},
            "export: Responses export as csv, json or jsonl, not npy.",
        ),
        (
            {"what": "midpoints", "format": "npy-index"},
            "export: midpoints exports as csv, json or jsonl, not npy.",
        ),
        ({"format": "csv"}, "what: This field is required."),
        ({"what": "responses"}, "format: This field is required."),
        (
            {"what": "soft-labels", "format": "csv", "method": "magic"},
            "method: Unknown construction 'magic'; expected one of ['cifar10s-top2-clamp', "
            "'clean-top2-clamp', 'hmix-2023', 'renormalise', 'simselect2', 'top1', 'uniform'].",
        ),
        (
            {"what": "soft-labels", "format": "csv", "gamma": 2},
            "method: gamma must be in [0, 1], got 2.0",
        ),
    ],
)
def test_bad_export_parameters_are_400_and_write_nothing(
    study: Study, django_capture_on_commit_callbacks: Any, data: dict[str, Any], message: str
) -> None:
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        res = token_client(study.owner).post(_export_url(study), data, format="json")
    # then
    assert res.status_code == 400
    assert res.json()["message"] == message
    assert Job.objects.exists() is False
    assert callbacks == []


def test_bundle_with_a_bad_method_is_400(study: Study) -> None:
    # when
    res = token_client(study.owner).post(_bundle_url(study), {"smoothing": 1.0}, format="json")
    # then
    assert res.status_code == 400
    assert res.json()["message"] == "method: smoothing must be in [0, 1), got 1.0"
    assert Job.objects.exists() is False


def test_openapi_schema_documents_the_job_endpoints(api_client: APIClient) -> None:
    # when
    text = api_client.get(reverse("schema")).content.decode()
    # then
    assert "/api/studies/{slug}/export-jobs/:" in text
    assert "/api/studies/{slug}/bundle-jobs/:" in text


# --- dashboard --------------------------------------------------------------------------------


def _logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_dashboard_button_starts_a_bundle_job(
    study: Study, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    client = _logged_in(study.owner)
    page = client.get(reverse("dashboard:study", kwargs={"slug": study.slug})).content.decode()
    # when
    with django_capture_on_commit_callbacks(execute=True):
        res = client.post(reverse("dashboard:bundle", kwargs={"slug": study.slug}))
    # then
    job = Job.objects.get()
    assert 'id="build-bundle"' in page
    assert f'data-study="{study.slug}"' in page
    assert "dashboard/jobs.js" in page
    assert res.status_code == 302
    assert res["Location"] == f"/dashboard/studies/{study.slug}/#exports"
    assert (job.kind, job.status, job.owner, job.study) == ("bundle", "done", study.owner, study)


def test_dashboard_bundle_button_is_refused_to_other_researchers(study: Study) -> None:
    # when
    res = _logged_in(UserFactory(username="stranger")).post(
        reverse("dashboard:bundle", kwargs={"slug": study.slug})
    )
    anonymous = Client().post(reverse("dashboard:bundle", kwargs={"slug": study.slug}))
    # then
    assert res.status_code == 403
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/?next=")
    assert Job.objects.exists() is False


# --- the study page in a real browser ---------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_study_page_polls_jobs_and_offers_the_download(
    live_server: Any, page: Any, study: Study
) -> None:
    from playwright.sync_api import expect

    # given an export job still waiting for a worker
    waiting = job_services.job_create(
        owner_id=study.owner_id,
        kind=Job.Kind.EXPORT,
        study_id=study.id,
        params={
            "what": "responses",
            "format": "csv",
            "method": {"name": "clean-top2-clamp", "gamma": 0.1},
        },
    )
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", study.owner.username)
    page.fill("input[name=password]", "pw")
    page.click("#login-form button[type=submit]")
    page.goto(f"{live_server.url}/dashboard/studies/{study.slug}/")
    row = page.locator(f"#jobs li[data-job='{waiting.public_id}']")
    expect(row.locator("strong")).to_have_text("Export: pending")
    # when a worker runs it, then the page shows it done with its link, without a reload
    export_services.export_job_run(job=waiting)
    expect(row.locator("strong")).to_have_text("Export: done")
    expect(row.locator("a.job-download")).to_have_attribute(
        "href", f"/api/jobs/{waiting.public_id}/download/"
    )
    # when the researcher builds the dataset bundle (tasks run in-process here)
    page.click("#build-bundle")
    # then it is listed first, done, and its download is the zip
    expect(page.locator(".flash")).to_have_text(
        "Building the dataset bundle: its download link appears below."
    )
    bundle_row = page.locator("#jobs li").first
    expect(bundle_row.locator("strong")).to_have_text("Dataset bundle: done")
    with page.expect_download() as info:
        bundle_row.locator("a.job-download").click()
    zf = zipfile.ZipFile(info.value.path())
    assert info.value.suggested_filename == f"{study.slug}-dataset.zip"
    assert f"{study.slug}-dataset/README.md" in zf.namelist()
    assert Job.objects.filter(kind=Job.Kind.BUNDLE, status=Job.Status.DONE).count() == 1
