"""Request body caps, checked on the declared Content-Length before anything reads the body.

Django's DATA_UPLOAD_MAX_MEMORY_SIZE only guards `request.body` and form parsing; DRF's JSON
parser reads the request stream directly and would take any size. So one middleware answers 413
for a body larger than its endpoint accepts, before a byte of it is read or parsed:

- participant endpoints (the JSON API and the pages' forms): HMIX_MAX_PARTICIPANT_BODY_BYTES;
- multipart uploads elsewhere: HMIX_MAX_UPLOAD_REQUEST_BYTES (each file is checked against
  HMIX_MAX_UPLOAD_BYTES by the upload services);
- any other body: DATA_UPLOAD_MAX_MEMORY_SIZE.

Under WSGI a body without Content-Length (chunked) reads as empty in Django, so the declared
length bounds what any view can read.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

PARTICIPANT = "HMIX_MAX_PARTICIPANT_BODY_BYTES"

_F = TypeVar("_F", bound=Callable[..., Any])


def body_limit(setting: str) -> Callable[[_F], _F]:
    """Give a function view the body cap named by `setting` (read on each request)."""

    def mark(view: _F) -> _F:
        view.body_limit_setting = setting  # type: ignore[attr-defined]
        return view

    return mark


def _declared_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0  # Django reads no body at all then


def _view_setting(request: HttpRequest) -> tuple[str | None, bool]:
    """(the view's own cap setting or None, whether it is a DRF view), from the URL conf."""
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return None, False
    view = match.func
    cls = getattr(view, "cls", None)  # APIView.as_view() keeps its class here
    setting = getattr(cls, "body_limit_setting", None) or getattr(view, "body_limit_setting", None)
    return setting, cls is not None


class RequestBodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = _declared_length(request)
        # Below the smallest cap nothing can be refused, so the hot path (small answers) never
        # needs the URL resolved here.
        smallest = min(
            int(getattr(settings, PARTICIPANT)),
            int(settings.HMIX_MAX_UPLOAD_REQUEST_BYTES),
            int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE),
        )
        if length > smallest:
            refusal = self._refusal(request, length)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    def _refusal(self, request: HttpRequest, length: int) -> HttpResponse | None:
        setting, is_api = _view_setting(request)
        if setting is not None:
            limit = int(getattr(settings, setting))
        elif request.content_type == "multipart/form-data":
            limit = int(settings.HMIX_MAX_UPLOAD_REQUEST_BYTES)
        else:
            limit = int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        if length <= limit:
            return None
        message = f"The request body is {length} bytes; this endpoint accepts at most {limit}."
        if is_api or request.path_info.startswith("/api/"):
            return JsonResponse(
                {"message": message, "extra": {"max_bytes": limit, "bytes": length}}, status=413
            )
        return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
