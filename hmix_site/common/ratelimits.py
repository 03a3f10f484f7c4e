"""Abuse limits: participant arrivals (django-ratelimit), researcher API requests (DRF
throttling) and locked-out logins (django-axes). Settings and defaults: settings/base.py."""

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from axes.helpers import get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_ratelimit.core import get_usage
from rest_framework.throttling import UserRateThrottle

from hmix_site.common.exceptions import ApplicationError

if TYPE_CHECKING:  # DRF imports this module (DEFAULT_THROTTLE_CLASSES) while loading its views
    from rest_framework.request import Request
    from rest_framework.views import APIView


class RateLimited(ApplicationError):
    """Too many requests; `retry_after` (seconds) goes out as the Retry-After header."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message, {"retry_after": retry_after}, status=429)
        self.retry_after = retry_after


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the last address in the header the reverse proxy
    sets (HMIX_CLIENT_IP_HEADER), i.e. the one the proxy itself saw."""
    header = settings.HMIX_CLIENT_IP_HEADER
    forwarded = request.META.get(header, "") if header else ""
    if forwarded:
        return str(forwarded).rsplit(",", 1)[-1].strip()
    return str(request.META.get("REMOTE_ADDR", ""))


def _limit(request: HttpRequest, *, group: str, key: str, rate: str, message: str) -> None:
    usage = get_usage(
        request, group=group, key=lambda _group, _request: key, rate=rate, increment=True
    )
    if usage is not None and usage["should_limit"]:
        retry_after = max(1, int(usage["time_left"]))
        raise RateLimited(message.format(seconds=retry_after), retry_after=retry_after)


def participant_arrival_limit(*, request: HttpRequest, study_slug: str) -> None:
    """Count one participant arrival (a session started or resumed) against the limits per
    client address and per study; raise RateLimited (429) when either is used up.

    Called by every way a participant arrives (the study link and the session API) before
    anything is written. One client address cannot take a study's slots (the per-address
    limit); many cannot take them faster than the per-study pace.
    """
    _limit(
        request,
        group="participant-arrival-ip",
        key=client_ip(request),
        rate=settings.HMIX_ARRIVAL_RATE_PER_IP,
        message="Too many sessions were started from your network. Please try again in "
        "{seconds} seconds.",
    )
    _limit(
        request,
        group="participant-arrival-study",
        key=study_slug,
        rate=settings.HMIX_ARRIVAL_RATE_PER_STUDY,
        message="This study is receiving too many participants at once. Please try again in "
        "{seconds} seconds.",
    )


class RateLimitedMiddleware:
    """Answers RateLimited from an HTML view with a 429 page and Retry-After (the APIs answer
    it through the DRF exception handler)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, RateLimited):
            return None
        response = render(request, "rate_limited.html", {"message": exception.message}, status=429)
        response["Retry-After"] = str(exception.retry_after)
        return response


class ResearcherRateThrottle(UserRateThrottle):
    """HMIX_API_RATE_PER_USER requests per signed-in user (token or session). Anonymous
    requests are not counted here: the participant API is limited per arrival, and the
    researcher API refuses them anyway."""

    scope = "researcher"

    def get_rate(self) -> str | None:
        # Read per request (DRF reads its rates once at import), so settings may change it.
        return settings.HMIX_API_RATE_PER_USER if settings.HMIX_RATE_LIMITS_ENABLED else None

    def get_cache_key(self, request: "Request", view: "APIView") -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None
        return super().get_cache_key(request, view)


def login_locked_out(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """django-axes' answer to a login during a lockout (AXES_LOCKOUT_CALLABLE): 429, the
    reason and when to try again, whatever the password."""
    cool_off = get_cool_off(request)
    seconds = max(1, math.ceil(cool_off.total_seconds())) if cool_off else None
    response = render(
        request,
        "registration/locked_out.html",
        {"minutes": math.ceil(seconds / 60) if seconds else None},
        status=429,
    )
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
