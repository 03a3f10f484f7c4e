from django.urls import path

from dashboard import builder_views, iri_views, privacy_views, views

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
    path("import/", views.legacy_import_new, name="legacy-import"),
    path("import/<uuid:job_id>/", views.legacy_import_job, name="legacy-import-job"),
]

urlpatterns += [
    path("studies/<slug:slug>/bundle/", views.study_bundle_create, name="bundle"),
    path("studies/<slug:slug>/withdraw/", privacy_views.study_withdraw, name="withdraw"),
]

# The study builder.
urlpatterns += [
    path("new/", builder_views.study_new, name="study-new"),
    path("studies/<slug:slug>/build/", builder_views.study_build, name="build"),
    path("studies/<slug:slug>/build/images/", builder_views.study_images, name="build-images"),
    path("studies/<slug:slug>/build/stimuli/", builder_views.study_stimuli, name="build-stimuli"),
    path("studies/<slug:slug>/build/batches/", builder_views.study_batches, name="build-batches"),
    path("studies/<slug:slug>/build/texts/", builder_views.study_texts, name="build-texts"),
    path(
        "studies/<slug:slug>/build/jobs/<uuid:job_id>/",
        builder_views.study_build_job,
        name="build-job",
    ),
]

# The builder's IRI page (E and F studies): model → IRIs → study.
urlpatterns += [
    path("studies/<slug:slug>/build/iris/", iri_views.study_iris, name="build-iris"),
    path(
        "studies/<slug:slug>/build/iris/jobs/<uuid:job_id>/",
        iri_views.study_iri_job,
        name="build-iri-job",
    ),
    path(
        "studies/<slug:slug>/build/iris/jobs/<uuid:job_id>/cancel/",
        iri_views.study_iri_job_cancel,
        name="build-iri-job-cancel",
    ),
]

# The builder's preview of the participant journey: included by hmix_site/urls.py as the
# "builder-preview" instance of the "elicitation" namespace, so that the participant templates'
# {% url 'elicitation:...' %} tags lead to these views while a preview renders.
preview_urlpatterns = [
    path("<slug:slug>/", builder_views.preview_session, name="session"),
    path("<slug:slug>/restart/", builder_views.preview_restart, name="restart"),
    path("<slug:slug>/consent/", builder_views.preview_consent, name="consent"),
    path("<slug:slug>/instructions/", builder_views.preview_instructions, name="instructions"),
    path("<slug:slug>/comprehension/", builder_views.preview_comprehension, name="comprehension"),
    path("<slug:slug>/debrief/", builder_views.preview_debrief, name="debrief"),
    path("<slug:slug>/responses/", builder_views.preview_responses, name="responses"),
]
