"""The researcher dashboard: server-rendered pages over the same selectors and services as the
REST API. Every study page checks that the logged-in user is a researcher of the study."""

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from matplotlib.figure import Figure
from rest_framework.authtoken.models import Token

from analysis import exports, plots, scoring
from analysis import selectors as analysis_selectors
from dashboard import services as dashboard_services
from elicitation import selectors, services
from elicitation.models import Participant, Study
from hmix_site.common.exceptions import ApplicationError


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
        "recent_exclusions": [
            {
                "participant": r["external_id"] or str(r["token"])[:8],
                "stage": r["stage"],
                "at": r["updated_at"].isoformat(),
            }
            for r in m.recent_exclusions
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
        "export_whats": exports.WHATS,
        "statuses": Study.Status.choices,
    }
    return render(request, "dashboard/study_detail.html", context)


@login_required
@require_GET
def study_monitor(request: HttpRequest, slug: str) -> JsonResponse:
    """Polled by the study page so the monitor updates without reloading."""
    return JsonResponse(_monitor_json(_study(request, slug)))


@login_required
@require_POST
def study_status(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    status = request.POST.get("status", "")
    if status not in Study.Status.values:
        messages.error(request, f"Unknown status {status!r}.")
    else:
        try:
            services.study_set_status(study=study, status=status)
            messages.success(request, f"The study is now {study.get_status_display().lower()}.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
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
        {"name": name, "svg": plots.render(make(), "svg")}
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
