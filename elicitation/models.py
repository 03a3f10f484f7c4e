import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from hmix_site.common.models import BaseModel
from hmix_site.common.validators import validate_web_url_template


def _stimulus_upload_path(instance: "Stimulus", filename: str) -> str:
    # Opaque names: the published-style key ("mixed_0.25_Cat_...") would reveal the answer.
    return f"stimuli/{instance.study_id}/{instance.public_id}.png"


def _source_upload_path(instance: "SourceImage", filename: str) -> str:
    # A new set's files are stored before its row is written (stimulus_services.image_set_create),
    # so it has no id yet; the uuid alone keeps the names apart.
    return f"sources/{instance.image_set_id or 'new'}/{uuid.uuid4()}.png"


class Study(BaseModel):
    class TrialType(models.TextChoices):
        CATEGORICAL = "categorical", "A. Categorical soft label"
        MIXING_FACTOR = "mixing_factor", "B. Infer the mixing factor, with confidence"
        CONSTRUCT_MIDPOINT = "construct_midpoint", "C. Construct the 50/50 point"
        SELECT_MIDPOINT = "select_midpoint", "D. Select the 50/50 point"
        IRI_2AFC = "iri_2afc", "E. IRI two-alternative forced choice"
        IRI_CLUSTER = "iri_cluster", "F. IRI clustering"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        LIVE = "live", "Live"
        PAUSED = "paused", "Paused"
        CLOSED = "closed", "Closed"

    slug = models.SlugField(max_length=80, unique=True)
    title = models.CharField(max_length=200)
    trial_type = models.CharField(max_length=32, choices=TrialType.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_studies"
    )
    researchers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="studies", blank=True
    )
    # Ordered class list: every probability vector of the study is in this order. Empty in a
    # new draft until its first stimuli bring their image set's classes (and in IRI studies).
    classes = models.JSONField(default=list, blank=True)

    participants_per_batch = models.PositiveIntegerField(default=5)
    repeats = models.PositiveSmallIntegerField(default=2)
    # How long a session is expected to take (the figure given on the crowd platform). The
    # slot lease of a new study defaults from it (services.lease_minutes_for).
    expected_minutes = models.PositiveSmallIntegerField(default=15)
    # A slot is freed this long after the participant's last answer (every answer renews it).
    lease_minutes = models.PositiveIntegerField(default=15)

    consent_html = models.TextField(blank=True)
    # [{"title": str, "html": str}, ...]
    instructions = models.JSONField(default=list, blank=True)
    # [{"question": str, "options": [str, ...], "answer": int}, ...]
    comprehension = models.JSONField(default=list, blank=True)
    # Failed attempts after which the participant is excluded; None means never.
    max_comprehension_failures = models.PositiveSmallIntegerField(null=True, blank=True, default=3)
    # [str, ...]: optional free-text questions at the end
    debrief_questions = models.JSONField(default=list, blank=True)
    completion_code = models.CharField(max_length=64, blank=True)
    # The researcher pays another way (e.g. a bonus by participant id): a study may then launch
    # without a completion code. Launching with neither is refused (study_launch_checklist).
    pays_without_code = models.BooleanField(default=False)
    # Where a participant is sent at the end, one address per platform. "{code}" is replaced by
    # the code; empty means "show the code only". MTurk needs no address: its workers' answers
    # are posted to the externalSubmit URL MTurk gave on arrival (turkSubmitTo).
    completion_url = models.CharField(  # direct link and others
        max_length=500, blank=True, validators=[validate_web_url_template]
    )
    prolific_completion_url = models.CharField(
        max_length=500, blank=True, validators=[validate_web_url_template]
    )
    # Screen-out codes: for a worker who arrives when every place is taken, and for one excluded
    # by the checks (comprehension failures over the limit). Empty: return instructions only.
    full_code = models.CharField(max_length=64, blank=True)
    excluded_code = models.CharField(max_length=64, blank=True)
    # Answers faster than this are flagged (Response.too_fast), never refused.
    min_response_ms = models.PositiveIntegerField(default=1000)
    # Interface C: whether submitting the start step without a single step is an answer.
    allow_no_steps = models.BooleanField(default=False)

    label_method = models.CharField(max_length=64, default="clean-top2-clamp")
    label_params = models.JSONField(default=dict, blank=True)
    settings = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(participants_per_batch__gte=1), name="study_target_positive"
            ),
            models.CheckConstraint(condition=Q(lease_minutes__gte=1), name="study_lease_positive"),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def n_classes(self) -> int:
        return len(self.classes)


