from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase


class ScopedCSPMiddleware(CSPMiddleware):
    """django-csp's middleware, with directives replaced under the path prefixes of
    HMIX_CSP_PATH_OVERRIDES (settings/base.py says which and why)."""

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        for prefix, directives in settings.HMIX_CSP_PATH_OVERRIDES.items():
            if request.path.startswith(prefix):
                parts.replace = {**(parts.replace or {}), **directives}
        return parts
