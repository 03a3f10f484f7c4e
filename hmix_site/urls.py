from django.contrib import admin
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from analysis.urls import api_urlpatterns as researcher_api
from dashboard import urls as dashboard_urls
from elicitation.urls import api_urlpatterns as participant_api
from iri.urls import api_urlpatterns as iri_api
from jobs.urls import api_urlpatterns as jobs_api


@never_cache
@require_safe
def health(request: HttpRequest) -> HttpResponse:
    """Liveness for the container healthcheck: 200 once the database answers (no auth)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")


handler400 = "hmix_site.common.api.bad_request"
handler404 = "hmix_site.common.api.page_not_found"
handler500 = "hmix_site.common.api.server_error"

urlpatterns = [
    path("health/", health, name="health"),
    path("", RedirectView.as_view(pattern_name="dashboard:studies", permanent=False)),
    path("accounts/", include("django.contrib.auth.urls")),
    # The study builder's preview: the participant pages' URL names, recording nothing.
    path(
        "dashboard/preview/",
        include((dashboard_urls.preview_urlpatterns, "elicitation"), namespace="builder-preview"),
    ),
    path("dashboard/", include("dashboard.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its setup script from a URL: no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/participant/", include((participant_api, "participant-api"))),
    path("api/", include((researcher_api + jobs_api + iri_api, "api"))),
    path("", include("elicitation.urls")),
]
