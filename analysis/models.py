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


class PendingRecompute(models.Model):
    """Stored results that are behind the stored answers: one row per stale target.

    An answer marks its stimulus's soft labels (or, for interfaces B–F, its study's analyses)
    stale in the same transaction that stores it, so the mark is as durable as the answer. Only
    the answer that creates the row enqueues a refresh; later answers just bump `version`, which
    is how a burst of answers on one target costs about one recompute. The refresh deletes the
    row only if `version` is unchanged since it read the answers, so nothing is missed, and a
    row left behind by a crashed worker is picked up again by the periodic reconcile. Soft
    labels are refreshed by one sweep over every stale stimulus at a time (recompute_services).
    """

    class Target(models.TextChoices):
        SOFT_LABELS = "soft_labels", "Soft labels of a stimulus"
        STUDY_ANALYSIS = "study_analysis", "Interface analyses of a study"
        # One row (object_id 0) while a sweep of the stale soft labels is queued or running.
        SOFT_LABEL_SWEEP = "soft_label_sweep", "A sweep of stale soft labels is under way"

    target = models.CharField(max_length=16, choices=Target.choices)
    # A Stimulus id (soft labels), a Study id (analyses), 0 (the sweep); a row whose object is
    # gone is dropped.
    object_id = models.BigIntegerField()
    version = models.PositiveIntegerField(default=1)
    # When the target first went stale since its last refresh (not bumped by later answers); for
    # the sweep, when it last made progress.
    requested_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["target", "object_id"], name="pending_recompute_unique")
        ]
        indexes = [models.Index(fields=["requested_at"], name="pending_recompute_age")]

    def __str__(self) -> str:
        return f"{self.target}:{self.object_id}@{self.version}"
