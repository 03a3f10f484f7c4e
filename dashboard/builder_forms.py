"""Forms of the study builder pages. They only parse what was posted into the arguments of the
builder services; the services check the rules (and report problems keyed by the same names)."""

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet

from elicitation import services
from elicitation.models import ImageSet, Study
from elicitation.stimulus_services import STANDARD_LAMBDAS


class StudyNewForm(forms.Form):
    title = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=80, help_text="In the participants' link: letters, digits, '-' and '_'."
    )
    trial_type = forms.ChoiceField(choices=Study.TrialType.choices, label="Interface")
    participants_per_batch = forms.IntegerField(min_value=1, max_value=10_000, initial=5)
    repeats = forms.IntegerField(
        min_value=0,
        max_value=services.MAX_REPEATS,
        initial=2,
        help_text="Items shown again after the main trials, to measure consistency.",
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input (Django's documented recipe)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data if d]
        return [single(data, initial)] if data else []


class ImageUploadForm(forms.Form):
    SOURCES = [("zip", "Zip of class folders (class/image.png)"), ("cifar10", "CIFAR-10 batches")]

    name = forms.SlugField(max_length=80, label="Image set name")
    source = forms.ChoiceField(choices=SOURCES, widget=forms.RadioSelect, initial="zip")
    zip_file = forms.FileField(required=False, label="Zip file")
    cifar_files = MultipleFileField(required=False, label="CIFAR-10 batch files")
    cifar_meta = forms.FileField(required=False, label="batches.meta (class names, optional)")
    limit_per_class = forms.IntegerField(
        required=False, min_value=1, label="CIFAR: keep the first N images of each class"
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("source") == "zip" and not data.get("zip_file"):
            self.add_error("zip_file", "Choose a zip file.")
        if data.get("source") == "cifar10" and not data.get("cifar_files"):
            self.add_error("cifar_files", "Choose at least one CIFAR-10 batch file.")
        return data


class IriUploadForm(forms.Form):
    zip_file = forms.FileField(label="Zip of the IRI set's images")
    manifest = forms.FileField(label="Manifest (.csv or .json)")
    seed = forms.IntegerField(initial=0, help_text="Clustering: how sets are formed.")


def parse_lambdas(text: str) -> list[float]:
    """'0.1, 0.25, 0.5' → [0.1, 0.25, 0.5]; raises forms.ValidationError naming the bad value."""
    values = []
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        try:
            value = float(part)
        except ValueError as exc:
            raise forms.ValidationError(f"{part.strip()!r} is not a number.") from exc
        if not 0 <= value <= 1:
            raise forms.ValidationError(f"λ = {part.strip()} is outside 0 to 1.")
        values.append(value)
    if not values:
        raise forms.ValidationError("Give at least one λ, e.g. 0.1, 0.25, 0.5, 0.75, 0.9.")
    if len(set(values)) != len(values):
        raise forms.ValidationError("The λ grid lists the same value twice.")
    return values


class StimuliForm(forms.Form):
    image_set = forms.ModelChoiceField(queryset=ImageSet.objects.none(), to_field_name="name")
    lambdas = forms.CharField(
        required=False,
        label="λ grid",
        initial=", ".join(f"{lam:g}" for lam in STANDARD_LAMBDAS),
        help_text="Weights of the first image (its class sorts first), comma-separated, 0 to 1.",
    )
    n_pairs = forms.IntegerField(min_value=1, initial=10, label="Image pairs")
    plain_per_class = forms.IntegerField(
        min_value=0, initial=0, required=False, label="Plain images per class"
    )
    seed = forms.IntegerField(initial=0)

    def __init__(self, *args: Any, image_sets: QuerySet[ImageSet], trial_type: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["image_set"].queryset = image_sets  # type: ignore[attr-defined]
        self.trial_type = trial_type
        if trial_type not in (Study.TrialType.CATEGORICAL, Study.TrialType.MIXING_FACTOR):
            del self.fields["lambdas"]
        if trial_type != Study.TrialType.CATEGORICAL:
            del self.fields["plain_per_class"]

    def clean_lambdas(self) -> list[float]:
        return parse_lambdas(self.cleaned_data.get("lambdas") or "")


class BatchesForm(forms.Form):
    batch_size = forms.IntegerField(
        min_value=1,
        label="Stimuli per batch",
        help_text="A target: the stimuli are split into the number of batches that comes "
        "closest to it, with sizes that differ by at most one.",
    )
    participants_per_batch = forms.IntegerField(min_value=1, max_value=10_000)
    seed = forms.IntegerField(initial=0)


class TextsForm(forms.Form):
    title = forms.CharField(max_length=200)
    consent_html = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), label="Consent (HTML)")
    debrief_questions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Debrief questions (one per line)",
    )
    max_comprehension_failures = forms.IntegerField(
        required=False,
        min_value=1,
        label="Exclude after this many failed checks (empty: never)",
    )
    completion_code = forms.CharField(max_length=64, required=False)
    pays_without_code = forms.BooleanField(
        required=False,
        label="No code: I pay another way",
        help_text="Lets the study launch without a completion code (e.g. you pay a bonus by "
        "participant id).",
    )
    prolific_completion_url = forms.CharField(
        max_length=500,
        required=False,
        label="Prolific completion URL",
        help_text="{code} is replaced by the code (the completion code, or a screen-out code "
        "below); empty shows the code only.",
    )
    completion_url = forms.CharField(
        max_length=500,
        required=False,
        label="Completion URL for direct links",
        help_text="{code} is replaced by the completion code; empty shows the code only. "
        "MTurk workers are always posted back to MTurk's externalSubmit.",
    )
    full_code = forms.CharField(
        max_length=64,
        required=False,
        label="Screen-out code: study full",
        help_text="Shown (and sent to Prolific) when a worker arrives and every place is taken; "
        "empty: they are asked to return the study.",
    )
    excluded_code = forms.CharField(
        max_length=64,
        required=False,
        label="Screen-out code: excluded",
        help_text="For participants excluded by the checks (comprehension failures).",
    )
    expected_minutes = forms.IntegerField(
        required=False, min_value=1, max_value=24 * 60, label="Expected length (minutes)"
    )
    lease_minutes = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=7 * 24 * 60,
        label="Free a place after this many minutes without an answer",
    )
    min_response_ms = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=600_000,
        label="Flag answers faster than (ms)",
    )
    allow_no_steps = forms.BooleanField(
        required=False, label="Allow an answer at the start step (no step taken)"
    )
    catch_rate = forms.FloatField(required=False, min_value=0, max_value=1)
    catch_threshold = forms.FloatField(
        required=False, min_value=0, max_value=100, label="Catch threshold (%)"
    )

    def __init__(self, *args: Any, trial_type: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if trial_type not in (Study.TrialType.IRI_2AFC, Study.TrialType.IRI_CLUSTER):
            del self.fields["catch_rate"]
            del self.fields["catch_threshold"]
        if trial_type != Study.TrialType.CONSTRUCT_MIDPOINT:
            del self.fields["allow_no_steps"]

    def update_fields(self) -> dict[str, Any]:
        """The arguments of services.study_update."""
        data = self.cleaned_data
        fields = {
            name: data[name]
            for name in (
                "title",
                "consent_html",
                "max_comprehension_failures",
                "completion_code",
                "pays_without_code",
                "completion_url",
                "prolific_completion_url",
                "full_code",
                "excluded_code",
            )
        }
        # Left empty, a number keeps its current value.
        for name in ("expected_minutes", "lease_minutes", "min_response_ms"):
            if data.get(name) is not None:
                fields[name] = data[name]
        if "allow_no_steps" in self.fields:
            fields["allow_no_steps"] = data["allow_no_steps"]
        fields["debrief_questions"] = _lines(data["debrief_questions"])
        if "catch_rate" in self.fields:
            fields["settings"] = {
                name: data[name]
                for name in ("catch_rate", "catch_threshold")
                if data.get(name) is not None
            }
        return fields


class InstructionPageForm(forms.Form):
    title = forms.CharField(max_length=200, required=False)
    html = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), label="Text (HTML)")


class ComprehensionQuestionForm(forms.Form):
    question = forms.CharField(max_length=1000)
    options = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), label="Options (one per line)"
    )
    answer = forms.IntegerField(min_value=1, label="Right answer (option number, 1 = first)")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        options = _lines(data.get("options", ""))
        if "options" in data and len(options) < 2:
            self.add_error("options", "Give at least 2 options, one per line.")
        elif data.get("answer") is not None and data["answer"] > len(options):
            self.add_error("answer", f"Choose an option number from 1 to {len(options)}.")
        return data

    def as_question(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "question": data["question"],
            "options": _lines(data["options"]),
            "answer": data["answer"] - 1,
        }


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


InstructionFormSet = forms.formset_factory(InstructionPageForm, extra=1, can_delete=True)
ComprehensionFormSet = forms.formset_factory(ComprehensionQuestionForm, extra=1, can_delete=True)


def kept_forms(formset: forms.BaseFormSet) -> list[forms.Form]:
    """The forms of a valid formset to keep, in order: every existing entry not marked for
    removal, and the blank extra form only if it was filled in."""
    deleted = set(map(id, formset.deleted_forms))
    return [
        form
        for form in formset.forms
        if id(form) not in deleted and (form in formset.initial_forms or form.has_changed())
    ]