class StudyTransition(BaseModel):
    """One change of a study's status: who made it, through which way in, from what to what
    (created_at says when). Written only by services.study_set_status."""

    class Via(models.TextChoices):
        DASHBOARD = "dashboard", "Dashboard"
        API = "api", "REST API"
        ADMIN = "admin", "Django admin"
        COMMAND = "command", "Management command or script"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="transitions")
    # Kept when the account is deleted: the record still says that the change happened.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="study_transitions",
    )
    via = models.CharField(max_length=16, choices=Via.choices)
    from_status = models.CharField(max_length=16, choices=Study.Status.choices)
    to_status = models.CharField(max_length=16, choices=Study.Status.choices)

    class Meta:
        ordering = ["study", "created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(from_status=models.F("to_status")),
                name="study_transition_changes_status",
            ),
            # No way back to a draft once launched (services.STUDY_TRANSITIONS has the rest).
            models.CheckConstraint(
                condition=~Q(to_status="draft"), name="study_transition_never_to_draft"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study_id}: {self.from_status} → {self.to_status}"


class ImageSet(BaseModel):
    """Base images that stimuli are made from (demo drawings, a folder, CIFAR-10 batches)."""

    class Source(models.TextChoices):
        DEMO = "demo", "Generated demo shapes"
        FOLDER = "folder", "Image folder / zip"
        CIFAR10 = "cifar10", "CIFAR-10 python batches"

    name = models.SlugField(max_length=80, unique=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    classes = models.JSONField(default=list)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True
    )

    def __str__(self) -> str:
        return self.name


class SourceImage(BaseModel):
    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="images")
    class_name = models.CharField(max_length=100)
    ref = models.CharField(max_length=200)
    image = models.ImageField(upload_to=_source_upload_path)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["image_set", "class_name", "ref"], name="source_image_unique_ref"
            )
        ]

    def __str__(self) -> str:
        return f"{self.class_name}_{self.ref}"


class Stimulus(BaseModel):
    class Kind(models.TextChoices):
        PLAIN = "plain", "Plain image"
        MIXED = "mixed", "Mixup image"
        # An 11-step midpoint series of one class pair (frames: role "step", index 0..10).
        SERIES = "series", "Midpoint series"
        # An IRI with its target and start images (frames: roles "query", "target", "start").
        IRI = "iri", "IRI (2AFC)"
        # Three targets and two IRIs of each (frames: "column" 0..2, "row" 0..5).
        IRI_SET = "iri_set", "IRI clustering set"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="stimuli")
    # Stable, human-readable key, e.g. "mixed_0.25_Cat_12_Dog_40.png"; never shown to participants.
    key = models.CharField(max_length=255)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    image = models.ImageField(upload_to=_stimulus_upload_path, blank=True)
    # Ground truth of a plain image; empty for mixed ones.
    true_class = models.CharField(max_length=100, blank=True)
    # Mixup metadata: image 1 is the alphabetically first class, lam is image 1's weight.
    class1 = models.CharField(max_length=100, blank=True)
    class2 = models.CharField(max_length=100, blank=True)
    lam = models.FloatField(null=True, blank=True)
    source1 = models.CharField(max_length=200, blank=True)
    source2 = models.CharField(max_length=200, blank=True)
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "stimuli"
        ordering = ["study", "key"]
        constraints = [
            models.UniqueConstraint(fields=["study", "key"], name="stimulus_unique_key"),
            models.CheckConstraint(
                condition=Q(lam__isnull=True) | (Q(lam__gte=0) & Q(lam__lte=1)),
                name="stimulus_lam_unit_interval",
            ),
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def mixup_label(self) -> dict[str, float] | None:
        """The traditional mixup label: λ on class 1, 1 − λ on class 2."""
        if self.lam is None or not self.class1:
            return None
        return {self.class1: self.lam, self.class2: 1 - self.lam}


def _frame_upload_path(instance: "StimulusImage", filename: str) -> str:
    return f"stimuli/{instance.stimulus.study_id}/{instance.public_id}.png"


class StimulusImage(BaseModel):
    """One of several images making up a stimulus (series steps, IRI query/options, ...)."""

    stimulus = models.ForeignKey(Stimulus, on_delete=models.CASCADE, related_name="frames")
    role = models.CharField(max_length=16)
    index = models.PositiveSmallIntegerField(default=0)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    image = models.ImageField(upload_to=_frame_upload_path)
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["stimulus", "role", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["stimulus", "role", "index"], name="stimulus_image_unique_role"
            )
        ]

    def __str__(self) -> str:
        return f"{self.stimulus_id}:{self.role}{self.index}"


