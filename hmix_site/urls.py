from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from analysis.urls import api_urlpatterns as researcher_api
from elicitation.urls import api_urlpatterns as participant_api

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/participant/", include((participant_api, "participant-api"))),
    path("api/", include((researcher_api, "api"))),
    path("", include("elicitation.urls")),
]
