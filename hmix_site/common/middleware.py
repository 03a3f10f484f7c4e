from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError

NUL = "\x00"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def nul_problem(request: HttpRequest) -> str | None:
    """Where the request carries a NUL character outside a JSON body or a file, or None.

    PostgreSQL refuses NUL in text, so a NUL that reaches a query (a PROLIFIC_PID, a stimulus
    filter, a debrief answer posted from the participant's HTML form) fails with a 500 deep in
    the view. JSON bodies are checked by hmix_site.common.parsers; uploaded files are bytes and
    may hold anything.
    """
    if NUL in request.path_info:
        return "The URL path may not contain NUL (%00) characters."
    query = request.META.get("QUERY_STRING", "")
    if "%00" in query or NUL in query:
        for key, values in request.GET.lists():
            if NUL in key or any(NUL in v for v in values):
                return f"Query parameter {key.replace(NUL, '%00')!r} may not contain NUL (%00)."
    for name, value in request.META.items():
        if name.startswith("HTTP_") and isinstance(value, str) and NUL in value:
            header = name.removeprefix("HTTP_").replace("_", "-").title()
            return f"Header {header} may not contain NUL characters."
    if request.method == "POST" and request.content_type in FORM_TYPES:
        # A multipart body is parsed here as CsrfViewMiddleware would (files go to temporary
        # files past FILE_UPLOAD_MAX_MEMORY_SIZE); a urlencoded one only if it holds a NUL.
        body_may_hold_nul = request.content_type == "multipart/form-data" or (
            b"%00" in request.body or NUL.encode() in request.body
        )
        if body_may_hold_nul:
            try:
                fields = request.POST.lists()
            except MultiPartParserError as exc:
                return f"The multipart body is malformed: {exc}"
            for key, values in fields:
                if NUL in key or any(NUL in v for v in values):
                    return f"Form field {key.replace(NUL, '%00')!r} may not contain NUL (%00)."
    return None


class RefuseNulMiddleware:
    """400 for a NUL character in the URL, the query string, a header or a form field, before
    any view runs (so nothing is written): every page and endpoint at once."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        problem = nul_problem(request)
        if problem is None:
            return self.get_response(request)
        if request.path_info.startswith("/api/"):
            # The API's one error shape (hmix_site/common/api.py).
            return JsonResponse({"message": problem, "extra": {}}, status=400)
        return HttpResponseBadRequest(problem, content_type="text/plain; charset=utf-8")
