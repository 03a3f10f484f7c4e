"""Participant pages. They render the session's current stage and post to the same services as
the JSON API; every POST redirects back to the session page, so refresh and back are safe.
"""

import contextlib
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from elicitation import exits, selectors, services
from elicitation.forms import ComprehensionForm, ConsentForm
from elicitation.models import Participant, Stimulus, StimulusImage, Study
from elicitation.presenters import comprehension_orders, session_state
from hmix_site.common import ratelimits
from hmix_site.common.body_limits import PARTICIPANT, body_limit
from hmix_site.common.exceptions import ApplicationError

Stage = Participant.Stage

# Query parameters the crowd platforms append to the study link.
PROLIFIC_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
MTURK_PARAMS = ("workerId", "hitId", "assignmentId")


def _participant(token: str) -> Participant:
    try:
        return selectors.participant_get_by_token(token=token)
    except (Participant.DoesNotExist, ValidationError) as exc:
        raise Http404("No session with this token.") from exc


def _session_url(participant: Participant) -> str:
    return reverse("elicitation:session", kwargs={"token": participant.token})


def _cookie_name(study: Study) -> str:
    return f"hmix_session_{study.pk}"


@dataclass(frozen=True)
class Arrival:
    """Who follows the study link, read from the platform's query parameters."""

    platform: str
    external_id: str = ""
    platform_study_id: str = ""
    platform_session_id: str = ""
    turk_submit_to: str = ""
    # MTurk shows the page inside a HIT preview before the worker accepts the HIT.
    mturk_preview: bool = False


def _arrival(request: HttpRequest) -> Arrival:
    q = request.GET
    if q.get("PROLIFIC_PID"):
        worker, study, session = (q.get(k, "")[:128] for k in PROLIFIC_PARAMS)
        return Arrival(Participant.Platform.PROLIFIC, worker, study, session)
    if q.get("assignmentId") == exits.MTURK_PREVIEW_ASSIGNMENT:
        return Arrival(Participant.Platform.MTURK, mturk_preview=True)
    if q.get("workerId"):
        worker, hit, assignment = (q.get(k, "")[:128] for k in MTURK_PARAMS)
        turk = exits.turk_submit_to_clean(q.get("turkSubmitTo", ""))
        return Arrival(Participant.Platform.MTURK, worker, hit, assignment, turk)
    return Arrival(Participant.Platform.DIRECT)


def _existing_session(request: HttpRequest, study: Study, arrival: Arrival) -> Participant | None:
    """The session this worker (or, on a direct link, this browser) already has."""
    if arrival.external_id:
        return services.participant_find_returning(
            study=study,
            platform=arrival.platform,
            external_id=arrival.external_id,
            platform_study_id=arrival.platform_study_id,
            platform_session_id=arrival.platform_session_id,
        )
    if arrival.platform != Participant.Platform.DIRECT:
        return None
    # A direct link has no worker id: a cookie lets the same browser resume its session.
    token = request.COOKIES.get(_cookie_name(study))
    # The cookie is the browser's to send: a malformed one is simply not found.
    existing = selectors.participant_by_token(token=token) if token else None
    if (
        existing is not None
        and existing.study_id == study.pk
        and existing.stage not in Participant.FINISHED_STAGES
    ):
        return existing
    return None


def _full_page(
    request: HttpRequest, study: Study, arrival: Arrival, *, status: int
) -> HttpResponse:
    context = {
        "study": study,
        "exit": exits.arrival_full_exit(study, arrival.platform),
        "platform": arrival.platform,
    }
    return render(request, "elicitation/full.html", context, status=status)


def _arrival_consent_page(
    request: HttpRequest, study: Study, arrival: Arrival, *, error: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "study": study,
        # The form posts back to the study link itself, keeping the platform's parameters.
        "consent_action": request.get_full_path(),
        "mturk_preview": arrival.mturk_preview,
        "error": error,
    }
    return render(request, "elicitation/consent.html", context, status=status)


