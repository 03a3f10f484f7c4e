from django.urls import path

from iri import apis

api_urlpatterns = [
    path("models/", apis.NetworkListUploadApi.as_view(), name="network-list"),
    path("models/train/", apis.NetworkTrainApi.as_view(), name="network-train"),
    path("iris/generate/", apis.IriGenerateApi.as_view(), name="iri-generate"),
]
