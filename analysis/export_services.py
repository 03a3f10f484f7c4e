"""Exports and dataset bundles as background jobs: create the Job, enqueue it once the request
commits, run it in a worker that streams the file to disk and reports progress on the Job row."""

import logging
import tempfile
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction

from analysis import bundle, exports, selectors
from analysis.aggregation import Method
from analysis.models import AnalysisResult
from analysis.tasks import bundle_job_run as bundle_job_run_task
from analysis.tasks import export_job_run as export_job_run_task
from elicitation.models import Response, Study, Trial
from jobs.models import Job
from jobs.services import job_create, job_fail, job_finish, job_progress, job_start

logger = logging.getLogger(__name__)

# Rows between two progress writes to the Job row: a 1,000,000-row export updates it 100 times.
PROGRESS_EVERY = 10_000
EXTENSIONS = {
    "csv": "csv",
    "json": "json",
    "jsonl": "jsonl",
    "npy": "npy",
    "npy-index": "index.csv",
}


def export_filename(*, study: Study, what: str, fmt: str) -> str:
    """The same name the streaming REST export gives its attachment."""
    return f"{study.slug}-{what}.{EXTENSIONS[fmt]}"


def bundle_filename(*, study: Study) -> str:
    return f"{study.slug}-dataset.zip"


def _method_params(method: Method) -> dict[str, Any]:
    return {"name": method.name, **method.params()}


def _method_from(params: dict[str, Any]) -> Method:
    rest = {k: v for k, v in params.items() if k != "name"}
    return Method.from_params(params["name"], rest)


class JobProgress:
    """bundle.Progress for a Job: writes the fraction done every PROGRESS_EVERY rows.

    The total is an estimate from counts taken at the start, so the fraction stops at 0.99
    until job_finish sets 1.0.
    """

    def __init__(self, job: Job, *, every: int = PROGRESS_EVERY) -> None:
        self.job = job
        self.every = every
        self.total = 1
        self.done = 0
        self.reported = 0

    def start(self, total: int) -> None:
        self.total = max(total, 1)

    def advance(self, rows: int, member: str) -> None:
        self.done += rows
        if self.done - self.reported < self.every:
            return
        self.reported = self.done
        job_progress(
            job=self.job,
            fraction=min(0.99, self.done / self.total),
            message=f"{member}: {self.done:,} of about {self.total:,} rows",
        )


def export_rows_estimate(*, study: Study, what: str, method: Method) -> int:
    """How many rows the export will have, from counts (the progress bar's denominator)."""
    if what == "responses":
        return Response.objects.filter(study=study).count()
    if what == "annotation-soft-labels":
        qs = selectors.categorical_responses(study=study)
        if not method.include_repeats:
            qs = qs.exclude(kind=Trial.Kind.REPEAT)
        return qs.count()
    if what == "soft-labels":
        return selectors.soft_label_list(study=study, method=method).count()
    return AnalysisResult.objects.filter(study=study, kind__in=exports.ANALYSIS_KINDS[what]).count()


@transaction.atomic
def export_job_create(
    *,
    study: Study,
    owner_id: int,
    what: str,
    fmt: str,
    method: Method | None = None,
    raw_ids: bool = False,
) -> Job:
    """A pending export job, run by a worker once this transaction commits.

    Raises ValidationError (nothing written) for an unknown `what` or `fmt`, or a pair that
    does not go together (responses as npy).
    """
    method = method or selectors.study_default_method(study=study)
    try:
        # Building the stream checks the parameters; nothing is read until it is iterated.
        exports.export_stream(study=study, what=what, fmt=fmt, method=method)
    except exports.ExportError as exc:
        raise ValidationError({"export": str(exc)}) from exc
    job = job_create(
        owner_id=owner_id,
        kind=Job.Kind.EXPORT,
        study_id=study.id,
        params={
            "what": what,
            "format": fmt,
            "method": _method_params(method),
            "raw_ids": raw_ids,
        },
    )
    transaction.on_commit(lambda: export_job_run_task.delay(job.id))
    return job


@transaction.atomic
def bundle_job_create(
    *, study: Study, owner_id: int, method: Method | None = None, raw_ids: bool = False
) -> Job:
    method = method or selectors.study_default_method(study=study)
    job = job_create(
        owner_id=owner_id,
        kind=Job.Kind.BUNDLE,
        study_id=study.id,
        params={"method": _method_params(method), "raw_ids": raw_ids},
    )
    transaction.on_commit(lambda: bundle_job_run_task.delay(job.id))
    return job


def _fail(job: Job, exc: BaseException) -> Job:
    logger.exception("Job %s failed", job.public_id)
    # An export's own errors are written for the researcher; others get their type as context.
    error = str(exc) if isinstance(exc, exports.ExportError) else f"{type(exc).__name__}: {exc}"
    return job_fail(job=job, error=error)


def export_job_run(*, job: Job) -> Job:
    """Write the export to a temporary file, then attach it to the job.

    Idempotent: job_start lets exactly one run claim a pending job, so a redelivered task (or a
    second call) on a running or finished job returns it unchanged. Any error ends the job as
    failed with its message and no result: a claimed job must not stay "running".
    """
    if not job_start(job=job):
        return job
    try:
        assert job.study is not None  # export jobs are always made for a study
        study = job.study
        what, fmt = job.params["what"], job.params["format"]
        method = _method_from(job.params["method"])
        # Jobs queued before the option existed have no "raw_ids": pseudonyms only.
        raw_ids = bool(job.params.get("raw_ids", False))
        stream = exports.export_stream(
            study=study, what=what, fmt=fmt, method=method, raw_ids=raw_ids
        )
        name = export_filename(study=study, what=what, fmt=fmt)
        progress = JobProgress(job)
        progress.start(export_rows_estimate(study=study, what=what, method=method))
        with tempfile.TemporaryFile() as tmp:
            bundle.write_chunks(stream, tmp, on_rows=lambda n: progress.advance(n, name))
            tmp.seek(0)
            return job_finish(job=job, result=File(tmp, name=name), message=f"Wrote {name}")
    # The worker's last line of defence: whatever went wrong is recorded on the job.
    except Exception as exc:
        return _fail(job, exc)


def bundle_job_run(*, job: Job) -> Job:
    """Write the study's dataset bundle (bundle.bundle_write) and attach it; idempotent and
    failing like export_job_run."""
    if not job_start(job=job):
        return job
    try:
        assert job.study is not None
        study = job.study
        method = _method_from(job.params["method"])
        name = bundle_filename(study=study)
        with tempfile.TemporaryFile() as tmp:
            result = bundle.bundle_write(
                study=study,
                fh=tmp,
                method=method,
                progress=JobProgress(job),
                raw_ids=bool(job.params.get("raw_ids", False)),
            )
            tmp.seek(0)
            return job_finish(
                job=job,
                result=File(tmp, name=name),
                message=f"{len(result.names)} files, {result.total_rows:,} rows",
            )
    except Exception as exc:
        return _fail(job, exc)