@body_limit(PARTICIPANT)
@require_http_methods(["GET", "HEAD", "POST"])
def study_entry(request: HttpRequest, slug: str) -> HttpResponse:
    """The link given to the crowd platform.

    A GET writes nothing: it resumes the worker's session if there is one, says at once when
    the study is closed or full (with the study's screen-out code), and otherwise shows the
    consent form. Posting that form starts the session (services.participant_arrive), so link
    previews, probes and MTurk's HIT preview leave no trace.
    """
    try:
        study = selectors.study_get_by_slug(slug=slug)
    except Study.DoesNotExist as exc:
        raise Http404("No such study.") from exc
    arrival = _arrival(request)
    try:
        existing = _existing_session(request, study, arrival)
    except ApplicationError as exc:  # a Prolific ID coming from another submission
        return render(
            request,
            "elicitation/closed.html",
            {"study": study, "message": exc.message},
            status=exc.status,
        )
    if existing is not None:
        return HttpResponseRedirect(_session_url(existing))
    if study.status != Study.Status.LIVE:
        message = "This study is not accepting participants right now."
        return render(
            request, "elicitation/closed.html", {"study": study, "message": message}, status=409
        )
    if request.method != "POST":
        if not selectors.study_has_room(study=study, now=timezone.now()):
            return _full_page(request, study, arrival, status=200)
        return _arrival_consent_page(request, study, arrival)
    if arrival.mturk_preview:  # the page says to accept the HIT first
        return _arrival_consent_page(request, study, arrival, status=400)
    form = ConsentForm(request.POST)
    if not form.is_valid():
        error = " ".join(str(e) for e in form.non_field_errors())
        return _arrival_consent_page(request, study, arrival, error=error, status=400)
    # Counted only when a session is about to be created: a GET writes nothing, so it costs nothing.
    ratelimits.participant_arrival_limit(request=request, study_slug=study.slug)
    try:
        participant = services.participant_arrive(
            study=study,
            agreed=not form.cleaned_data["decline"],
            platform=arrival.platform,
            external_id=arrival.external_id,
            platform_study_id=arrival.platform_study_id,
            platform_session_id=arrival.platform_session_id,
            turk_submit_to=arrival.turk_submit_to,
            user_agent=request.headers.get("User-Agent", ""),
        )
    except ApplicationError as exc:
        if exc.extra.get("reason") == "full":
            return _full_page(request, study, arrival, status=409)
        return render(
            request,
            "elicitation/closed.html",
            {"study": study, "message": exc.message},
            status=exc.status,
        )
    response = HttpResponseRedirect(_session_url(participant))
    if arrival.platform == Participant.Platform.DIRECT:
        response.set_cookie(
            _cookie_name(study),
            str(participant.token),
            max_age=7 * 24 * 3600,
            samesite="Lax",
            httponly=True,
        )
    return response


TEMPLATES = {
    Stage.CONSENT: "elicitation/consent.html",
    Stage.INSTRUCTIONS: "elicitation/instructions.html",
    Stage.COMPREHENSION: "elicitation/comprehension.html",
    Stage.TRIALS: "elicitation/trial_{trial_type}.html",
    Stage.DEBRIEF: "elicitation/debrief.html",
    Stage.COMPLETED: "elicitation/complete.html",
}


@require_GET
def session_page(request: HttpRequest, token: str) -> HttpResponse:
    participant = services.participant_touch(participant=_participant(token))
    return _render_stage(request, participant)


