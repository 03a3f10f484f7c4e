from django.urls import path

from dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.study_list, name="studies"),
    path("tokens/", views.api_tokens, name="tokens"),
    path("studies/<slug:slug>/", views.study_detail, name="study"),
    path("studies/<slug:slug>/monitor.json", views.study_monitor, name="monitor"),
    path("studies/<slug:slug>/status/", views.study_status, name="status"),
    path("studies/<slug:slug>/results/", views.study_results, name="results"),
    path("studies/<slug:slug>/plots/<slug:name>.<str:fmt>", views.study_plot, name="plot"),
    path("studies/<slug:slug>/collaborators/", views.study_collaborator_add, name="collaborators"),
]
