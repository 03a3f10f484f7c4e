"""The researcher dashboard: server-rendered pages over the same selectors and services as the
REST API. Every study page checks that the logged-in user is a researcher of the study."""

import uuid
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from matplotlib.figure import Figure
from rest_framework.authtoken.models import Token

from analysis import exports, plots, scoring
from analysis import selectors as analysis_selectors
from dashboard import services as dashboard_services
from elicitation import legacy_job_services, lifecycle_selectors, selectors, services
from elicitation.models import Participant, Study, StudyTransition
from hmix_site.common.exceptions import ApplicationError
from jobs import selectors as jobs_selectors
from jobs.models import Job


def _study(request: HttpRequest, slug: str) -> Study:
    try:
        study = selectors.study_get_by_slug(slug=slug)
    except Study.DoesNotExist as exc:
        raise Http404("No such study.") from exc
    if not selectors.study_is_researcher(study=study, user_id=request.user.pk):
        raise PermissionDenied("You are not a researcher of this study.")
    return study


@login_required
@require_GET
def study_list(request: HttpRequest) -> HttpResponse:
    studies = selectors.study_list_for_user(user_id=request.user.pk)
    return render(request, "dashboard/study_list.html", {"studies": studies})


def _monitor_json(study: Study) -> dict[str, Any]:
    m = selectors.study_monitor(study=study)
    return {
        "stages": m.stages,
        "batches": [
            {
                "number": b.number,
                "target": b.target,
                "completed": b.completed,
                "in_progress": b.in_progress,
                "percent": b.percent,
            }
            for b in m.batches
        ],
        "responses": m.responses,
        "median_rt_s": None if m.median_rt_ms is None else round(m.median_rt_ms / 1000, 1),
        "stimuli_answered": m.stimuli_answered,
        "stimuli_total": m.stimuli_total,
        "min_answers_per_stimulus": m.min_answers_per_stimulus,
        "answers_histogram": [
            {"answers": n, "stimuli": count} for n, count in m.answers_histogram.items()
        ],
        "recent_exclusions": [
            {
                "participant": r["external_id"] or str(r["token"])[:8],
                "stage": r["stage"],
                "at": r["updated_at"].isoformat(),
            }
            for r in m.recent_exclusions
        ],
        "too_fast_responses": m.too_fast_responses,
        "straight_lining_participants": m.straight_lining_participants,
        "flagged": [
            {
                "participant": r["external_id"] or str(r["token"])[:8],
                "fast_answers": r["fast_answers"],
                "straight_lining": bool(r["straight_lining"]),
            }
            for r in m.flagged
        ],
    }


