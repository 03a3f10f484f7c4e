"""The study builder: new study, images, stimuli, batches, texts, and a preview of the whole
participant journey that records nothing. Forms parse, the builder services write, and every
page checks that the user is a researcher of the study (403 otherwise)."""

import uuid
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.exceptions import ParseError

from dashboard import builder_forms, preview
from dashboard.views import _study
from elicitation import (
    builder_job_services,
    builder_services,
    imaging,
    lifecycle_selectors,
    presenters,
    quality_flags,
    selectors,
    services,
    uploads,
)
from elicitation.apis import ResponseCreateApi
from elicitation.forms import ComprehensionForm, ConsentForm
from elicitation.models import ImageSet, Participant, Stimulus, Study
from elicitation.views import TEMPLATES
from hmix_site.common.exceptions import ApplicationError
from hmix_site.common.parsers import json_loads_checked
from jobs import selectors as jobs_selectors
from jobs.models import Job

THUMBNAILS = 8


def _add_errors(
    form: forms.Form, exc: ValidationError, labels: dict[str, str] | None = None
) -> None:
    """A service's ValidationError onto the form: on the field it names, else above the form."""
    labels = labels or {}
    if not hasattr(exc, "error_dict"):
        for message in exc.messages:
            form.add_error(None, message)
        return
    for field, errors in exc.message_dict.items():
        for message in errors:
            if field in form.fields and field not in form.errors:
                form.add_error(field, message)
            elif field in labels:
                form.add_error(None, f"{labels[field]}: {message}")
            else:
                form.add_error(None, message)


def _build_url(name: str, study: Study) -> str:
    return reverse(f"dashboard:{name}", kwargs={"slug": study.slug})


def _thumbnail_url(stimulus: Stimulus) -> str | None:
    url = presenters.stimulus_image_url(stimulus)
    if url is not None:
        return url
    frames = selectors.stimulus_frames(stimulus=stimulus)
    for key in (("step", 5), ("query", 0), ("column", 0)):
        if key in frames:
            return presenters.frame_url(frames[key])
    return None


def _thumbnails(study: Study) -> list[dict[str, Any]]:
    return [
        {"key": s.key, "url": _thumbnail_url(s)}
        for s in selectors.stimulus_list(study=study)[:THUMBNAILS]
    ]


def _is_iri(study: Study) -> bool:
    return study.trial_type in builder_services.IRI_TYPES


# --- new study and the overview ------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def study_new(request: HttpRequest) -> HttpResponse:
    form = builder_forms.StudyNewForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        assert request.user.pk is not None  # login_required
        try:
            study = builder_services.study_create_draft(
                owner_id=request.user.pk, **form.cleaned_data
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"Created the draft study {study.title!r}.")
            return HttpResponseRedirect(_build_url("build", study))
    status = 400 if request.method == "POST" else 200
    return render(request, "dashboard/builder_new.html", {"form": form}, status=status)


