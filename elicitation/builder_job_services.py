"""The study builder's long work as jobs (jobs.Job): generating a study's stimuli and storing an
uploaded image set. The dashboard pages and the REST API call the `*_job_create` services, which
check the request at once (a bad one raises ValidationError and writes nothing), store what the
worker needs and queue the task once the request commits; the web request then returns. The
worker runs `*_job_run`, which reports progress per image or stimulus and ends the job done
(with a JSON summary as its result) or failed (with a message; nothing written: the services
it calls are all or nothing, see stimulus_services).
"""

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.db import transaction

from elicitation import builder_services, imaging, selectors, stimulus_services, uploads
from elicitation.models import ImageSet, Study
from elicitation.tasks import image_upload_job_run as image_upload_job_run_task
from elicitation.tasks import stimuli_generate_job_run as stimuli_generate_job_run_task
from hmix_site.common.exceptions import ApplicationError
from jobs.models import Job
from jobs.services import job_create, job_fail, job_finish, job_progress, job_start

logger = logging.getLogger(__name__)

ZIP_SOURCE: Final = "zip"
CIFAR_SOURCE: Final = "cifar10"
# Progress writes per job at most (one UPDATE each): every image or stimulus for small jobs,
# every 1 % of them for large ones.
PROGRESS_STEPS: Final = 100
# An image upload decodes every image, then stores each one: the two halves of its progress bar.
DECODE_SHARE: Final = 0.5
UNEXPECTED: Final = "stopped on an unexpected error (the site's log has the details)"


def _reporter(
    job: Job, *, start: float, share: float, what: Callable[[int, int], str]
) -> Callable[[int, int], None]:
    """A progress callback writing start + share × done/total to the job, at most
    PROGRESS_STEPS times (and always for the last item). Called outside any transaction (the
    services render before they write), so pollers see each write at once."""
    last = [-1]

    def report(done: int, total: int) -> None:
        step = done * PROGRESS_STEPS // max(total, 1)
        if step == last[0] and done != total:
            return
        last[0] = step
        # Below 1.0 until job_finish: the rows are still to be written.
        fraction = min(0.99, start + share * done / max(total, 1))
        job_progress(job=job, fraction=fraction, message=what(done, total))

    return report


# --- stimulus generation -------------------------------------------------------------------


@transaction.atomic
def stimuli_generate_job_create(
    *,
    study: Study,
    image_set: ImageSet,
    owner_id: int,
    n_pairs: int,
    lambdas: Sequence[float] = (),
    plain_per_class: int = 0,
    seed: int = 0,
) -> Job:
    """Check a generation request (builder_services.study_stimuli_check: ValidationError or
    ApplicationError, nothing written) and queue it as a job of the study."""
    planned = builder_services.study_stimuli_check(
        study=study,
        image_set=image_set,
        n_pairs=n_pairs,
        lambdas=lambdas,
        plain_per_class=plain_per_class,
        seed=seed,
    )
    job = job_create(
        owner_id=owner_id,
        kind=Job.Kind.GENERATE_STIMULI,
        study_id=study.id,
        params={
            "image_set": image_set.name,
            "image_set_id": image_set.id,
            "n_pairs": n_pairs,
            "lambdas": list(lambdas),
            "plain_per_class": plain_per_class,
            "seed": seed,
            "planned": planned,
        },
    )
    transaction.on_commit(lambda: stimuli_generate_job_run_task.delay(job.id))
    return job


