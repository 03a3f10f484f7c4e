"""Legacy imports uploaded by researchers (dashboard form and REST API), run as a jobs.Job.

The upload is checked before a job is written (size, UTF-8 CSV text, the format's columns, a
free slug), so a bad request leaves nothing behind; the rows themselves are parsed by the worker,
which reports progress while it reads and then calls `legacy_services.legacy_import` (one
transaction: a malformed file imports nothing and the job's error lists every bad row).
"""

import io
import json
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any, Final

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.core.validators import validate_slug
from django.db import transaction

from elicitation import legacy, legacy_services
from elicitation.models import Study
from elicitation.tasks import legacy_import_job_run as legacy_import_job_run_task
from hmix_site.common.exceptions import ApplicationError
from jobs.models import Job
from jobs.services import job_create, job_fail, job_finish, job_progress, job_start

logger = logging.getLogger(__name__)

# What the researcher picks from, named after the published files (docs/formats/import.md#legacy).
FORMAT_LABELS: Final = {
    legacy.CIFAR10S: "CIFAR-10S raw data (raw_human_data.csv)",
    legacy.HMIX_CATEGORICAL: "H-Mix categorical (hmix_categorical_soft_labels.csv)",
    legacy.HMIX_MIXING_FACTOR: "H-Mix infer the mixing factor (hmix_infer_mixing_factor.csv)",
    legacy.HMIX_CONSTRUCT: "H-Mix construct the midpoint (hmix_construct_midpoint.csv)",
    legacy.HMIX_SELECT_SHUFFLED: (
        "H-Mix select the shuffled midpoint (hmix_select_shuffled_midpoint.csv)"
    ),
}
SLUG_MAX_LENGTH: Final = Study._meta.get_field("slug").max_length or 80
TITLE_MAX_LENGTH: Final = Study._meta.get_field("title").max_length or 200
UPLOAD_NAME: Final = "upload.csv"
# Parsing is reported from 0 to PARSE_SHARE, every PROGRESS_EVERY lines; the write (one
# transaction, invisible to pollers until it commits) takes the job from there to done.
PARSE_SHARE: Final = 0.5
PROGRESS_EVERY: Final = 1000
# A file with every row wrong would give a megabyte of error text; the first ones tell the story.
MAX_ERRORS_STORED: Final = 1000


def upload_limit_bytes() -> int:
    """The upload cap: HMIX_MAX_UPLOAD_BYTES."""
    return int(settings.HMIX_MAX_UPLOAD_BYTES)


def _check_slug(*, study_slug: str, owner_id: int, replace: bool) -> None:
    try:
        validate_slug(study_slug)
    except ValidationError as exc:
        raise ValidationError({"study": exc.messages}) from exc
    if len(study_slug) > SLUG_MAX_LENGTH:
        raise ValidationError({"study": f"A study slug has at most {SLUG_MAX_LENGTH} characters."})
    existing_owner = (
        Study.objects.filter(slug=study_slug).values_list("owner_id", flat=True).first()
    )
    if existing_owner is None:
        return
    if not replace:
        raise ValidationError(
            {
                "study": f"A study with slug {study_slug!r} already exists; choose another slug "
                "or replace it."
            }
        )
    if existing_owner != owner_id:
        raise ValidationError(
            {
                "study": f"The study {study_slug!r} belongs to another researcher; only its "
                "owner can replace it."
            }
        )