def _render_stage(
    request: HttpRequest,
    participant: Participant,
    *,
    form: object = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    state = session_state(participant=participant)
    template = TEMPLATES.get(participant.stage, "elicitation/ended.html").format(  # type: ignore[call-overload]
        trial_type=participant.study.trial_type
    )
    if participant.stage == Stage.COMPREHENSION and form is None:
        form = ComprehensionForm(
            questions=participant.study.comprehension, orders=comprehension_orders(participant)
        )
    trial_config = None
    if state["trial"] is not None:
        trial_config = {
            "trial_id": state["trial"]["id"],
            "view": state["trial"]["view"],
            "submit_url": reverse(
                "participant-api:session-responses", kwargs={"token": participant.token}
            ),
            "session_url": _session_url(participant),
        }
    context = {
        "trial_config": trial_config,
        "participant": participant,
        "study": participant.study,
        "state": state,
        "form": form,
        "error": error,
        "failed_attempts": participant.comprehension_failures,
    }
    return render(request, template, context, status=status)


def _after_post(request: HttpRequest, participant: Participant) -> HttpResponse:
    return HttpResponseRedirect(_session_url(participant))


@body_limit(PARTICIPANT)
@require_POST
def consent_submit(request: HttpRequest, token: str) -> HttpResponse:
    participant = _participant(token)
    form = ConsentForm(request.POST)
    if not form.is_valid():
        return _render_stage(
            request,
            participant,
            error=" ".join(str(e) for e in form.non_field_errors()),
            status=400,
        )
    # A stale form (back button) is not an error: the session page shows where things stand.
    with contextlib.suppress(ApplicationError):
        participant = services.participant_consent(
            participant=participant, agreed=not form.cleaned_data["decline"]
        )
    return _after_post(request, participant)


@body_limit(PARTICIPANT)
@require_POST
def instructions_submit(request: HttpRequest, token: str) -> HttpResponse:
    participant = _participant(token)
    with contextlib.suppress(ApplicationError):
        participant = services.participant_instructions_complete(participant=participant)
    return _after_post(request, participant)


@body_limit(PARTICIPANT)
@require_POST
def comprehension_submit(request: HttpRequest, token: str) -> HttpResponse:
    participant = _participant(token)
    if participant.stage != Stage.COMPREHENSION:
        return _after_post(request, participant)
    form = ComprehensionForm(
        request.POST,
        questions=participant.study.comprehension,
        orders=comprehension_orders(participant),
    )
    if not form.is_valid():
        return _render_stage(
            request, participant, form=form, error="Please answer every question.", status=400
        )
    services.comprehension_submit(participant=participant, answers=form.answers())
    return _after_post(request, participant)


@body_limit(PARTICIPANT)
@require_POST
def debrief_submit(request: HttpRequest, token: str) -> HttpResponse:
    participant = _participant(token)
    answers = {
        str(i): request.POST.get(f"a{i}", "")
        for i in range(len(participant.study.debrief_questions))
    }
    try:
        services.participant_debrief_submit(participant=participant, answers=answers)
    except ApplicationError:
        pass
    except ValidationError as exc:
        return _render_stage(request, participant, error=" ".join(exc.messages), status=400)
    return _after_post(request, participant)


@require_GET
@cache_control(max_age=86400, private=True)
def stimulus_image(request: HttpRequest, public_id: str) -> FileResponse:
    """Stimulus images by opaque id, so the URL reveals nothing about classes or λ.

    Streamed from the media storage even when that is a bucket (HMIX_S3_BUCKET): a redirect to
    a presigned URL would show participants the bucket and object name, need the bucket to be
    reachable from their browsers, and expire while the day-long cache still held it.
    """
    try:
        stimulus = selectors.stimulus_get_public(public_id=public_id)
    except (Stimulus.DoesNotExist, ValidationError) as exc:
        raise Http404("No such image.") from exc
    if not stimulus.image:
        raise Http404("This stimulus has no image file.")
    return FileResponse(stimulus.image.open("rb"), content_type="image/png")


@require_GET
@cache_control(max_age=86400, private=True)
def frame_image(request: HttpRequest, public_id: str) -> FileResponse:
    try:
        frame = selectors.frame_get_public(public_id=public_id)
    except (StimulusImage.DoesNotExist, ValidationError) as exc:
        raise Http404("No such image.") from exc
    return FileResponse(frame.image.open("rb"), content_type="image/png")
