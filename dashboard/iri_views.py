"""The builder's IRI page of an E or F study: model → IRIs → study. Train a small CNN on an
image set (or pick an uploaded model), then generate its IRIs into this study as a job whose
page shows progress and can cancel it. Forms parse; iri.services check and write."""

import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from dashboard.builder_views import _add_errors, _is_iri
from dashboard.views import _study
from elicitation import selectors
from elicitation.models import ImageSet, Study
from hmix_site.common.exceptions import ApplicationError
from iri import selectors as iri_selectors
from iri import services
from iri.models import Network
from jobs import selectors as jobs_selectors
from jobs import services as job_services
from jobs.models import Job

IRI_JOB_KINDS = (Job.Kind.IRI_GENERATE, Job.Kind.NETWORK_TRAIN)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError as exc:
        raise forms.ValidationError("Seeds are whole numbers separated by commas.") from exc
    if not seeds:
        raise forms.ValidationError("Give at least one seed.")
    return seeds


class IriGenerateForm(forms.Form):
    model = forms.ModelChoiceField(queryset=Network.objects.none(), to_field_name="name")
    layer = forms.CharField(
        max_length=64, required=False, help_text="Empty: the model's own (penultimate for H-Mix's)."
    )
    image_set = forms.ModelChoiceField(
        queryset=ImageSet.objects.none(), to_field_name="name", label="Targets from image set"
    )
    per_class = forms.IntegerField(
        min_value=1, max_value=1000, initial=1, label="Targets per class"
    )
    start = forms.ChoiceField(
        choices=[
            ("noise", "Standard-normal noise, one image shared by every target of a seed"),
            ("light-noise", "Light noise (0.01 × normal)"),
            ("white", "White"),
            ("black", "Black"),
            ("image", "A natural image of the set"),
        ]
    )
    start_image = forms.CharField(required=False, help_text="For a natural start: class/ref.")
    regulariser = forms.ChoiceField(
        choices=[
            ("none", "None (recommended for comparing models)"),
            ("tv-norm", "Human-leaning: total variation + image norm"),
            ("transform", "Human-leaning: transformation robustness"),
            ("tv-norm+transform", "Human-leaning: both"),
        ]
    )
    lam = forms.FloatField(min_value=0, initial=0.05, label="λ (regulariser weight)")
    steps = forms.IntegerField(min_value=1, max_value=services.MAX_STEPS, initial=5000)
    eta = forms.FloatField(min_value=1e-9, initial=1.0, label="η (ℓ2 length of each step)")
    seeds = forms.CharField(initial="0, 1", help_text="One run per seed; clustering needs 2+.")

    def __init__(self, *args: Any, user_id: int | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = iri_selectors.network_list_for_user(user_id=user_id)  # type: ignore[attr-defined]
        self.fields["image_set"].queryset = selectors.image_set_list_for_user(user_id=user_id)  # type: ignore[attr-defined]

    def clean_seeds(self) -> list[int]:
        return _seeds(self.cleaned_data["seeds"])


class NetworkTrainForm(forms.Form):
    name = forms.SlugField(max_length=80, label="Model name")
    image_set = forms.ModelChoiceField(queryset=ImageSet.objects.none(), to_field_name="name")
    regime = forms.ChoiceField(
        choices=[("standard", "Standard"), ("robust", "Robust (ℓ2 PGD adversarial training)")]
    )
    epochs = forms.IntegerField(min_value=1, max_value=services.MAX_EPOCHS, initial=25)

    def __init__(self, *args: Any, user_id: int | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["image_set"].queryset = selectors.image_set_list_for_user(user_id=user_id)  # type: ignore[attr-defined]


def _iri_study(request: HttpRequest, slug: str) -> Study:
    study = _study(request, slug)
    if not _is_iri(study):
        raise Http404("IRIs are generated for IRI (E and F) studies only.")
    return study


def _job_url(study: Study, job: Job) -> str:
    return reverse("dashboard:build-iri-job", kwargs={"slug": study.slug, "job_id": job.public_id})


@login_required
@require_http_methods(["GET", "POST"])
def study_iris(request: HttpRequest, slug: str) -> HttpResponse:
    study = _iri_study(request, slug)
    user_id = request.user.pk
    posted = request.POST if request.method == "POST" else None
    which = request.POST.get("form") if posted else None
    generate = IriGenerateForm(posted if which == "generate" else None, user_id=user_id)
    train = NetworkTrainForm(posted if which == "train" else None, user_id=user_id)
    status = 200
    if posted is not None:
        status = 400
        assert user_id is not None  # login_required
        form: forms.Form = generate if which == "generate" else train
        if form.is_valid():
            data = form.cleaned_data
            try:
                if which == "generate":
                    job = services.iri_generate_job_create(
                        owner_id=user_id,
                        network=data["model"],
                        image_set=data["image_set"],
                        study=study,
                        layer=data["layer"],
                        per_class=data["per_class"],
                        start=data["start"],
                        start_image=data["start_image"],
                        regulariser=data["regulariser"],
                        lam=data["lam"],
                        steps=data["steps"],
                        eta=data["eta"],
                        seeds=data["seeds"],
                    )
                else:
                    job = services.network_train_job_create(
                        owner_id=user_id,
                        name=data["name"],
                        image_set=data["image_set"],
                        regime=data["regime"],
                        epochs=data["epochs"],
                    )
            except ValidationError as exc:
                _add_errors(form, exc)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
                status = exc.status
            else:
                return HttpResponseRedirect(_job_url(study, job))
    context = {
        "study": study,
        "generate_form": generate,
        "train_form": train,
        "networks": list(iri_selectors.network_list_for_user(user_id=user_id)),
        "n_stimuli": selectors.stimulus_list(study=study).count(),
        "torch_missing": _torch_missing(),
    }
    return render(request, "dashboard/builder_iris.html", context, status=status)


def _torch_missing() -> str:
    try:
        services.torch_require()
    except ApplicationError as exc:
        return exc.message
    return ""


def _iri_job(request: HttpRequest, study: Study, job_id: uuid.UUID) -> Job:
    job = jobs_selectors.job_get_for_user(public_id=str(job_id), user_id=request.user.pk)
    if job is None or job.kind not in IRI_JOB_KINDS:
        raise Http404("No such job.")
    if job.kind == Job.Kind.IRI_GENERATE and job.study_id != study.id:
        raise Http404("No such job.")
    return job


@login_required
@require_http_methods(["GET"])
def study_iri_job(request: HttpRequest, slug: str, job_id: uuid.UUID) -> HttpResponse:
    study = _iri_study(request, slug)
    job = _iri_job(request, study, job_id)
    back = reverse("dashboard:build-iris", kwargs={"slug": study.slug})
    generate = job.kind == Job.Kind.IRI_GENERATE
    context = {
        "study": study,
        "job": job,
        "percent": round(100 * job.progress),
        "next_url": reverse("dashboard:build-stimuli", kwargs={"slug": study.slug})
        if generate
        else back,
        "next_label": "See the stimuli →" if generate else "Generate IRIs from it →",
        "retry_url": back,
        "cancel_url": reverse(
            "dashboard:build-iri-job-cancel", kwargs={"slug": study.slug, "job_id": job.public_id}
        ),
        "config": {"job_url": reverse("api:job-detail", kwargs={"job_id": job.public_id})},
    }
    return render(request, "dashboard/builder_iri_job.html", context)


@login_required
@require_POST
def study_iri_job_cancel(request: HttpRequest, slug: str, job_id: uuid.UUID) -> HttpResponse:
    study = _iri_study(request, slug)
    job = _iri_job(request, study, job_id)
    try:
        job_services.job_cancel(job=job)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Cancelling: the worker stops at its next step.")
    return HttpResponseRedirect(_job_url(study, job))
