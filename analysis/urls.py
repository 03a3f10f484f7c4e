from django.urls import path

from analysis import apis

api_urlpatterns = [
    path("studies/", apis.StudyListApi.as_view(), name="study-list"),
    path("studies/<slug:slug>/", apis.StudyDetailApi.as_view(), name="study-detail"),
    path(
        "studies/<slug:slug>/participants/",
        apis.ParticipantListApi.as_view(),
        name="participant-list",
    ),
    path(
        "studies/<slug:slug>/participants/return/",
        apis.ParticipantReturnApi.as_view(),
        name="participant-return",
    ),
    path("studies/<slug:slug>/responses/", apis.ResponseListApi.as_view(), name="response-list"),
    path(
        "studies/<slug:slug>/soft-labels/", apis.SoftLabelListApi.as_view(), name="soft-label-list"
    ),
    path(
        "studies/<slug:slug>/analysis/",
        apis.AnalysisResultListApi.as_view(),
        name="analysis-result-list",
    ),
    path("studies/<slug:slug>/export/", apis.ExportApi.as_view(), name="export"),
]