class Batch(BaseModel):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="batches")
    number = models.PositiveIntegerField()
    # Completed + in-progress participants never exceed this (enforced under a row lock).
    target = models.PositiveIntegerField()
    stimuli: "models.ManyToManyField[Stimulus, BatchItem]" = models.ManyToManyField(
        Stimulus, through="BatchItem", related_name="batches"
    )

    class Meta:
        ordering = ["study", "number"]
        constraints = [
            models.UniqueConstraint(fields=["study", "number"], name="batch_unique_number"),
            models.CheckConstraint(condition=Q(target__gte=1), name="batch_target_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.study_id}#{self.number}"


class BatchItem(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    stimulus = models.ForeignKey(Stimulus, on_delete=models.CASCADE, related_name="batch_items")
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["batch", "position"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "stimulus"], name="batch_item_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.position}"


class Participant(BaseModel):
    class Platform(models.TextChoices):
        PROLIFIC = "prolific", "Prolific"
        MTURK = "mturk", "Amazon MTurk"
        DIRECT = "direct", "Direct link"

    class Stage(models.TextChoices):
        CONSENT = "consent", "Consent"
        INSTRUCTIONS = "instructions", "Instructions"
        COMPREHENSION = "comprehension", "Comprehension check"
        TRIALS = "trials", "Trials"
        DEBRIEF = "debrief", "Debrief"
        COMPLETED = "completed", "Completed"
        DECLINED = "declined", "Declined consent"
        EXCLUDED = "excluded", "Excluded (comprehension)"
        EXPIRED = "expired", "Lease expired"
        RETURNED = "returned", "Returned / timed out"
        FULL = "full", "No batch available"

    # Stages in which the participant holds a batch slot.
    HOLDING_STAGES = (Stage.TRIALS, Stage.DEBRIEF)
    FINISHED_STAGES = (
        Stage.COMPLETED,
        Stage.DECLINED,
        Stage.EXCLUDED,
        Stage.EXPIRED,
        Stage.RETURNED,
        Stage.FULL,
    )

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="participants")
    # The session credential: knowing it is what lets a browser act as this participant.
    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    platform = models.CharField(max_length=16, choices=Platform.choices)
    external_id = models.CharField(max_length=128, blank=True)  # PROLIFIC_PID / workerId
    platform_study_id = models.CharField(max_length=128, blank=True)  # STUDY_ID / hitId
    platform_session_id = models.CharField(max_length=128, blank=True)  # SESSION_ID / assignmentId
    # MTurk's turkSubmitTo (production or sandbox host), checked on arrival: the completion page
    # posts the assignment there.
    turk_submit_to = models.CharField(max_length=200, blank=True, db_default="")
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.CONSENT)
    batch = models.ForeignKey(
        Batch, on_delete=models.PROTECT, null=True, blank=True, related_name="participants"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Indices into study.classes, shuffled once per participant and kept for all their trials.
    class_order = models.JSONField(default=list, blank=True)
    comprehension_failures = models.PositiveSmallIntegerField(default=0)
    # Answers given faster than the study's min_response_ms. (The columns added with the answer
    # checks have database defaults too, so rows written by plain SQL, as the benchmarks'
    # fixtures are, need not name them.)
    fast_answers = models.PositiveIntegerField(default=0, db_default=0)
    # Every main trial answered with the same pattern (quality_flags.straight_lining); None
    # until the session reaches its debrief with its answers assessed.
    straight_lining = models.BooleanField(null=True, blank=True)
    trials_started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    debrief = models.JSONField(default=dict, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    # How exports name the participant: a keyed hash of the platform id (elicitation.pseudonyms),
    # stored once so that exports can read it with COPY. Never the token, which is a credential.
    # db_default: rows inserted by raw SQL get one on their study's first export.
    pseudonym = models.CharField(max_length=32, blank=True, default="", db_default="")
    # Set when a researcher withdraws the participant (ParticipantWithdrawal says how): their
    # answers no longer count anywhere.
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "created_at"]
        constraints = [
            # The same Prolific PID / MTurk worker never gets a second session in one study.
            models.UniqueConstraint(
                fields=["study", "platform", "external_id"],
                condition=~Q(external_id=""),
                name="participant_unique_external_id",
            ),
        ]
        indexes = [models.Index(fields=["batch", "stage"], name="participant_batch_stage")]

    def __str__(self) -> str:
        return f"{self.platform}:{self.external_id or self.token}"


class ParticipantWithdrawal(BaseModel):
    """The log of a withdrawal: who withdrew which participant, when, and how."""

    class Mode(models.TextChoices):
        DELETE = "delete", "Responses deleted"
        EXCLUDE = "exclude", "Responses kept but excluded from every analysis and export"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="withdrawals")
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="withdrawals"
    )
    # The pseudonym at the time, so the log still names the participant in exported terms.
    pseudonym = models.CharField(max_length=32)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="participant_withdrawals",
    )
    mode = models.CharField(max_length=16, choices=Mode.choices)
    n_responses = models.PositiveIntegerField()
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["study", "created_at"]
        constraints = [
            # Withdrawing twice is refused by the service; the row is the proof it happened once.
            models.UniqueConstraint(fields=["participant"], name="participant_withdrawal_once")
        ]

    def __str__(self) -> str:
        return f"withdrawal of {self.pseudonym} ({self.mode})"