def _generate(job: Job) -> tuple[Study, list[Any]]:
    params = job.params
    # A generation job always has its study; a deleted study deletes the job (CASCADE).
    study = Study.objects.filter(id=job.study_id).first() if job.study_id else None
    image_set = ImageSet.objects.filter(id=params["image_set_id"]).first()
    if study is None:
        raise ApplicationError("the study no longer exists.")
    if image_set is None:
        raise ApplicationError(f"the image set {params['image_set']!r} no longer exists.")
    job_progress(job=job, fraction=0.0, message="Rendering the stimuli")
    created = builder_services.study_stimuli_generate(
        study=study,
        image_set=image_set,
        n_pairs=params["n_pairs"],
        lambdas=params["lambdas"],
        plain_per_class=params["plain_per_class"],
        seed=params["seed"],
        progress=_reporter(
            job,
            start=0.0,
            share=1.0,
            what=lambda done, total: f"Rendered {done} of {total} new stimuli",
        ),
    )
    return study, created


def stimuli_generate_job_run(*, job: Job) -> Job:
    """Generate a pending generation job's stimuli; returns the job, done or failed.

    Claims the job first (jobs.services.job_start), so a redelivered task does nothing twice.
    A rule broken since the request (the study went live, the image set was deleted, its
    classes no longer fit) fails the job with the reason and writes nothing; so does any other
    error. The result of a done job is a JSON summary with the new stimuli's keys.
    """
    if not job_start(job=job):
        job.refresh_from_db()
        return job
    try:
        study, created = _generate(job)
    except ValidationError as exc:
        return job_fail(job=job, error=f"Nothing was generated: {' '.join(exc.messages)}")
    except ApplicationError as exc:
        return job_fail(job=job, error=f"Nothing was generated: {exc.message}")
    except Exception:  # the worker's last line of defence: the job must not stay "running"
        logger.exception("Stimulus generation job %s failed", job.public_id)
        return job_fail(job=job, error=f"Nothing was generated: the generation {UNEXPECTED}.")
    study.refresh_from_db()
    total = selectors.stimulus_list(study=study).count()
    summary = {
        "study": study.slug,
        "image_set": job.params["image_set"],
        "created": len(created),
        "total": total,
        "classes": study.classes,
        "keys": [stimulus.key for stimulus in created],
    }
    return job_finish(
        job=job,
        result=ContentFile(
            json.dumps(summary, indent=2).encode(), name=f"{study.slug}-stimuli.json"
        ),
        message=f"Generated {len(created)} new stimuli ({total} in total).",
    )


# --- image-set uploads ---------------------------------------------------------------------


def _upload_error(field: str, exc: imaging.ImageImportError) -> ValidationError:
    return ValidationError({field: f"Nothing was imported: {exc}"})


@transaction.atomic
def image_upload_job_create(
    *,
    owner_id: int,
    name: str,
    source: str,
    zip_file: File | None = None,
    cifar_files: Sequence[File] = (),
    cifar_meta: File | None = None,
    limit_per_class: int | None = None,
) -> Job:
    """Check an image-set upload and queue storing it as a job.

    Raises ValidationError (keyed "name", "source", "zip_file" or "cifar_files") and writes
    nothing for a taken or invalid name, or an upload that is too large, not a zip, laid out
    wrongly, or holds a file that is not an image or is over the pixel limits (checked on the
    headers, nothing decoded: uploads.check_zip); CIFAR-10 batches are checked in full (the
    restricted unpickler, labels, limits), which only reads arrays. The files go to the job's
    `upload` through Django's storage before this returns.
    """
    # The name first (unique, a slug); the classes are only known once the files are read.
    ImageSet(name=name, source=ImageSet.Source.FOLDER, owner_id=owner_id).full_clean(
        exclude=["classes"]
    )
    limits = uploads.upload_limits()
    if source == ZIP_SOURCE:
        if zip_file is None:
            raise ValidationError({"zip_file": "Give the zip file."})
        try:
            names = uploads.check_zip(zip_file, limits=limits)
        except imaging.ImageImportError as exc:
            raise _upload_error("zip_file", exc) from exc
        zip_file.seek(0)
        upload = ContentFile(zip_file.read(), name="images.zip")
        filenames = [zip_file.name or "images.zip"]
        classes = sorted({n.class_name for n in names})
        n_images = len(names)
    elif source == CIFAR_SOURCE:
        if not cifar_files:
            raise ValidationError({"cifar_files": "Give at least one CIFAR-10 batch file."})
        try:
            images = uploads.images_from_cifar(
                cifar_files, meta=cifar_meta, limit_per_class=limit_per_class, limits=limits
            )
        except imaging.ImageImportError as exc:
            raise _upload_error("cifar_files", exc) from exc
        upload = uploads.cifar_pack(cifar_files, meta=cifar_meta)
        filenames = [f.name or "" for f in cifar_files]
        classes = sorted({i.class_name for i in images})
        n_images = len(images)
    else:
        raise ValidationError(
            {"source": f"Unknown source {source!r}; expected {ZIP_SOURCE} or {CIFAR_SOURCE}."}
        )
    job = job_create(
        owner_id=owner_id,
        kind=Job.Kind.IMAGE_UPLOAD,
        params={
            "name": name,
            "source": source,
            "limit_per_class": limit_per_class,
            # For error messages: the worker names the researcher's files, not the stored ones.
            "filenames": [f[:200] for f in filenames],
            "classes": classes,
            "n_images": n_images,
        },
        upload=upload,
    )
    transaction.on_commit(lambda: image_upload_job_run_task.delay(job.id))
    return job


