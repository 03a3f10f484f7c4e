"""The researcher dashboard: server-rendered pages over the same selectors and services as the
REST API. Every study page checks that the logged-in user is a researcher of the study."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from rest_framework.authtoken.models import Token

from analysis import exports
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