@login_required
@require_GET
def study_build(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    context = {
        "study": study,
        "is_iri": _is_iri(study),
        "n_stimuli": selectors.stimulus_list(study=study).count(),
        "batches": list(selectors.batch_list(study=study)),
        "thumbnails": _thumbnails(study),
        "next_statuses": services.STUDY_TRANSITIONS[study.status],
        "checklist": (
            lifecycle_selectors.study_launch_checklist(study=study)
            if study.status in (Study.Status.DRAFT, Study.Status.PAUSED)
            else []
        ),
        "locked_reason": lifecycle_selectors.study_stimuli_locked_reason(study=study),
    }
    return render(request, "dashboard/builder_study.html", context)


# --- images --------------------------------------------------------------------------------


def _image_upload(request: HttpRequest, form: builder_forms.ImageUploadForm) -> Job | None:
    """The upload checked and queued as a job, or None with the problems on the form."""
    data = form.cleaned_data
    assert request.user.pk is not None  # login_required
    try:
        return builder_job_services.image_upload_job_create(
            owner_id=request.user.pk,
            name=data["name"],
            source=data["source"],
            zip_file=data["zip_file"],
            cifar_files=data["cifar_files"],
            cifar_meta=data["cifar_meta"],
            limit_per_class=data["limit_per_class"],
        )
    except ValidationError as exc:
        _add_errors(form, exc)
        return None


def _job_url(study: Study, job: Job) -> str:
    return reverse("dashboard:build-job", kwargs={"slug": study.slug, "job_id": job.public_id})


def _iri_upload(study: Study, form: builder_forms.IriUploadForm) -> list[Stimulus] | None:
    limits = uploads.upload_limits()
    try:
        files = uploads.iri_files_from_zip(form.cleaned_data["zip_file"], limits=limits)
    except imaging.ImageImportError as exc:
        form.add_error("zip_file", f"Nothing was imported: {exc}")
        return None
    try:
        manifest, manifest_format = uploads.manifest_from_upload(
            form.cleaned_data["manifest"], limits=limits
        )
    except imaging.ImageImportError as exc:
        form.add_error("manifest", f"Nothing was imported: {exc}")
        return None
    try:
        return builder_services.study_iri_import(
            study=study,
            files=files,
            manifest=manifest,
            manifest_format=manifest_format,
            max_pixels=limits.max_pixels,
            seed=form.cleaned_data["seed"],
        )
    except ValidationError as exc:
        form.add_error(None, f"Nothing was imported: {len(exc.messages)} problem(s).")
        for message in exc.messages:
            form.add_error(None, message)
    except ApplicationError as exc:
        form.add_error(None, exc.message)
    return None


@login_required
@require_http_methods(["GET", "POST"])
def study_images(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    status = 200
    iri_form = upload_form = None
    if _is_iri(study):
        iri_form = builder_forms.IriUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST":
            created = _iri_upload(study, iri_form) if iri_form.is_valid() else None
            if created is not None:
                messages.success(request, f"Imported {len(created)} IRI stimuli.")
                return HttpResponseRedirect(_build_url("build-stimuli", study))
            status = 400
    else:
        upload_form = builder_forms.ImageUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST":
            job = _image_upload(request, upload_form) if upload_form.is_valid() else None
            if job is not None:
                return HttpResponseRedirect(_job_url(study, job))
            status = 400
    limits = uploads.upload_limits()
    context = {
        "study": study,
        "upload_form": upload_form,
        "iri_form": iri_form,
        "image_sets": selectors.image_set_list_for_user(user_id=request.user.pk),
        "max_megabytes": round(limits.max_file_bytes / (1024 * 1024)),
        "max_pixels": limits.max_pixels,
    }
    return render(request, "dashboard/builder_images.html", context, status=status)


# --- stimuli -------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def study_stimuli(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    status = 200
    form = None
    if not _is_iri(study):
        image_sets = selectors.image_set_list_for_user(user_id=request.user.pk)
        form = builder_forms.StimuliForm(
            request.POST or None,
            image_sets=image_sets,
            trial_type=study.trial_type,
            initial={"image_set": request.GET.get("image_set")},
        )
        if request.method == "POST":
            if form.is_valid():
                data = form.cleaned_data
                assert request.user.pk is not None  # login_required
                try:
                    job = builder_job_services.stimuli_generate_job_create(
                        study=study,
                        image_set=data["image_set"],
                        owner_id=request.user.pk,
                        n_pairs=data["n_pairs"],
                        lambdas=data.get("lambdas") or (),
                        plain_per_class=data.get("plain_per_class") or 0,
                        seed=data["seed"],
                    )
                except ValidationError as exc:
                    _add_errors(form, exc)
                except ApplicationError as exc:
                    form.add_error(None, exc.message)
                else:
                    return HttpResponseRedirect(_job_url(study, job))
            status = 400
    elif request.method == "POST":
        return HttpResponseRedirect(_build_url("build-images", study))
    running = (
        jobs_selectors.job_list_for_user(user_id=request.user.pk)
        .filter(
            study=study,
            kind=Job.Kind.GENERATE_STIMULI,
            status__in=[Job.Status.PENDING, Job.Status.RUNNING],
        )
        .first()
    )
    n_stimuli = selectors.stimulus_list(study=study).count()
    context = {
        "study": study,
        "form": form,
        "n_stimuli": n_stimuli,
        "thumbnails": _thumbnails(study),
        "running_job_url": _job_url(study, running) if running is not None else None,
        "chosen_set": _classes_to_come(request, study, form) if not n_stimuli else None,
    }
    return render(request, "dashboard/builder_stimuli.html", context, status=status)


def _classes_to_come(
    request: HttpRequest, study: Study, form: builder_forms.StimuliForm | None
) -> ImageSet | None:
    """The image set chosen on the form when its classes would become the study's (the first
    stimuli take them), so the page names the classes just uploaded, not the study's old list."""
    name = form["image_set"].value() if form is not None else None
    if not name:
        return None
    try:
        image_set = selectors.image_set_get_for_user(name=str(name), user_id=request.user.pk)
    except ImageSet.DoesNotExist:
        return None
    return None if set(image_set.classes) <= set(study.classes) else image_set


# --- builder jobs (image uploads, stimulus generation) -------------------------------------

BUILDER_JOB_KINDS = (Job.Kind.IMAGE_UPLOAD, Job.Kind.GENERATE_STIMULI)


@login_required
@require_GET
def study_build_job(request: HttpRequest, slug: str, job_id: uuid.UUID) -> HttpResponse:
    """An upload's or a generation's progress, rendered as it stands and then polled from
    /api/jobs/<id>/ (static/dashboard/job_follow.js); once done, a link to what it made."""
    study = _study(request, slug)
    job = jobs_selectors.job_get_for_user(public_id=str(job_id), user_id=request.user.pk)
    if (
        job is None
        or job.kind not in BUILDER_JOB_KINDS
        or (job.kind == Job.Kind.GENERATE_STIMULI and job.study_id != study.id)
    ):
        raise Http404("No such job.")
    if job.kind == Job.Kind.IMAGE_UPLOAD:
        name = str(job.params.get("name", ""))
        next_url = f"{_build_url('build-stimuli', study)}?{urlencode({'image_set': name})}"
        next_label = f"Generate stimuli from {name} →"
        retry_url = _build_url("build-images", study)
    else:
        next_url = _build_url("build-stimuli", study)
        next_label = "See the stimuli →"
        retry_url = next_url
    context = {
        "study": study,
        "job": job,
        "percent": round(100 * job.progress),
        "next_url": next_url,
        "next_label": next_label,
        "retry_url": retry_url,
        "config": {"job_url": reverse("api:job-detail", kwargs={"job_id": job.public_id})},
    }
    step = "images" if job.kind == Job.Kind.IMAGE_UPLOAD else "stimuli"
    return render(request, "dashboard/builder_job.html", {**context, "step": step})


# --- batches -------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def study_batches(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    n_stimuli = selectors.stimulus_list(study=study).count()
    form = builder_forms.BatchesForm(
        request.POST or None,
        initial={
            "batch_size": min(25, n_stimuli) or 25,
            "participants_per_batch": study.participants_per_batch,
        },
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                batches = builder_services.study_batches_build(study=study, **form.cleaned_data)
            except ValidationError as exc:
                _add_errors(form, exc)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request,
                    f"Built {len(batches)} batches for {study.participants_per_batch} "
                    "participants each.",
                )
                return HttpResponseRedirect(_build_url("build-batches", study))
        status = 400
    context = {
        "study": study,
        "form": form,
        "n_stimuli": n_stimuli,
        "batches": list(selectors.batch_list(study=study)),
    }
    return render(request, "dashboard/builder_batches.html", context, status=status)


# --- texts ---------------------------------------------------------------------------------

TEXT_LABELS = {
    "instructions": "Instructions",
    "comprehension": "Comprehension questions",
    "debrief_questions": "Debrief questions",
    "settings": "Interface settings",
}


def _texts_initial(study: Study) -> dict[str, Any]:
    settings = selectors.study_settings(study=study)
    return {
        "title": study.title,
        "consent_html": study.consent_html,
        "debrief_questions": "\n".join(study.debrief_questions),
        "max_comprehension_failures": study.max_comprehension_failures,
        "completion_code": study.completion_code,
        "pays_without_code": study.pays_without_code,
        "completion_url": study.completion_url,
        "prolific_completion_url": study.prolific_completion_url,
        "full_code": study.full_code,
        "excluded_code": study.excluded_code,
        "expected_minutes": study.expected_minutes,
        "lease_minutes": study.lease_minutes,
        "min_response_ms": study.min_response_ms,
        "allow_no_steps": study.allow_no_steps,
        "catch_rate": settings.get("catch_rate"),
        "catch_threshold": settings.get("catch_threshold"),
    }


@login_required
@require_http_methods(["GET", "POST"])
def study_texts(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    data = request.POST or None
    form = builder_forms.TextsForm(data, trial_type=study.trial_type, initial=_texts_initial(study))
    pages = builder_forms.InstructionFormSet(data, prefix="pages", initial=study.instructions)
    questions = builder_forms.ComprehensionFormSet(
        data,
        prefix="questions",
        initial=[
            {
                "question": q["question"],
                "options": "\n".join(q["options"]),
                "answer": q["answer"] + 1,
            }
            for q in study.comprehension
        ],
    )
    status = 200
    if request.method == "POST":
        if form.is_valid() and pages.is_valid() and questions.is_valid():
            fields = form.update_fields()
            fields["instructions"] = [
                {"title": p.cleaned_data["title"], "html": p.cleaned_data["html"]}
                for p in builder_forms.kept_forms(pages)
            ]
            fields["comprehension"] = [
                q.as_question()  # type: ignore[attr-defined]
                for q in builder_forms.kept_forms(questions)
            ]
            try:
                services.study_update(study=study, **fields)
            except ValidationError as exc:
                _add_errors(form, exc, TEXT_LABELS)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, "Saved the texts and settings.")
                return HttpResponseRedirect(_build_url("build-texts", study))
        status = 400
    context = {"study": study, "form": form, "pages": pages, "questions": questions}
    return render(request, "dashboard/builder_texts.html", context, status=status)


# --- preview -------------------------------------------------------------------------------
# Mounted as the "builder-preview" instance of the "elicitation" URL namespace (hmix_site/urls),
# so the participant templates' {% url 'elicitation:consent' participant.token %} resolve to
# these views while a preview page renders (Django's current application), and the token they
# pass is the study's slug.


def _preview_url(name: str, study: Study) -> str:
    return reverse(f"builder-preview:{name}", kwargs={"slug": study.slug})


def _preview_state(request: HttpRequest, study: Study) -> dict[str, Any]:
    state = request.session.get(preview.session_key(study))
    if not isinstance(state, dict):
        state = preview.preview_start(study=study)
        request.session[preview.session_key(study)] = state
    return state


def _preview_save(request: HttpRequest, study: Study, state: dict[str, Any]) -> HttpResponse:
    request.session[preview.session_key(study)] = state
    return HttpResponseRedirect(_preview_url("session", study))


def _preview_render(
    request: HttpRequest,
    study: Study,
    state: dict[str, Any],
    *,
    form: object = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    if state["stage"] == Participant.Stage.TRIALS and preview.current_trial(study, state) is None:
        state = {**state, "stage": Participant.Stage.DEBRIEF.value}  # a stimulus was removed
        request.session[preview.session_key(study)] = state
    page_state = preview.session_state(study=study, state=state)
    stage = Participant.Stage(state["stage"])
    template = TEMPLATES.get(stage, "elicitation/ended.html").format(trial_type=study.trial_type)
    if stage == Participant.Stage.COMPREHENSION and form is None:
        # Shuffled as participants see it (quality_flags.comprehension_option_orders).
        form = ComprehensionForm(
            questions=study.comprehension,
            orders=quality_flags.comprehension_option_orders(
                token=f"preview:{study.slug}",
                attempt=state["failures"] + 1,
                questions=study.comprehension,
            ),
        )
    trial_config = None
    if page_state["trial"] is not None:
        trial_config = {
            "trial_id": page_state["trial"]["id"],
            "view": page_state["trial"]["view"],
            "submit_url": _preview_url("responses", study),
            "session_url": _preview_url("session", study),
        }
    links = selectors.study_entry_links(study=study, base_url=request.build_absolute_uri("/"))
    context = {
        "trial_config": trial_config,
        "participant": preview.participant(study, state),
        "study": study,
        "state": page_state,
        "form": form,
        "error": error,
        "failed_attempts": state["failures"],
        "preview": {
            "restart_url": _preview_url("restart", study),
            "build_url": _build_url("build", study),
            "completion_url": links["completion_url"],
            "n_trials": len(state["trials"]),
        },
    }
    return render(request, template, context, status=status)


@login_required
@require_GET
def preview_session(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    return _preview_render(request, study, _preview_state(request, study))


@login_required
@require_POST
def preview_restart(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    return _preview_save(request, study, preview.preview_start(study=study))


@login_required
@require_POST
def preview_consent(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    state = _preview_state(request, study)
    form = ConsentForm(request.POST)
    if not form.is_valid():
        error = " ".join(str(e) for e in form.non_field_errors())
        return _preview_render(request, study, state, error=error, status=400)
    return _preview_save(
        request, study, preview.consent(state, agreed=not form.cleaned_data["decline"])
    )


@login_required
@require_POST
def preview_instructions(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    return _preview_save(
        request, study, preview.instructions_done(study, _preview_state(request, study))
    )


@login_required
@require_POST
def preview_comprehension(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    state = _preview_state(request, study)
    if state["stage"] != Participant.Stage.COMPREHENSION:
        return _preview_save(request, study, state)
    form = ComprehensionForm(request.POST, questions=study.comprehension)
    if not form.is_valid():
        return _preview_render(
            request, study, state, form=form, error="Please answer every question.", status=400
        )
    return _preview_save(request, study, preview.comprehension(study, state, form.answers()))


@login_required
@require_POST
def preview_debrief(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    state = _preview_state(request, study)
    if any(len(request.POST.get(f"a{i}", "")) > 5000 for i in range(len(study.debrief_questions))):
        return _preview_render(
            request, study, state, error="An answer is longer than 5000 characters.", status=400
        )
    return _preview_save(request, study, preview.debrief_done(state))


def _json_error(message: str, status: int, extra: dict[str, Any] | None = None) -> JsonResponse:
    return JsonResponse({"message": message, "extra": extra or {}}, status=status)


# trial.js posts JSON without a CSRF token (the participant API needs none). A cross-site page
# cannot send a JSON body without a CORS preflight, which this site never grants, and the view
# only moves the researcher's own preview forward in their session.
@csrf_exempt
@login_required
@require_POST
def preview_responses(request: HttpRequest, slug: str) -> JsonResponse:
    """Check an answer exactly as the participant API would (envelope and the real payload
    parser), then move the preview on; answers 201 and stores nothing."""
    study = _study(request, slug)
    if request.content_type != "application/json":
        return _json_error("Send the answer as application/json.", 415)
    try:
        body = json_loads_checked(request.body.decode())
    except UnicodeDecodeError:
        return _json_error("The body is not valid JSON.", 400)
    except ParseError as exc:  # too deep, not JSON, or text PostgreSQL refuses: as the API
        return _json_error(str(exc.detail), 400)
    envelope = ResponseCreateApi.InputSerializer(data=body)
    if not envelope.is_valid():
        field, errors = next(iter(envelope.errors.items()))
        return _json_error(f"{field}: {errors[0]}", 400, {"fields": envelope.errors})
    data = envelope.validated_data
    state = _preview_state(request, study)
    client_key = str(data["client_key"])
    if client_key == state["last_key"]:  # a retried submit of the answer just taken
        return JsonResponse({"trial": data["trial"], "recorded": False}, status=200)
    trial = preview.current_trial(study, state)
    if trial is None or preview.trial_id(trial.position) != data["trial"]:
        return _json_error("This is not the current trial.", 409)
    try:
        value = preview.parse_answer(study, trial, data["answer"])
    except ValidationError as exc:
        extra = {"fields": exc.message_dict} if hasattr(exc, "error_dict") else {}
        return _json_error(" ".join(exc.messages), 400, extra)
    request.session[preview.session_key(study)] = preview.answered(state, client_key=client_key)
    return JsonResponse(
        {"trial": data["trial"], "recorded": False, "value": value, "rt_ms": data["rt_ms"]},
        status=201,
    )