def _images(job: Job) -> list[imaging.BaseImage]:
    params = job.params
    limits = uploads.upload_limits()
    # Read through the job's storage (local disk or a bucket), never a local path.
    with job.upload.open("rb") as fh:
        data = fh.read()
    if params["source"] == ZIP_SOURCE:
        return uploads.images_from_zip(
            ContentFile(data, name=params["filenames"][0]),
            limits=limits,
            on_image=_reporter(
                job,
                start=0.0,
                share=DECODE_SHARE,
                what=lambda done, total: f"Checked {done} of {total} images",
            ),
        )
    job_progress(job=job, fraction=0.0, message="Reading the CIFAR-10 batches")
    return uploads.images_from_cifar_pack(
        ContentFile(data, name="cifar.zip"),
        limit_per_class=params["limit_per_class"],
        limits=limits,
    )


def image_upload_job_run(*, job: Job) -> Job:
    """Store a pending upload job's images as a new image set; returns the job, done or failed.

    Claims the job first, like stimuli_generate_job_run. The images are decoded in full here
    (the request only checked their headers): a broken one fails the job naming the file, and
    nothing is stored. The name may have been taken since the request; that fails it too.
    """
    if not job_start(job=job):
        job.refresh_from_db()
        return job
    params = job.params
    try:
        images = _images(job)
        image_set = stimulus_services.image_set_create(
            name=params["name"],
            source=(
                ImageSet.Source.FOLDER
                if params["source"] == ZIP_SOURCE
                else ImageSet.Source.CIFAR10
            ),
            images=images,
            owner_id=job.owner_id,
            progress=_reporter(
                job,
                start=DECODE_SHARE,
                share=1.0 - DECODE_SHARE,
                what=lambda done, total: f"Stored {done} of {total} images",
            ),
        )
    except imaging.ImageImportError as exc:
        return job_fail(job=job, error=f"Nothing was imported: {exc}")
    except ValidationError as exc:
        return job_fail(job=job, error=f"Nothing was imported: {' '.join(exc.messages)}")
    except Exception:
        logger.exception("Image upload job %s failed", job.public_id)
        return job_fail(job=job, error=f"Nothing was imported: the upload {UNEXPECTED}.")
    summary = {
        "name": image_set.name,
        "source": image_set.source,
        "classes": image_set.classes,
        "n_images": len(images),
    }
    return job_finish(
        job=job,
        result=ContentFile(
            json.dumps(summary, indent=2).encode(), name=f"{image_set.name}-images.json"
        ),
        message=(
            f"Imported {len(images)} images of {len(image_set.classes)} classes into "
            f"{image_set.name!r}: {', '.join(image_set.classes)}."
        ),
    )
