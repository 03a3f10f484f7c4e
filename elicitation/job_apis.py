"""Researcher API for uploads that run as jobs: a published raw file imported as a new study."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from elicitation import legacy, legacy_job_services
from jobs.apis import JobOutputSerializer


class LegacyImportCreateApi(APIView):
    parser_classes = [MultiPartParser]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "LegacyImportInput"

        file = serializers.FileField(allow_empty_file=False)
        format = serializers.ChoiceField(
            choices=list(legacy.FORMATS),
            error_messages={
                "invalid_choice": f'"{{input}}" is not a format; expected one of '
                f"{', '.join(legacy.FORMATS)}."
            },
        )
        study = serializers.SlugField(max_length=legacy_job_services.SLUG_MAX_LENGTH)
        title = serializers.CharField(
            max_length=legacy_job_services.TITLE_MAX_LENGTH,
            required=False,
            allow_blank=True,
            default="",
        )
        replace = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={202: JobOutputSerializer},
        summary="Import a published CIFAR-10S / H-Mix raw CSV as a new study (runs as a job)",
        description=(
            "The file is checked at once (size, UTF-8 CSV text, the format's columns, a free "
            "slug; `replace=true` replaces your own study with that slug) and imported by a "
            "worker: poll the returned job at /api/jobs/<id>/. A malformed file fails the job "
            "with every bad row in `error` and imports nothing."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        assert request.user.pk is not None  # IsAuthenticated
        job = legacy_job_services.legacy_import_job_create(
            owner_id=request.user.pk,
            upload=data["file"],
            fmt=data["format"],
            study_slug=data["study"],
            title=data["title"],
            replace=data["replace"],
        )
        return Response(
            JobOutputSerializer(job).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/api/jobs/{job.public_id}/"},
        )