class ComprehensionAttempt(BaseModel):
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="comprehension_attempts"
    )
    number = models.PositiveSmallIntegerField()
    answers = models.JSONField()
    passed = models.BooleanField()
    # For each question, the option numbers in the order they were shown.
    option_orders = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["participant", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "number"], name="comprehension_attempt_unique"
            )
        ]


class Trial(BaseModel):
    """One planned item of a participant's sequence; answered by at most one Response."""

    class Kind(models.TextChoices):
        MAIN = "main", "Main"
        REPEAT = "repeat", "Repeat"
        PRACTICE = "practice", "Practice"
        CATCH = "catch", "Catch"
        GOLD = "gold", "Gold"

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="trials")
    stimulus = models.ForeignKey(Stimulus, on_delete=models.PROTECT, related_name="trials")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MAIN)
    # What exactly is displayed (class order, placements, start values): stored with the response.
    display = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["participant", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "position"], name="trial_unique_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}@{self.position}"


class Response(BaseModel):
    class Source(models.TextChoices):
        LIVE = "live", "Recorded by this platform"
        # Published raw data brought in by `import_legacy`: typed percentages may exceed 100.
        IMPORTED = "imported", "Imported from a published file"

    trial = models.OneToOneField(Trial, on_delete=models.PROTECT, related_name="response")
    # Denormalised from the trial so that the researcher API filters without joins.
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="responses")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="responses")
    stimulus = models.ForeignKey(Stimulus, on_delete=models.PROTECT, related_name="responses")
    kind = models.CharField(max_length=16, choices=Trial.Kind.choices)
    position = models.PositiveIntegerField()
    # The browser's idempotency key: a retried submit finds the stored response by it.
    client_key = models.UUIDField(unique=True)
    # SHA-256 of the canonical submitted payload (payloads.payload_digest): a replay of the key
    # with another body is refused instead of answered with this response. Empty for imported
    # rows and rows stored before the digest existed.
    payload_sha256 = models.CharField(max_length=64, blank=True, default="")
    rt_ms = models.PositiveIntegerField()
    raw = models.JSONField()
    display = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.LIVE)
    # Faster than the study's min_response_ms when it was recorded: flagged, kept.
    too_fast = models.BooleanField(default=False, db_default=False)

    # Interface A (categorical), parsed; percentages as the participant gave them (0–100).
    top_class = models.PositiveSmallIntegerField(null=True, blank=True)
    p1_pct = models.FloatField(null=True, blank=True)
    second_class = models.PositiveSmallIntegerField(null=True, blank=True)
    p2_pct = models.FloatField(null=True, blank=True)
    impossible = models.JSONField(default=list, blank=True)
    # Other interfaces' parsed values.
    value = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # The legacy free-text inputs recorded values such as "2550"; imported rows keep
            # them (the CIFAR-10S exclusion rules flag them), live ones must be 0..100.
            models.CheckConstraint(
                condition=Q(p1_pct__isnull=True)
                | (Q(p1_pct__gte=0) & (Q(p1_pct__lte=100) | Q(source="imported"))),
                name="response_p1_percent",
            ),
            models.CheckConstraint(
                condition=Q(p2_pct__isnull=True)
                | (Q(p2_pct__gte=0) & (Q(p2_pct__lte=100) | Q(source="imported"))),
                name="response_p2_percent",
            ),
            # A published CIFAR-10S answer may name a second class with its probability left
            # blank; the import keeps the class (the "double select" rule counts it).
            models.CheckConstraint(
                condition=Q(second_class__isnull=True)
                | Q(p2_pct__isnull=False)
                | Q(source="imported"),
                name="response_second_has_p2",
            ),
        ]
        indexes = [
            models.Index(fields=["study", "id"], name="response_study_id"),
            models.Index(fields=["stimulus", "kind"], name="response_stimulus_kind"),
        ]

    def __str__(self) -> str:
        return f"response {self.pk} to {self.trial_id}"