def _check_csv_text(*, data: bytes, fmt: str) -> None:
    """UTF-8 CSV text whose header has the format's columns (the rows are the worker's job)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            {
                "file": f"The file is not UTF-8 text (byte {exc.start}: {exc.reason}); save it "
                "as CSV UTF-8."
            }
        ) from exc
    if "\x00" in text:
        raise ValidationError({"file": "The file is not CSV text (it holds NUL bytes)."})
    header = io.StringIO(text, newline="").readline()
    try:
        legacy.parse(fmt, [header])
    except legacy.LegacyFormatError as exc:
        raise ValidationError(
            {"file": f"Not a {fmt} file: {'; '.join(e.message for e in exc.errors)}"}
        ) from exc


@transaction.atomic
def legacy_import_job_create(
    *,
    owner_id: int,
    upload: File,
    fmt: str,
    study_slug: str,
    title: str = "",
    replace: bool = False,
) -> Job:
    """Check an uploaded published file and queue its import into study `study_slug`.

    Raises ValidationError (keyed "format", "study", "title" or "file") and writes nothing when
    the format is unknown, the slug is invalid or taken (replace=True replaces only the owner's
    own study), or the file is too large, not UTF-8 CSV text or lacks the format's columns.
    The task is enqueued once the job is committed.
    """
    if fmt not in legacy.FORMATS:
        raise ValidationError(
            {"format": f"Unknown format {fmt!r}; expected one of {', '.join(legacy.FORMATS)}."}
        )
    _check_slug(study_slug=study_slug, owner_id=owner_id, replace=replace)
    if len(title) > TITLE_MAX_LENGTH:
        raise ValidationError({"title": f"A title has at most {TITLE_MAX_LENGTH} characters."})
    limit = upload_limit_bytes()
    if (upload.size or 0) > limit:
        raise ValidationError(
            {"file": f"The file has {upload.size} bytes; uploads are limited to {limit} bytes."}
        )
    data = b"".join(upload.chunks())
    if not data:
        raise ValidationError({"file": "The file is empty."})
    if len(data) > limit:  # a size the client misreported
        raise ValidationError(
            {"file": f"The file has {len(data)} bytes; uploads are limited to {limit} bytes."}
        )
    _check_csv_text(data=data, fmt=fmt)
    job = job_create(
        owner_id=owner_id,
        kind=Job.Kind.LEGACY_IMPORT,
        params={
            "format": fmt,
            "study": study_slug,
            "title": title,
            "replace": replace,
            "filename": (upload.name or "")[:200],
            "bytes": len(data),
        },
        # Stored under a fixed name: the researcher's file name is kept in params instead, so
        # an odd or overlong name cannot break the storage path.
        upload=ContentFile(data, name=UPLOAD_NAME),
    )
    transaction.on_commit(lambda: legacy_import_job_run_task.delay(job.id))
    return job


def _reporting(job: Job, lines: Iterable[str], total: int) -> Iterator[str]:
    for n, line in enumerate(lines, start=1):
        if n % PROGRESS_EVERY == 0:
            job_progress(
                job=job,
                fraction=PARSE_SHARE * min(1.0, n / total),
                message=f"Parsing: line {n} of {total}",
            )
        yield line


def _format_errors(exc: legacy.LegacyFormatError) -> str:
    shown = "\n".join(f"  {e}" for e in exc.errors[:MAX_ERRORS_STORED])
    more = len(exc.errors) - MAX_ERRORS_STORED
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return f"Nothing was imported: {len(exc.errors)} problem(s) in the file:\n{shown}{tail}"


def _run(job: Job) -> tuple[legacy_services.LegacyImportResult, float]:
    started = time.perf_counter()
    params = job.params
    fmt, slug = params["format"], params["study"]
    job_progress(job=job, fraction=0.0, message="Reading the file")
    with job.upload.open("rb") as fh:
        text = fh.read().decode("utf-8-sig")
    # Physical lines, as the csv reader counts them (a last line may lack its newline).
    total = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    parsed = legacy.parse(fmt, _reporting(job, io.StringIO(text, newline=""), total))
    job_progress(
        job=job,
        fraction=PARSE_SHARE,
        message=f"Parsed {parsed.n_rows} rows ({len(parsed.responses)} responses); writing "
        "the study",
    )
    # Checked again here: the slug may have been taken (or changed hands) since the upload.
    existing_owner = Study.objects.filter(slug=slug).values_list("owner_id", flat=True).first()
    if existing_owner is not None and params["replace"] and existing_owner != job.owner_id:
        raise ApplicationError(f"The study {slug!r} belongs to another researcher.")
    result = legacy_services.legacy_import(
        study_slug=slug,
        fmt=fmt,
        source=parsed,
        owner=job.owner,
        replace=bool(params["replace"]),
        title=params["title"] or None,
    )
    return result, time.perf_counter() - started


def _summary(
    job: Job, result: legacy_services.LegacyImportResult, seconds: float
) -> dict[str, Any]:
    study = result.study
    return {
        "study": study.slug,
        "title": study.title,
        "format": job.params["format"],
        "trial_type": study.trial_type,
        "filename": job.params.get("filename", ""),
        "rows": result.n_rows,
        "skipped_rows": result.n_skipped,
        "responses": result.n_responses,
        "repeats": result.n_repeats,
        # Subjects who took the study twice: each session was imported as its own participant.
        "split_subjects": result.split_subjects,
        "participants": result.n_participants,
        "batches": result.n_batches,
        "stimuli": result.n_stimuli,
        "images": result.n_images,
        "seconds": round(seconds, 2),
    }


def _split_note(split_subjects: dict[str, int]) -> str:
    if not split_subjects:
        return ""
    # Job.message holds 500 characters; the result file names every such subject.
    items = list(split_subjects.items())
    named = ", ".join(f"{subject[:40]!r} ({n} sessions)" for subject, n in items[:3])
    if len(items) > 3:
        named += f" and {len(items) - 3} more"
    return (
        " Subjects who took the study more than once, each session imported as its own "
        f"participant: {named}."
    )


def legacy_import_job_run(*, job: Job) -> Job:
    """Import a pending legacy-import job's upload; returns the job, done or failed.

    Claims the job first (jobs.services.job_start): a job that is not pending is left as it is,
    so a redelivered task does nothing twice. A malformed file fails the job with every bad
    row in `error` and imports nothing (legacy_import is one transaction); the result of a done
    job is a JSON summary, and the job points at the new study.
    """
    if not job_start(job=job):
        job.refresh_from_db()
        return job
    try:
        result, seconds = _run(job)
    except legacy.LegacyFormatError as exc:
        return job_fail(job=job, error=_format_errors(exc))
    except ApplicationError as exc:
        return job_fail(job=job, error=f"Nothing was imported: {exc.message}")
    except ValidationError as exc:
        return job_fail(job=job, error=f"Nothing was imported: {' '.join(exc.messages)}")
    except UnicodeDecodeError as exc:
        return job_fail(job=job, error=f"Nothing was imported: the file is not UTF-8: {exc}")
    except BaseException:
        # Anything else (a lost database, the soft time limit) must not leave the job
        # "running" for ever in front of the researcher; the traceback goes to the log.
        logger.exception("Legacy import job %s failed", job.public_id)
        job_fail(
            job=job,
            error="Nothing was imported: the import stopped on an unexpected error (the site's "
            "log has the details).",
        )
        raise
    summary = _summary(job, result, seconds)
    return job_finish(
        job=job,
        result=ContentFile(
            json.dumps(summary, indent=2).encode(), name=f"{result.study.slug}-import.json"
        ),
        message=(
            f"Imported {result.n_responses} responses from {result.n_participants} "
            f"participants on {result.n_stimuli} stimuli into {result.study.slug!r}."
            + _split_note(result.split_subjects)
        ),
        study_id=result.study.id,
    )
