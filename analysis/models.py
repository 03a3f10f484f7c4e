from django.db import models
from django.db.models import Q

from elicitation.models import Stimulus, Study
from hmix_site.common.models import BaseModel


class SoftLabel(BaseModel):
    """A stimulus's aggregated soft label under one method and parameter set.

    Recomputed from the stored responses; (stimulus, method, params_key) is unique so a
    recompute overwrites instead of adding rows.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="soft_labels")
    stimulus = models.ForeignKey(Stimulus, on_delete=models.CASCADE, related_name="soft_labels")
    method = models.CharField(max_length=64)
    params = models.JSONField(default=dict)
    # Canonical JSON of params: JSON columns cannot take part in a unique constraint portably.
    params_key = models.CharField(max_length=255)
    probs = models.JSONField()
    n_annotations = models.PositiveIntegerField()
    n_annotators = models.PositiveIntegerField()
    entropy = models.FloatField()

    class Meta:
        ordering = ["study", "stimulus"]
        constraints = [
            models.UniqueConstraint(
                fields=["stimulus", "method", "params_key"], name="soft_label_unique_method"
            ),
            models.CheckConstraint(condition=Q(n_annotations__gte=1), name="soft_label_nonempty"),
        ]
        indexes = [models.Index(fields=["study", "method", "params_key"], name="soft_label_study")]

    def __str__(self) -> str:
        return f"{self.stimulus_id}:{self.method}"


class AnalysisResult(BaseModel):
    """One row of an interface analysis (B–F), recomputed from the stored responses.

    `key` names the group (a stimulus key, a λ level, "construct|1|Cat_3_Dog_7", a model...);
    `data` holds the summary's fields. (study, kind, key, params_key) is unique, so a recompute
    replaces rows instead of adding them.
    """

    class Kind(models.TextChoices):
        MIXING_STIMULUS = "mixing-stimulus", "Mixing factor per stimulus"
        MIXING_LAMBDA = "mixing-lambda", "Mixing factor per λ"
        MIDPOINT = "midpoint", "Midpoint summary"
        MIDPOINT_CONSISTENCY = "midpoint-consistency", "Midpoint repeat consistency"
        IRI_ALIGNMENT = "iri-alignment", "IRI alignment"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="analysis_results")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    key = models.CharField(max_length=255)
    params = models.JSONField(default=dict)
    params_key = models.CharField(max_length=255)
    n = models.PositiveIntegerField()
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["study", "kind", "key"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "kind", "key", "params_key"], name="analysis_result_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.study_id}:{self.kind}:{self.key}"
