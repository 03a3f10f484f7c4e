from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import selectors, services
from jobs.models import Job


class JobOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    kind = serializers.CharField()
    status = serializers.CharField()
    progress = serializers.FloatField()
    message = serializers.CharField()
    error = serializers.CharField()
    cancel_requested = serializers.BooleanField()
    study = serializers.CharField(source="study.slug", default=None)
    download_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_download_url(self, job: Job) -> str | None:
        if job.status != Job.Status.DONE or not job.result:
            return None
        return f"/api/jobs/{job.public_id}/download/"


def _job(request: Request, job_id: str) -> Job:
    job = selectors.job_get_for_user(public_id=job_id, user_id=request.user.pk)
    if job is None:
        raise Http404("No such job.")
    return job


class JobListApi(APIView):
    @extend_schema(responses=JobOutputSerializer(many=True), summary="Your recent jobs")
    def get(self, request: Request) -> Response:
        jobs = selectors.job_list_for_user(user_id=request.user.pk)[:50]
        return Response(JobOutputSerializer(jobs, many=True).data)


class JobDetailApi(APIView):
    @extend_schema(responses=JobOutputSerializer, summary="A job's status and progress")
    def get(self, request: Request, job_id: str) -> Response:
        return Response(JobOutputSerializer(_job(request, job_id)).data)


# A result's media type by its extension: exports (csv, json, jsonl, npy, npy-index's
# .index.csv), dataset bundles (zip) and the builder jobs' JSON summaries.
RESULT_MEDIA_TYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "npy": "application/octet-stream",
    "zip": "application/zip",
}


class JobCancelApi(APIView):
    @extend_schema(
        request=None,
        responses=JobOutputSerializer,
        summary="Cancel a job",
        description=(
            "A pending job is cancelled at once. A running IRI generation or model training "
            "stops at its next step and ends as `cancelled`, writing nothing; other running or "
            "finished jobs answer 409."
        ),
    )
    def post(self, request: Request, job_id: str) -> Response:
        job = services.job_cancel(job=_job(request, job_id))
        return Response(JobOutputSerializer(job).data)


class JobDownloadApi(APIView):
    @extend_schema(
        responses={
            (200, media_type): (
                OpenApiTypes.ANY if media_type == "application/json" else OpenApiTypes.BINARY
            )
            for media_type in RESULT_MEDIA_TYPES.values()
        },
        summary="Download a finished job's result",
        description="The media type follows the file: "
        + ", ".join(f"{ext} {media_type}" for ext, media_type in RESULT_MEDIA_TYPES.items())
        + ".",
    )
    def get(self, request: Request, job_id: str) -> FileResponse:
        job = _job(request, job_id)
        if job.status != Job.Status.DONE or not job.result:
            raise Http404("This job has no result (yet).")
        name = job.result.name.rsplit("/", 1)[-1]
        # Through the app from any storage (a bucket too): each download is checked against
        # the job's owner, and the bucket never has to be reachable from researchers' machines.
        media_type = RESULT_MEDIA_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")
        return FileResponse(
            job.result.open("rb"), as_attachment=True, filename=name, content_type=media_type
        )
