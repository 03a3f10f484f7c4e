"""The legacy import from the web and the REST API: an upload checked at once, then a job (an
eager Celery task here, enqueued on commit) that parses, imports and reports its progress."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Page, expect
from rest_framework.test import APIClient

from elicitation import legacy_job_services
from elicitation.models import Participant, Response, Stimulus, Study
from elicitation.tasks import legacy_import_job_run
from jobs.models import Job
from tests import legacy_fixtures as fx
from tests.factories import StudyFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/legacy-imports/"
SLUG = "cifar10s-web"


def _csv_file(text: str, name: str = "raw_human_data.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def _bad_cifar10s_csv() -> str:
    rows = fx.cifar10s_rows()
    rows[4] = {**rows[4], "response": '{"classSelect": "mostProbCat", "prob": '}  # line 6
    rows[11] = {**rows[11], "response": fx.form("Cat", "60", None, "", ["Dragon"])}  # line 13
    return fx.csv_text(fx.CIFAR10S_HEADER, rows)


def _media_files(settings: Any) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def client_for(researcher: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(researcher)
    return client


def _post(
    client: APIClient | Client,
    capture: Callable[..., Any],
    data: dict[str, Any],
    url: str = URL,
) -> Any:
    with capture(execute=True):
        if isinstance(client, APIClient):
            return client.post(url, data, format="multipart")
        return client.post(url, data)


# --- REST API ------------------------------------------------------------------------------------


def test_api_upload_imports_the_file_as_a_new_study(
    client_for: APIClient, researcher: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    data = {"file": _csv_file(fx.cifar10s_csv()), "format": "cifar10s", "study": SLUG}
    # when
    res = _post(client_for, django_capture_on_commit_callbacks, data)
    # then the request is accepted with the pending job
    assert res.status_code == 202
    job = Job.objects.get()
    assert res.json()["id"] == str(job.public_id)
    assert (res.json()["kind"], res.json()["status"], res.json()["progress"]) == (
        "legacy_import",
        "pending",
        0.0,
    )
    assert res["Location"] == f"/api/jobs/{job.public_id}/"
    # and the task imported the file into a study owned by the uploader
    study = Study.objects.get(slug=SLUG)
    assert (study.owner, study.trial_type, study.status, study.title) == (
        researcher,
        "categorical",
        "closed",
        "CIFAR-10S (published raw data)",
    )
    assert (
        Stimulus.objects.filter(study=study).count(),
        Participant.objects.filter(study=study).count(),
        Response.objects.filter(study=study).count(),
        Response.objects.filter(study=study, kind="repeat").count(),
    ) == (4, 3, 9, 1)
    # and the job, polled like the dashboard does, is done at 100% and points at the study
    detail = client_for.get(f"/api/jobs/{job.public_id}/").json()
    assert (detail["status"], detail["progress"], detail["study"], detail["error"]) == (
        "done",
        1.0,
        SLUG,
        "",
    )
    assert detail["message"] == (
        f"Imported 9 responses from 3 participants on 4 stimuli into '{SLUG}'."
    )
    # and its result is the import's summary
    download = client_for.get(detail["download_url"])
    summary = json.loads(b"".join(download.streaming_content))
    assert summary.pop("seconds") >= 0
    assert summary == {
        "study": SLUG,
        "title": "CIFAR-10S (published raw data)",
        "format": "cifar10s",
        "trial_type": "categorical",
        "filename": "raw_human_data.csv",
        "rows": 15,
        "skipped_rows": 6,
        "responses": 9,
        "repeats": 1,
        "split_subjects": {},
        "participants": 3,
        "batches": 2,
        "stimuli": 4,
        "images": 0,
    }
    assert Job.objects.get().params == {
        "format": "cifar10s",
        "study": SLUG,
        "title": "",
        "replace": False,
        "filename": "raw_human_data.csv",
        "bytes": len(fx.cifar10s_csv().encode()),
    }


@pytest.mark.parametrize(
    ("fmt", "make_csv", "trial_type", "n_responses"),
    [
        ("hmix-categorical", fx.hmix_categorical_csv, "categorical", 7),
        ("hmix-mixing-factor", fx.mixing_csv, "mixing_factor", 5),
        ("hmix-construct", fx.construct_csv, "construct_midpoint", 5),
        ("hmix-select-shuffled", fx.select_csv, "select_midpoint", 4),
    ],
)
def test_api_upload_imports_every_format(
    client_for: APIClient,
    django_capture_on_commit_callbacks: Any,
    fmt: str,
    make_csv: Callable[[], str],
    trial_type: str,
    n_responses: int,
) -> None:
    # given
    data = {"file": _csv_file(make_csv()), "format": fmt, "study": "web", "title": "Mine"}
    # when
    res = _post(client_for, django_capture_on_commit_callbacks, data)
    # then
    assert res.status_code == 202
    study = Study.objects.get(slug="web")
    assert (study.trial_type, study.title, Response.objects.filter(study=study).count()) == (
        trial_type,
        "Mine",
        n_responses,
    )
    assert Job.objects.get().status == "done"


def test_progress_is_reported_while_parsing_then_writing(
    client_for: APIClient, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    # given every 5th line reported (the 16 physical lines of the file: header + 15 rows)
    monkeypatch.setattr(legacy_job_services, "PROGRESS_EVERY", 5)
    reported: list[tuple[float, str]] = []
    real = legacy_job_services.job_progress

    def spy(*, job: Job, fraction: float, message: str = "") -> None:
        reported.append((fraction, message))
        real(job=job, fraction=fraction, message=message)

    monkeypatch.setattr(legacy_job_services, "job_progress", spy)
    data = {"file": _csv_file(fx.cifar10s_csv()), "format": "cifar10s", "study": SLUG}
    # when
    _post(client_for, django_capture_on_commit_callbacks, data)
    # then
    assert reported == [
        (0.0, "Reading the file"),
        (0.5 * 5 / 16, "Parsing: line 5 of 16"),
        (0.5 * 10 / 16, "Parsing: line 10 of 16"),
        (0.5 * 15 / 16, "Parsing: line 15 of 16"),
        (0.5, "Parsed 15 rows (9 responses); writing the study"),
    ]
    assert Job.objects.get().progress == 1.0


def test_a_redelivered_task_does_nothing_twice(
    client_for: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    # given a finished import
    data = {"file": _csv_file(fx.cifar10s_csv()), "format": "cifar10s", "study": SLUG}
    _post(client_for, django_capture_on_commit_callbacks, data)
    job = Job.objects.get()
    # when the task is delivered again
    legacy_import_job_run(job.id)
    # then the job and the study are as they were
    again = Job.objects.get()
    assert (again.status, again.finished_at, again.message) == (
        "done",
        job.finished_at,
        job.message,
    )
    assert (Study.objects.count(), Response.objects.count()) == (1, 9)


def test_a_task_for_a_deleted_job_returns_quietly() -> None:
    # when / then
    legacy_import_job_run(123456)
    assert Job.objects.exists() is False


def test_a_malformed_file_fails_the_job_with_its_rows_and_imports_nothing(
    client_for: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    # given a file whose header is right but two rows are not
    data = {"file": _csv_file(_bad_cifar10s_csv()), "format": "cifar10s", "study": SLUG}
    # when
    res = _post(client_for, django_capture_on_commit_callbacks, data)
    # then the upload was accepted, and the job failed naming every bad row
    assert res.status_code == 202
    detail = client_for.get(f"/api/jobs/{res.json()['id']}/").json()
    assert (detail["status"], detail["message"], detail["study"], detail["download_url"]) == (
        "failed",
        "Failed",
        None,
        None,
    )
    assert detail["error"] == (
        "Nothing was imported: 2 problem(s) in the file:\n"
        "  line 6, column 'response': unparsable JSON (Expecting value): "
        '\'{"classSelect": "mostProbCat", "prob": \'\n'
        "  line 13, column 'response': unknown class name 'Dragon'"
    )
    # and nothing was imported
    assert Study.objects.exists() is False
    assert Participant.objects.exists() is False
    assert Response.objects.exists() is False


def test_replace_true_replaces_the_researchers_own_study(
    client_for: APIClient, researcher: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given the researcher's own study with that slug
    old = StudyFactory(owner=researcher, slug=SLUG, title="Old")
    data = {
        "file": _csv_file(fx.cifar10s_csv()),
        "format": "cifar10s",
        "study": SLUG,
        "title": "New",
        "replace": "true",
    }
    # when
    res = _post(client_for, django_capture_on_commit_callbacks, data)
    # then
    assert res.status_code == 202
    study = Study.objects.get(slug=SLUG)
    assert (study.id != old.id, study.title, Response.objects.filter(study=study).count()) == (
        True,
        "New",
        9,
    )
    assert Job.objects.get().status == "done"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format": "cifar10s", "study": SLUG}, "file: No file was submitted."),
        (
            {"file": "EMPTY", "format": "cifar10s", "study": SLUG},
            "file: The submitted file is empty.",
        ),
        (
            {"file": "OK", "format": "cifar100", "study": SLUG},
            'format: "cifar100" is not a format; expected one of cifar10s, hmix-categorical, '
            "hmix-mixing-factor, hmix-construct, hmix-select-shuffled.",
        ),
        ({"file": "OK", "study": SLUG}, "format: This field is required."),
        (
            {"file": "OK", "format": "cifar10s", "study": "not a slug!"},
            'study: Enter a valid "slug" consisting of letters, numbers, underscores or hyphens.',
        ),
        (
            {"file": "OK", "format": "cifar10s", "study": "x" * 81},
            "study: Ensure this field has no more than 80 characters.",
        ),
        (
            {"file": "LATIN1", "format": "cifar10s", "study": SLUG},
            "file: The file is not UTF-8 text (byte 4: invalid continuation byte); save it as "
            "CSV UTF-8.",
        ),
        (
            {"file": "BINARY", "format": "cifar10s", "study": SLUG},
            "file: The file is not CSV text (it holds NUL bytes).",
        ),
        (
            {"file": "OK", "format": "hmix-construct", "study": SLUG},
            "file: Not a hmix-construct file: missing column(s) for hmix-construct: "
            "final_value, start_value, class_pair",
        ),
    ],
)
def test_a_bad_request_is_refused_and_writes_nothing(
    client_for: APIClient,
    django_capture_on_commit_callbacks: Any,
    settings: Any,
    data: dict[str, Any],
    message: str,
) -> None:
    # given
    files = {
        "OK": _csv_file(fx.cifar10s_csv()),
        "EMPTY": _csv_file(""),
        "LATIN1": SimpleUploadedFile("raw.csv", b",tri\xe9l_type\n"),
        "BINARY": SimpleUploadedFile("raw.csv", b"trial_type,\x00\x00\x00\x01subject\n"),
    }
    if "file" in data:
        data = {**data, "file": files[data["file"]]}
    # when
    res = _post(client_for, django_capture_on_commit_callbacks, data)
    # then
    assert res.status_code == 400
    assert res.json()["message"] == message
    assert Job.objects.exists() is False
    assert Study.objects.exists() is False
    assert _media_files(settings) == []


def test_an_oversized_file_is_refused_and_writes_nothing(
    client_for: APIClient, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    # given a cap below the file's size
    settings.HMIX_MAX_UPLOAD_BYTES = 1000
    text = fx.cifar10s_csv()
    data = {"file": _csv_file(text), "format": "cifar10s", "study": SLUG}
    # when
    res = _post(client_for, django_capture_on_commit_callbacks, data)
    # then
    assert res.status_code == 400
    assert res.json()["message"] == (
        f"file: The file has {len(text.encode())} bytes; uploads are limited to 1000 bytes."
    )
    assert Job.objects.exists() is False
    assert _media_files(settings) == []


@pytest.mark.parametrize(
    ("owner", "replace", "message"),
    [
        (
            "self",
            "false",
            f"study: A study with slug '{SLUG}' already exists; choose another slug or replace it.",
        ),
        (
            "other",
            "true",
            f"study: The study '{SLUG}' belongs to another researcher; only its owner can "
            "replace it.",
        ),
    ],
)
def test_a_taken_slug_is_refused_and_writes_nothing(
    client_for: APIClient,
    researcher: Any,
    django_capture_on_commit_callbacks: Any,
    owner: str,
    replace: str,
    message: str,
) -> None:
    # given
    study_owner = researcher if owner == "self" else UserFactory(username="someone-else")
    existing = StudyFactory(owner=study_owner, slug=SLUG)
    data = {
        "file": _csv_file(fx.cifar10s_csv()),
        "format": "cifar10s",
        "study": SLUG,
        "replace": replace,
    }
    # when
    res = _post(client_for, django_capture_on_commit_callbacks, data)
    # then
    assert res.status_code == 400
    assert res.json()["message"] == message
    assert Job.objects.exists() is False
    assert list(Study.objects.values_list("id", flat=True)) == [existing.id]
    assert Response.objects.exists() is False


def test_an_anonymous_upload_is_refused(django_capture_on_commit_callbacks: Any) -> None:
    # given
    data = {"file": _csv_file(fx.cifar10s_csv()), "format": "cifar10s", "study": SLUG}
    # when
    res = _post(APIClient(), django_capture_on_commit_callbacks, data)
    # then
    assert res.status_code == 401
    assert Job.objects.exists() is False
    assert Study.objects.exists() is False


def test_another_researchers_import_job_is_not_found(
    client_for: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    # given an import by the researcher
    data = {"file": _csv_file(fx.cifar10s_csv()), "format": "cifar10s", "study": SLUG}
    job_id = _post(client_for, django_capture_on_commit_callbacks, data).json()["id"]
    other = APIClient()
    other.force_authenticate(UserFactory(username="someone-else"))
    # when
    res = other.get(f"/api/jobs/{job_id}/")
    page = Client()
    page.force_login(UserFactory(username="someone-else"))
    html = page.get(reverse("dashboard:legacy-import-job", kwargs={"job_id": job_id}))
    # then
    assert (res.status_code, html.status_code) == (404, 404)


# --- dashboard -----------------------------------------------------------------------------------


@pytest.fixture
def logged_in(researcher: Any) -> Client:
    client = Client()
    client.force_login(researcher)
    return client


def test_the_study_list_links_to_the_import_page(logged_in: Client) -> None:
    # when
    html = logged_in.get(reverse("dashboard:studies")).content.decode()
    # then
    assert '<a href="/dashboard/import/" id="legacy-import-link">' in html


def test_the_import_page_needs_a_login() -> None:
    # when
    res = Client().get(reverse("dashboard:legacy-import"))
    # then
    assert (res.status_code, res["Location"]) == (
        302,
        "/accounts/login/?next=/dashboard/import/",
    )


def test_the_dashboard_form_creates_the_job_and_shows_its_progress(
    logged_in: Client, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    data = {"file": _csv_file(fx.cifar10s_csv()), "format": "cifar10s", "study": SLUG}
    # when
    res = _post(
        logged_in, django_capture_on_commit_callbacks, data, reverse("dashboard:legacy-import")
    )
    # then the form redirects to the job's page
    job = Job.objects.get()
    assert res.status_code == 302
    assert res["Location"] == f"/dashboard/import/{job.public_id}/"
    assert (job.kind, job.status, Study.objects.get().slug) == ("legacy_import", "done", SLUG)
    # and that page shows it done, with the link to the new study and the poller's config
    page = logged_in.get(res["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert '<strong id="job-status" data-status="done">Done</strong>' in html
    assert '<span class="progress-text" id="job-percent">100%</span>' in html
    assert f'<a href="/dashboard/studies/{SLUG}/" id="job-study-link">' in html
    assert page.context["config"] == {
        "job_url": f"/api/jobs/{job.public_id}/",
        "study_url": f"/dashboard/studies/{SLUG}/",
    }


def test_the_dashboard_form_shows_a_refused_upload_and_writes_nothing(
    logged_in: Client, django_capture_on_commit_callbacks: Any
) -> None:
    # given a file in another format than the one chosen
    data = {"file": _csv_file(fx.select_csv()), "format": "cifar10s", "study": SLUG}
    # when
    res = _post(
        logged_in, django_capture_on_commit_callbacks, data, reverse("dashboard:legacy-import")
    )
    # then
    assert res.status_code == 400
    assert res.context["form"].errors == {
        "file": ["Not a cifar10s file: missing column(s) for cifar10s: filename, label, img_id"]
    }
    assert Job.objects.exists() is False


def test_the_dashboard_shows_a_failed_import_with_its_rows(
    logged_in: Client, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    data = {"file": _csv_file(_bad_cifar10s_csv()), "format": "cifar10s", "study": SLUG}
    # when
    res = _post(
        logged_in, django_capture_on_commit_callbacks, data, reverse("dashboard:legacy-import")
    )
    html = logged_in.get(res["Location"]).content.decode()
    # then
    assert '<strong id="job-status" data-status="failed">Failed</strong>' in html
    assert "line 13, column &#x27;response&#x27;: unknown class name &#x27;Dragon&#x27;" in html
    assert Study.objects.exists() is False


# --- in a real browser -------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_researcher_imports_a_file_from_the_dashboard(
    live_server: Any, page: Page, researcher: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    # given a published-format file on the researcher's disk, and a queue that holds the task
    # until the test runs it (so the page is seen waiting, then following the job)
    path = tmp_path / "hmix_infer_mixing_factor.csv"
    path.write_text(fx.mixing_csv())
    queued: list[int] = []
    monkeypatch.setattr(legacy_job_services.legacy_import_job_run_task, "delay", queued.append)
    # when the researcher logs in and opens the import page from the study list
    page.goto(f"{live_server.url}/dashboard/")
    page.fill("input[name=username]", researcher.username)
    page.fill("input[name=password]", "pw")
    page.click("#login-form button[type=submit]")
    page.click("#legacy-import-link")
    # and uploads the file
    page.set_input_files("input[name=file]", str(path))
    page.select_option("select[name=format]", "hmix-mixing-factor")
    page.fill("input[name=study]", "hmix-mix-web")
    page.fill("input[name=title]", "Mixing factor from the web")
    page.click("#import-submit")
    # then the job's page shows it waiting
    expect(page.locator("#job-status")).to_have_text("Pending")
    expect(page.locator("#job-percent")).to_have_text("0%")
    expect(page.locator("#job-study-link")).to_be_hidden()
    # when a worker runs the task
    assert len(queued) == 1
    legacy_import_job_run(queued[0])
    # then the polling page reaches done and links to the new study
    expect(page.locator("#job-status")).to_have_text("Done")
    expect(page.locator("#job-percent")).to_have_text("100%")
    expect(page.locator("#job-message")).to_have_text(
        "Imported 5 responses from 2 participants on 2 stimuli into 'hmix-mix-web'."
    )
    page.click("#job-study-link")
    expect(page).to_have_url(f"{live_server.url}/dashboard/studies/hmix-mix-web/")
    expect(page.locator("h1")).to_contain_text("Mixing factor from the web")
    assert Response.objects.filter(study__slug="hmix-mix-web").count() == 5


def test_a_job_reports_a_subject_split_into_two_sessions(
    client_for: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    # given the file in which one subject took the study twice
    data = {
        "file": _csv_file(fx.cifar10s_two_sessions_csv()),
        "format": "cifar10s",
        "study": SLUG,
    }
    # when
    res = _post(client_for, django_capture_on_commit_callbacks, data)
    # then the whole file is imported, the subject as two participants
    assert res.status_code == 202
    job = Job.objects.get()
    assert job.status == Job.Status.DONE
    assert job.message == (
        f"Imported 12 responses from 4 participants on 4 stimuli into {SLUG!r}. Subjects who "
        "took the study more than once, each session imported as its own participant: "
        "'subj-bravo-02' (2 sessions)."
    )
    detail = client_for.get(f"/api/jobs/{job.public_id}/").json()
    summary = json.loads(b"".join(client_for.get(detail["download_url"]).streaming_content))
    assert (summary["split_subjects"], summary["participants"], summary["responses"]) == (
        {"subj-bravo-02": 2},
        4,
        12,
    )
    assert sorted(
        Participant.objects.filter(study__slug=SLUG).values_list("external_id", flat=True)
    ) == ["subj-alpha-01", "subj-bravo-02", "subj-bravo-02#2", "subj-charlie-03"]
