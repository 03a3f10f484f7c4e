"""Researcher API: start an export or a dataset bundle as a background job; poll /api/jobs/<id>/."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis import export_services, exports, selectors
from analysis.aggregation import CONSTRUCTIONS, Method
from analysis.apis import RAW_IDS_HELP, choice_field, study_for_researcher
from elicitation.models import Study
from hmix_site.common.serializers import JsonTypedSerializer
from jobs.apis import JobOutputSerializer


class MethodInputSerializer(JsonTypedSerializer):
    """The soft-label construction, like the export's query parameters; default: the study's."""

    method = choice_field(
        "construction", sorted(CONSTRUCTIONS), required=False, help_text="Construction name"
    )
    gamma = serializers.FloatField(required=False, help_text="Clamp mass γ")
    smoothing = serializers.FloatField(required=False, help_text="Label smoothing ε")
    exclude_repeats = serializers.BooleanField(required=False, help_text="Leave repeats out")


def method_from_data(data: dict[str, Any], study: Study) -> Method:
    default = selectors.study_default_method(study=study)
    try:
        return Method(
            name=data.get("method", default.name),
            gamma=data.get("gamma", default.gamma),
            smoothing=data.get("smoothing", default.smoothing),
            include_repeats=not data.get("exclude_repeats", not default.include_repeats),
        )
    except ValueError as exc:
        raise serializers.ValidationError({"method": str(exc)}) from exc


class ExportJobCreateApi(APIView):
    class InputSerializer(MethodInputSerializer):
        class Meta:
            ref_name = "ExportJobCreateInput"  # nested serializers share a class name

        # Plain strings: the service names a bad value and the values allowed.
        what = serializers.CharField(help_text=f"One of {', '.join(exports.WHATS)}")
        format = serializers.CharField(help_text=f"One of {', '.join(exports.FORMATS)}")
        raw_ids = serializers.BooleanField(required=False, default=False, help_text=RAW_IDS_HELP)

    @extend_schema(
        request=InputSerializer,
        responses={202: JobOutputSerializer},
        summary="Start an export as a background job (poll the job, then download it)",
        examples=[
            OpenApiExample(
                "Every response as CSV",
                value={"what": "responses", "format": "csv"},
                request_only=True,
            ),
            OpenApiExample(
                "Soft labels as NPY under a chosen construction",
                value={"what": "soft-labels", "format": "npy", "method": "top1"},
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        assert request.user.pk is not None  # IsAuthenticated
        job = export_services.export_job_create(
            study=study,
            owner_id=request.user.pk,
            what=data["what"],
            fmt=data["format"],
            method=method_from_data(data, study),
            raw_ids=data["raw_ids"],
        )
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class BundleJobCreateApi(APIView):
    class InputSerializer(MethodInputSerializer):
        class Meta:
            ref_name = "BundleJobCreateInput"  # nested serializers share a class name

        raw_ids = serializers.BooleanField(required=False, default=False, help_text=RAW_IDS_HELP)

    @extend_schema(
        request=InputSerializer,
        responses={202: JobOutputSerializer},
        summary="Build the study's dataset bundle (zip with a datasheet README) as a job",
    )
    def post(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assert request.user.pk is not None  # IsAuthenticated
        job = export_services.bundle_job_create(
            study=study,
            owner_id=request.user.pk,
            method=method_from_data(serializer.validated_data, study),
            raw_ids=serializer.validated_data["raw_ids"],
        )
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)
