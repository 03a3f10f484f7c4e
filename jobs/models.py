import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from hmix_site.common.models import BaseModel


def _job_upload_path(instance: "Job", filename: str) -> str:
    return f"jobs/{instance.public_id}/{filename}"


# Kinds whose workers check Job.cancel_requested while they run (others can only be cancelled
# before a worker claims them).
CANCELLABLE_WHILE_RUNNING = ("iri_generate", "network_train")


class Job(BaseModel):
    """A long-running researcher request (a large export, a legacy import, stimulus generation,
    an image-set upload) run by a worker.

    The browser or API client polls it for `progress` and, once done, downloads `result`.
    """

    class Kind(models.TextChoices):
        EXPORT = "export", "Export"
        BUNDLE = "bundle", "Dataset bundle"
        LEGACY_IMPORT = "legacy_import", "Legacy import"
        GENERATE_STIMULI = "generate_stimuli", "Stimulus generation"
        IMAGE_UPLOAD = "image_upload", "Image-set upload"
        IRI_GENERATE = "iri_generate", "IRI generation"
        NETWORK_TRAIN = "network_train", "Model training"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs"
    )
    study = models.ForeignKey(
        "elicitation.Study", on_delete=models.CASCADE, null=True, blank=True, related_name="jobs"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    params = models.JSONField(default=dict, blank=True)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    # An uploaded input (e.g. the legacy CSV) and the produced output (e.g. the export file).
    upload = models.FileField(upload_to=_job_upload_path, blank=True)
    result = models.FileField(upload_to=_job_upload_path, blank=True)
    error = models.TextField(blank=True)
    # Set by the owner; a worker running a cancellable kind checks it between steps and stops.
    cancel_requested = models.BooleanField(default=False)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="job_progress_fraction"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.public_id} ({self.status})"