@login_required
@require_GET
def study_detail(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    monitor = _monitor_json(study)
    context = {
        "study": study,
        "monitor": monitor,
        "stage_counts": [
            (value, label, monitor["stages"].get(value, 0))
            for value, label in Participant.Stage.choices
        ],
        "export_formats": ["csv", "json", "jsonl"],
        "links": selectors.study_entry_links(study=study, base_url=request.build_absolute_uri("/")),
        "export_whats": exports.study_whats(study=study),
        "next_statuses": services.STUDY_TRANSITIONS[study.status],
        "transitions": lifecycle_selectors.study_transition_list(study=study),
    }
    return render(request, "dashboard/study_detail.html", context)


@login_required
@require_GET
def study_monitor(request: HttpRequest, slug: str) -> JsonResponse:
    """Polled by the study page so the monitor updates without reloading."""
    return JsonResponse(_monitor_json(_study(request, slug)))


# Status changes that stop participants from arriving ask to be confirmed first (a page, so it
# works without JavaScript); a launch shows its checklist on the builder instead.
CONFIRMED_STATUSES = {
    Study.Status.PAUSED: (
        "Pause",
        "New participants cannot start while the study is paused; those already taking part "
        "can finish. You can resume it at any time.",
    ),
    Study.Status.CLOSED: (
        "Close",
        "Closing is final: the study can never take participants again. Those already taking "
        "part can finish. Its data stay available for analysis and export.",
    ),
}


@login_required
@require_POST
def study_status(request: HttpRequest, slug: str) -> HttpResponse:
    """Launch, pause, resume or close (services.study_set_status). Pause and Close first render
    a confirmation page whose form posts back with confirm=yes; a refusal renders the reasons
    with its 4xx status."""
    study = _study(request, slug)
    status = request.POST.get("status", "")
    context: dict[str, Any] = {"study": study, "status": status}
    if status in CONFIRMED_STATUSES and request.POST.get("confirm") != "yes":
        try:
            services.study_transition_check(study=study, status=status)
        except ApplicationError as exc:
            context["error"] = exc.message
            return render(request, "dashboard/study_status.html", context, status=exc.status)
        verb, explanation = CONFIRMED_STATUSES[Study.Status(status)]
        context.update(verb=verb, explanation=explanation)
        return render(request, "dashboard/study_status.html", context)
    try:
        services.study_set_status(
            study=study,
            status=status,
            actor_id=request.user.pk,
            via=StudyTransition.Via.DASHBOARD,
        )
    except ApplicationError as exc:
        context.update(error=exc.message, checklist=exc.extra.get("checklist", {}))
        return render(request, "dashboard/study_status.html", context, status=exc.status)
    except ValidationError as exc:
        context["error"] = " ".join(exc.messages)
        return render(request, "dashboard/study_status.html", context, status=400)
    messages.success(request, f"The study is now {study.get_status_display().lower()}.")
    return HttpResponseRedirect(reverse("dashboard:study", kwargs={"slug": slug}))


@login_required
@require_POST
def study_collaborator_add(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    if study.owner_id != request.user.pk:
        raise PermissionDenied("Only the study's owner can add collaborators.")
    try:
        user = services.study_add_researcher(study=study, username=request.POST.get("username", ""))
        messages.success(request, f"{user.get_username()} can now see this study.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return HttpResponseRedirect(reverse("dashboard:study", kwargs={"slug": slug}))


@login_required
def api_tokens(request: HttpRequest) -> HttpResponse:
    """Create (or replace) and revoke the user's API token."""
    user_id = request.user.pk
    assert user_id is not None  # login_required: never anonymous here
    new_key = None
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            dashboard_services.api_token_revoke(user_id=user_id)
            messages.success(request, "Your API token was revoked.")
        else:
            new_key = dashboard_services.api_token_create(user_id=user_id).key
    has_token = Token.objects.filter(user_id=user_id).exists()
    return render(request, "dashboard/tokens.html", {"new_key": new_key, "has_token": has_token})


def _plot_figures(study: Study) -> dict[str, Callable[[], Figure]]:
    """The plots that fit the study's interface, by name; each drawn from stored results."""
    ttype = study.trial_type
    if ttype == Study.TrialType.CATEGORICAL:
        return {
            "entropy-by-lambda": lambda: plots.entropy_by_lam(
                analysis_selectors.plot_entropy_points(study=study)
            ),
            "class-pair-heatmap": lambda: plots.class_pair_heatmap(
                study.classes, analysis_selectors.plot_class_pair_matrix(study=study)
            ),
        }
    if ttype == Study.TrialType.MIXING_FACTOR:
        return {
            "lambda-hat-vs-lambda": lambda: plots.lam_hat_vs_lam(
                analysis_selectors.plot_mixing_levels(study=study)
            ),
            "confidence-by-lambda": lambda: plots.confidence_by_lam(
                analysis_selectors.plot_mixing_levels(study=study)
            ),
        }
    if ttype in (Study.TrialType.CONSTRUCT_MIDPOINT, Study.TrialType.SELECT_MIDPOINT):
        return {
            "midpoint-histograms": lambda: plots.midpoint_histograms(
                analysis_selectors.plot_midpoint_groups(study=study)
            ),
            "repeat-consistency": lambda: plots.repeat_consistency(
                analysis_selectors.plot_consistency_rows(study=study)
            ),
        }
    chance = scoring.CLUSTERING_CHANCE if ttype == Study.TrialType.IRI_CLUSTER else None
    return {
        "iri-alignment": lambda: plots.iri_alignment(
            analysis_selectors.plot_alignment_models(study=study), chance=chance
        ),
    }


@login_required
@require_GET
def study_results(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    figures = [
        {"name": name, "svg": plots.svg_for_html(plots.render(make(), "svg"))}
        for name, make in _plot_figures(study).items()
    ]
    return render(request, "dashboard/results.html", {"study": study, "figures": figures})


@login_required
@require_GET
def study_plot(request: HttpRequest, slug: str, name: str, fmt: str) -> HttpResponse:
    """One plot as a download (SVG or PNG)."""
    study = _study(request, slug)
    make = _plot_figures(study).get(name)
    if make is None or fmt not in ("svg", "png"):
        raise Http404("No such plot for this study.")
    if fmt == "svg":
        response = HttpResponse(plots.render(make(), "svg"), content_type="image/svg+xml")
    else:
        response = HttpResponse(plots.render(make(), "png"), content_type="image/png")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-{name}.{fmt}"'
    return response


class LegacyImportForm(forms.Form):
    file = forms.FileField(label="Published raw file (CSV, UTF-8)")
    format = forms.ChoiceField(choices=list(legacy_job_services.FORMAT_LABELS.items()))
    study = forms.SlugField(
        max_length=legacy_job_services.SLUG_MAX_LENGTH,
        label="Slug of the new study",
        help_text="Letters, digits, hyphens and underscores; it names the study in URLs.",
    )
    title = forms.CharField(
        max_length=legacy_job_services.TITLE_MAX_LENGTH,
        required=False,
        help_text="Optional; named after the format when left empty.",
    )
    replace = forms.BooleanField(
        required=False, label="Replace my study with this slug if it exists"
    )


@login_required
@require_http_methods(["GET", "POST"])
def legacy_import_new(request: HttpRequest) -> HttpResponse:
    """Upload a published raw file; the import runs as a job whose page shows its progress."""
    user_id = request.user.pk
    assert user_id is not None  # login_required: never anonymous here
    form = LegacyImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = legacy_job_services.legacy_import_job_create(
                owner_id=user_id,
                upload=form.cleaned_data["file"],
                fmt=form.cleaned_data["format"],
                study_slug=form.cleaned_data["study"],
                title=form.cleaned_data["title"],
                replace=form.cleaned_data["replace"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return HttpResponseRedirect(
                reverse("dashboard:legacy-import-job", kwargs={"job_id": job.public_id})
            )
    context = {"form": form, "limit_mb": legacy_job_services.upload_limit_bytes() / 2**20}
    return render(
        request, "dashboard/legacy_import.html", context, status=400 if form.errors else 200
    )


@login_required
@require_GET
def legacy_import_job(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """A legacy import's progress: rendered as it stands, then polled from /api/jobs/<id>/."""
    job = jobs_selectors.job_get_for_user(public_id=str(job_id), user_id=request.user.pk)
    if job is None or job.kind != Job.Kind.LEGACY_IMPORT:
        raise Http404("No such import.")
    slug = str(job.params.get("study", ""))
    fmt = str(job.params.get("format", ""))
    config = {
        "job_url": reverse("api:job-detail", kwargs={"job_id": job.public_id}),
        "study_url": reverse("dashboard:study", kwargs={"slug": slug}),
    }
    context = {
        "job": job,
        "slug": slug,
        "format_label": legacy_job_services.FORMAT_LABELS.get(fmt, fmt),
        "percent": round(100 * job.progress),
        "config": config,
    }
    return render(request, "dashboard/legacy_import.html", context)


@login_required
@require_POST
def study_bundle_create(request: HttpRequest, slug: str) -> HttpResponse:
    """Start building the dataset bundle; the study page lists the job and polls its progress."""
    from analysis import export_services  # appended view: keeps the imports above untouched

    study = _study(request, slug)
    user_id = request.user.pk
    assert user_id is not None  # login_required: never anonymous here
    export_services.bundle_job_create(
        study=study, owner_id=user_id, raw_ids=request.POST.get("raw_ids") == "true"
    )
    messages.success(request, "Building the dataset bundle: its download link appears below.")
    return HttpResponseRedirect(reverse("dashboard:study", kwargs={"slug": slug}) + "#exports")
