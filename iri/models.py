from django.conf import settings
from django.db import models
from django.db.models import Q

from hmix_site.common.models import BaseModel

MIN_INPUT_SIZE = 8
MAX_INPUT_SIZE = 512


def _network_upload_path(instance: "Network", filename: str) -> str:
    return f"networks/{instance.owner_id}/{instance.name}.pt"


class Network(BaseModel):
    """A model IRIs are generated from: a TorchScript file with what generation needs to feed it
    (input size, per-channel normalisation) and the layer to use unless a job names another.

    Uploaded by a researcher, or trained by H-Mix on an image set (iri.cnn: standard or ℓ2-PGD
    robust). The file is TorchScript, so loading it runs no Python from the upload.
    """

    class Source(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded TorchScript"
        TRAINED = "trained", "Trained by H-Mix"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="networks"
    )
    name = models.SlugField(max_length=80)
    source = models.CharField(max_length=16, choices=Source.choices)
    # The manifest's "regime" of every IRI made from it (standard, robust, or the uploader's).
    regime = models.SlugField(max_length=40)
    file = models.FileField(upload_to=_network_upload_path)
    input_size = models.PositiveSmallIntegerField()
    # Applied by generation before the model when the file does not normalise itself
    # ([0, 0, 0] and [1, 1, 1] for H-Mix's own CNNs, which do).
    mean = models.JSONField(default=list)
    std = models.JSONField(default=list)
    layer = models.CharField(max_length=64)
    classes = models.JSONField(default=list, blank=True)
    # Training settings and accuracies, the file's SHA-256, the layer's output shape.
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="network_unique_name"),
            models.CheckConstraint(
                condition=Q(input_size__gte=MIN_INPUT_SIZE) & Q(input_size__lte=MAX_INPUT_SIZE),
                name="network_input_size_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.regime})"
