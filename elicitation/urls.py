from django.urls import path

from elicitation import apis, views

app_name = "elicitation"

urlpatterns = [
    path("s/<slug:slug>/", views.study_entry, name="entry"),
    path("p/<str:token>/", views.session_page, name="session"),
    path("p/<str:token>/consent/", views.consent_submit, name="consent"),
    path("p/<str:token>/instructions/", views.instructions_submit, name="instructions"),
    path("p/<str:token>/comprehension/", views.comprehension_submit, name="comprehension"),
    path("p/<str:token>/debrief/", views.debrief_submit, name="debrief"),
    path("img/<str:public_id>.png", views.stimulus_image, name="stimulus-image"),
    path("img/f/<str:public_id>.png", views.frame_image, name="frame-image"),
]

api_urlpatterns = [
    path("sessions/", apis.SessionStartApi.as_view(), name="session-start"),
    path("sessions/<str:token>/", apis.SessionDetailApi.as_view(), name="session-detail"),
    path("sessions/<str:token>/consent/", apis.ConsentApi.as_view(), name="session-consent"),
    path(
        "sessions/<str:token>/instructions/",
        apis.InstructionsApi.as_view(),
        name="session-instructions",
    ),
    path(
        "sessions/<str:token>/comprehension/",
        apis.ComprehensionApi.as_view(),
        name="session-comprehension",
    ),
    path(
        "sessions/<str:token>/responses/",
        apis.ResponseCreateApi.as_view(),
        name="session-responses",
    ),
    path("sessions/<str:token>/debrief/", apis.DebriefApi.as_view(), name="session-debrief"),
]
