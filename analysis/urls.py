from django.urls import path

from analysis import apis, builder_apis
from elicitation.job_apis import LegacyImportCreateApi

api_urlpatterns = [
    # GET lists / reads (analysis.apis), POST creates / PATCH edits (the study builder).
    path("studies/", builder_apis.StudyListCreateApi.as_view(), name="study-list"),
    path("studies/<slug:slug>/", builder_apis.StudyDetailUpdateApi.as_view(), name="study-detail"),
    path(
        "studies/<slug:slug>/collaborators/",
        apis.StudyCollaboratorAddApi.as_view(),
        name="collaborator-add",
    ),
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
    path("legacy-imports/", LegacyImportCreateApi.as_view(), name="legacy-import-create"),
]

from analysis import job_apis  # noqa: E402 (appended: export jobs)

api_urlpatterns += [
    path(
        "studies/<slug:slug>/export-jobs/",
        job_apis.ExportJobCreateApi.as_view(),
        name="export-job-create",
    ),
    path(
        "studies/<slug:slug>/bundle-jobs/",
        job_apis.BundleJobCreateApi.as_view(),
        name="bundle-job-create",
    ),
]

from analysis import privacy_apis  # noqa: E402 (appended: withdrawal on request)

api_urlpatterns += [
    path(
        "studies/<slug:slug>/participants/withdraw/",
        privacy_apis.ParticipantWithdrawApi.as_view(),
        name="participant-withdraw",
    ),
    path(
        "studies/<slug:slug>/withdrawals/",
        privacy_apis.ParticipantWithdrawalListApi.as_view(),
        name="withdrawal-list",
    ),
]

# The study builder (dashboard/builder_views.py) over REST.
api_urlpatterns += [
    path("image-sets/", builder_apis.ImageSetListCreateApi.as_view(), name="image-set-list"),
    path("studies/<slug:slug>/iri-import/", builder_apis.IriImportApi.as_view(), name="iri-import"),
    path(
        "studies/<slug:slug>/stimuli/generate/",
        builder_apis.StimuliGenerateApi.as_view(),
        name="stimuli-generate",
    ),
    path("studies/<slug:slug>/batches/", builder_apis.BatchesBuildApi.as_view(), name="batches"),
    path("studies/<slug:slug>/status/", builder_apis.StudyStatusApi.as_view(), name="status"),
]
