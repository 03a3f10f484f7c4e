from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connections
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from hmix_site.common.exceptions import ApplicationError
from hmix_site.common.ratelimits import RateLimited


def _first_message(detail: Any) -> str:
    """The first human-readable message in a (possibly nested) DRF error detail."""
    if isinstance(detail, dict):
        for raw_key, value in detail.items():
            key = str(raw_key)  # list fields key their items' errors by index (an int)
            inner = _first_message(value)
            # "p1: p1 must be ..." reads badly; prefix the field only when the text lacks it.
            if key == "non_field_errors" or inner.startswith(key):
                return inner
            return f"{key}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """One error shape for every API: {"message": str, "extra": {...}}.

    Django's ValidationError and PermissionDenied are translated first so that services can raise
    them without knowing about DRF.
    """
    if getattr(context.get("view"), "non_atomic_request", False):
        # DRF marks the innermost open transaction for rollback; a view that opened none (its
        # service's own transaction has already rolled back) must not mark an enclosing one
        # that is not the request's (a test's transaction, for instance).
        marks = {db.alias: db.needs_rollback for db in connections.all(initialized_only=True)}
        try:
            return _error_response(exc, context)
        finally:
            for db in connections.all(initialized_only=True):
                db.needs_rollback = marks.get(db.alias, db.needs_rollback)
    return _error_response(exc, context)


def _error_response(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        # As DRF does for its own errors: a refused request writes nothing (ATOMIC_REQUESTS).
        set_rollback()
        refused = Response({"message": exc.message, "extra": exc.extra}, status=exc.status)
        if isinstance(exc, RateLimited):
            refused["Retry-After"] = str(exc.retry_after)
        return refused
    if isinstance(exc, DjangoValidationError):
        detail = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        exc = drf_exceptions.ValidationError(detail=detail)
    elif isinstance(exc, Http404):
        exc = drf_exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied(str(exc) or None)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = {"message": _first_message(exc.detail), "extra": {"fields": exc.detail}}
    else:
        message = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        response.data = {"message": str(message), "extra": {}}
    return response


# Django's own error pages (an unknown URL, a request Django refuses before any view, a crash)
# are HTML; under /api/ they answer in the API's error shape instead, as the schema documents.
def _api_error(request: HttpRequest, message: str, status: int) -> HttpResponse | None:
    if not request.path_info.startswith("/api/"):
        return None
    return JsonResponse({"message": message, "extra": {}}, status=status)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _api_error(request, "No such endpoint.", 404) or defaults.page_not_found(
        request, exception
    )


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _api_error(request, "Bad request.", 400) or defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    return _api_error(request, "Server error.", 500) or defaults.server_error(request)
