"""Researcher API: token-authenticated, and a study's data only for its researchers."""

from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, StreamingHttpResponse
from django.utils.decorators import method_decorator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis import exports, selectors
from analysis.aggregation import CONSTRUCTIONS, Method
from analysis.models import AnalysisResult
from elicitation import privacy_services
from elicitation import selectors as elicitation_selectors
from elicitation import services as elicitation_services
from elicitation.models import Participant, Study
from hmix_site.common.serializers import JsonTypedSerializer


class IdCursorPagination(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request: Request) -> int:
        # DRF clamps a page_size out of range and ignores a malformed one; the schema states
        # the range, so anything else is refused.
        text = request.query_params.get(self.page_size_query_param)
        if text is None:
            return self.page_size
        field = serializers.IntegerField(min_value=1, max_value=self.max_page_size)
        try:
            return field.run_validation(text)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({self.page_size_query_param: exc.detail}) from exc

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        # DRF documents page_size without its bounds.
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters


class SoftLabelPagination(IdCursorPagination):
    """A page of soft labels also names the classes, in the order of each label's probs."""

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        paginated = super().get_paginated_response_schema(schema)
        paginated["properties"]["classes"] = {
            "type": "array",
            "items": {"type": "string"},
            "example": ["Cat", "Dog", "Ship"],
        }
        paginated["required"] = [*paginated.get("required", []), "classes"]
        return paginated


def cursor_page(
    request: Request,
    view: APIView,
    qs: QuerySet[Any],
    serializer: type[serializers.Serializer],
    row: Callable[[Any], Any] | None = None,
) -> Response:
    """One cursor-paginated page of `qs` (ordered by id) by the view's pagination_class (which
    the schema documents), each row through `row` if given."""
    paginator = getattr(view, "pagination_class", IdCursorPagination)()
    page = paginator.paginate_queryset(qs, request, view=view) or []
    items = [row(r) for r in page] if row else page
    return paginator.get_paginated_response(serializer(items, many=True).data)


RAW_IDS_HELP = (
    "Also write the participants' platform ids (PROLIFIC_PID, workerId): personal data. "
    "Without it they are named by their pseudonym only (a keyed hash)."
)


def choice_field(name: str, values: list[str], **kwargs: Any) -> serializers.ChoiceField:
    """A ChoiceField whose error names the value given and the values allowed."""
    return serializers.ChoiceField(
        choices=values,
        error_messages={"invalid_choice": f"Unknown {name} {{input!r}}; expected one of {values}."},
        **kwargs,
    )


def query_params(request: Request, serializer_class: type[serializers.Serializer]) -> Any:
    """The query string validated by `serializer_class` (the one the view's schema lists):
    an unknown, empty or malformed value answers 400 naming the parameter."""
    # A plain dict: as a QueryDict, "?stage=" would read as "left out" and be accepted.
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def study_for_researcher(*, slug: str, request: Request) -> Study:
    try:
        study = elicitation_selectors.study_get_by_slug(slug=slug)
    except Study.DoesNotExist as exc:
        raise Http404("No such study.") from exc
    if not elicitation_selectors.study_is_researcher(study=study, user_id=request.user.pk):
        raise PermissionDenied("You are not a researcher of this study.")
    return study


@extend_schema_field(
    {"type": "number", "format": "double", "minimum": 0, "maximum": 1, "exclusiveMaximum": True}
)
class SmoothingField(serializers.FloatField):
    """ε in [0, 1): ε = 1 would spread all mass evenly and erase every answer."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=0, **kwargs)

    def to_internal_value(self, data: Any) -> float:
        value = super().to_internal_value(data)
        if value >= 1:
            raise serializers.ValidationError("Must be less than 1.")
        return value


class MethodQuerySerializer(serializers.Serializer):
    """?method=NAME&gamma=G&smoothing=E&exclude_repeats=true; left out: the study's method."""

    method = choice_field(
        "construction", sorted(CONSTRUCTIONS), required=False, help_text="Construction name"
    )
    gamma = serializers.FloatField(
        min_value=0, max_value=1, required=False, help_text="Clamp mass γ, in [0, 1]"
    )
    smoothing = SmoothingField(required=False, help_text="Label smoothing ε, in [0, 1)")
    exclude_repeats = serializers.BooleanField(required=False, help_text="Leave repeats out")


def method_from_query(request: Request, study: Study) -> Method:
    """The construction the query string names (MethodQuerySerializer), defaulting to the
    study's method."""
    q = query_params(request, MethodQuerySerializer)
    default = selectors.study_default_method(study=study)
    if not q:
        return default
    try:
        return Method(
            name=q.get("method", default.name),
            gamma=q.get("gamma", default.gamma),
            smoothing=q.get("smoothing", default.smoothing),
            include_repeats=not q.get("exclude_repeats", False),
        )
    except ValueError as exc:
        raise serializers.ValidationError({"method": str(exc)}) from exc


class StudyOutputSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    title = serializers.CharField()
    trial_type = serializers.CharField()
    status = serializers.CharField()
    classes = serializers.ListField(child=serializers.CharField())
    participants_per_batch = serializers.IntegerField()
    label_method = serializers.CharField()
    label_params = serializers.DictField()
    created_at = serializers.DateTimeField()


class StudyListApi(APIView):
    @extend_schema(responses=StudyOutputSerializer(many=True), summary="Your studies")
    def get(self, request: Request) -> Response:
        studies = elicitation_selectors.study_list_for_user(user_id=request.user.pk)
        return Response(StudyOutputSerializer(studies, many=True).data)


class StudyDetailOutputSerializer(StudyOutputSerializer):
    links = serializers.DictField(child=serializers.CharField())


class StudyDetailApi(APIView):
    @extend_schema(
        responses=StudyDetailOutputSerializer,
        summary="One study, with the links to give Prolific / MTurk",
    )
    def get(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        data = dict(StudyOutputSerializer(study).data)
        data["links"] = elicitation_selectors.study_entry_links(
            study=study, base_url=request.build_absolute_uri("/")
        )
        return Response(data)


class ParticipantListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ParticipantOutput"  # nested serializers share a class name

        token = serializers.UUIDField()
        pseudonym = serializers.CharField(help_text="How the exports name the participant")
        platform = serializers.CharField()
        external_id = serializers.CharField()
        stage = serializers.CharField()
        batch = serializers.IntegerField(source="batch.number", allow_null=True, default=None)
        comprehension_failures = serializers.IntegerField()
        fast_answers = serializers.IntegerField(
            help_text="Answers faster than the study's min_response_ms (flagged, kept)."
        )
        straight_lining = serializers.BooleanField(
            allow_null=True,
            help_text="Every main and repeat trial answered the same way; null until the "
            "session is completed.",
        )
        created_at = serializers.DateTimeField()
        completed_at = serializers.DateTimeField(allow_null=True)

    class QuerySerializer(serializers.Serializer):
        class Meta:
            ref_name = "ParticipantListQuery"

        stage = choice_field("stage", Participant.Stage.values, required=False)

    pagination_class = IdCursorPagination

    @extend_schema(
        parameters=[QuerySerializer],
        responses=OutputSerializer(many=True),
        summary="A study's participants and where each one stands (cursor-paginated)",
    )
    def get(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        stage = query_params(request, self.QuerySerializer).get("stage")
        qs = elicitation_selectors.participant_list(study=study, stage=stage)
        return cursor_page(request, self, qs, self.OutputSerializer)


class StudyCollaboratorAddApi(APIView):
    class InputSerializer(JsonTypedSerializer):
        class Meta:
            ref_name = "StudyCollaboratorAddInput"  # nested serializers share a class name

        username = serializers.CharField(max_length=150)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "StudyCollaboratorsOutput"  # nested serializers share a class name

        owner = serializers.CharField()
        researchers = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        request=InputSerializer,
        responses=OutputSerializer,
        summary="Add a collaborator (owner only): they can see and export the study",
        examples=[OpenApiExample("Add", value={"username": "bob"}, request_only=True)],
    )
    def post(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        if study.owner_id != request.user.pk:
            raise PermissionDenied("Only the study's owner can add collaborators.")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        elicitation_services.study_add_researcher(
            study=study, username=serializer.validated_data["username"]
        )
        data = {
            "owner": study.owner.get_username(),
            "researchers": sorted(u.get_username() for u in study.researchers.all()),
        }
        return Response(self.OutputSerializer(data).data)


class ParticipantReturnApi(APIView):
    class InputSerializer(JsonTypedSerializer):
        class Meta:
            ref_name = "ParticipantReturnInput"  # nested serializers share a class name

        external_id = serializers.CharField(required=False, default="", max_length=128)
        token = serializers.UUIDField(required=False, allow_null=True, default=None)

        def validate(self, attrs: dict[str, object]) -> dict[str, object]:
            if not attrs["external_id"] and not attrs["token"]:
                raise serializers.ValidationError(
                    "Give the participant's external_id (e.g. PROLIFIC_PID) or session token."
                )
            return attrs

    @extend_schema(
        request=InputSerializer,
        responses=ParticipantListApi.OutputSerializer,
        summary="Mark a participant returned / timed out on the platform: frees their slot",
    )
    def post(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token = serializer.validated_data["token"]
        participant = elicitation_selectors.participant_find(
            study=study,
            external_id=serializer.validated_data["external_id"],
            token=str(token) if token else "",
        )
        if participant is None:
            raise Http404("No such participant in this study.")
        participant = elicitation_services.participant_return(participant=participant)
        return Response(ParticipantListApi.OutputSerializer(participant).data)


class ResponseListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ResponseListOutput"  # nested serializers share a class name

        id = serializers.IntegerField()
        participant = serializers.CharField()
        platform = serializers.CharField()
        external_id = serializers.CharField(allow_null=True)
        batch = serializers.IntegerField(allow_null=True)
        stimulus = serializers.CharField()
        kind = serializers.CharField()
        position = serializers.IntegerField()
        rt_ms = serializers.IntegerField()
        top_class = serializers.CharField(allow_blank=True)
        p1 = serializers.FloatField(allow_null=True)
        second_class = serializers.CharField(allow_null=True)
        p2 = serializers.FloatField(allow_null=True)
        impossible = serializers.ListField(child=serializers.CharField())
        class_order = serializers.ListField(child=serializers.CharField(), allow_null=True)
        value = serializers.DictField()
        raw = serializers.JSONField()
        client_key = serializers.UUIDField()
        created_at = serializers.DateTimeField()
        too_fast = serializers.BooleanField(
            help_text="Answered faster than the study's min_response_ms (flagged, kept)."
        )

    class QuerySerializer(serializers.Serializer):
        class Meta:
            ref_name = "ResponseListQuery"

        participant = serializers.RegexField(
            r"^[0-9a-f]{16}$",
            required=False,
            help_text="Pseudonym (as in the exports)",
            error_messages={"invalid": "participant must be a pseudonym: 16 hex digits."},
        )
        stimulus = serializers.CharField(required=False, max_length=255, help_text="Stimulus key")
        raw_ids = serializers.BooleanField(required=False, help_text=RAW_IDS_HELP)

    pagination_class = IdCursorPagination

    @extend_schema(
        parameters=[QuerySerializer],
        responses=OutputSerializer(many=True),
        summary="A study's responses, oldest first (cursor-paginated)",
        examples=[
            OpenApiExample(
                "A categorical response",
                response_only=True,
                value={
                    "id": 3,
                    "participant": "3f2a9c0d41b7e655",
                    "platform": "prolific",
                    "external_id": None,
                    "batch": 2,
                    "stimulus": "mixed_0.25_Circle_3_Square_5.png",
                    "kind": "main",
                    "position": 0,
                    "rt_ms": 8450,
                    "top_class": "Square",
                    "p1": 70.0,
                    "second_class": "Circle",
                    "p2": 25.0,
                    "impossible": ["Star", "Heart"],
                    "class_order": [
                        "Heart",
                        "Square",
                        "Circle",
                        "Cross",
                        "Triangle",
                        "Ring",
                        "Star",
                        "Diamond",
                    ],
                    "value": {},
                    "raw": {
                        "top_class": "Square",
                        "p1": 70,
                        "second_class": "Circle",
                        "p2": 25,
                        "impossible": ["Star", "Heart"],
                    },
                    "client_key": "0b6c2f7e-3a51-4c1e-9b1a-7a1f1e2d3c4b",
                    "created_at": "2026-11-23T17:00:29Z",
                },
            )
        ],
    )
    def get(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        q = query_params(request, self.QuerySerializer)
        raw_ids = q.get("raw_ids", False)
        privacy_services.participant_pseudonyms_fill(study=study)
        qs = elicitation_selectors.response_list(
            study=study,
            participant_pseudonym=q.get("participant"),
            stimulus_key=q.get("stimulus"),
        ).select_related("participant__batch")
        return cursor_page(
            request,
            self,
            qs,
            self.OutputSerializer,
            row=lambda r: {
                **exports.response_record_dict(study, r, raw_ids=raw_ids),
                "too_fast": r.too_fast,
            },
        )


class SoftLabelListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SoftLabelListOutput"  # nested serializers share a class name

        stimulus = serializers.CharField(source="stimulus.key")
        method = serializers.CharField()
        params = serializers.DictField()
        probs = serializers.ListField(child=serializers.FloatField())
        n_annotations = serializers.IntegerField()
        n_annotators = serializers.IntegerField()
        entropy = serializers.FloatField()
        updated_at = serializers.DateTimeField()

    pagination_class = SoftLabelPagination

    @extend_schema(
        parameters=[MethodQuerySerializer],
        responses=OutputSerializer(many=True),
        summary="Stored soft labels of a study under one method (default: the study's)",
        examples=[
            OpenApiExample(
                "One label",
                response_only=True,
                value={
                    "stimulus": "mixed_0.25_Cat_12_Dog_40.png",
                    "method": "clean-top2-clamp",
                    "params": {"gamma": 0.1, "smoothing": 0.0, "include_repeats": True},
                    "probs": [0.3, 0.65, 0.05],
                    "n_annotations": 7,
                    "n_annotators": 6,
                    "entropy": 0.8,
                    "updated_at": "2026-11-23T17:00:29Z",
                },
            )
        ],
    )
    def get(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        method = method_from_query(request, study)
        qs = selectors.soft_label_list(study=study, method=method).order_by("id")
        response = cursor_page(request, self, qs, self.OutputSerializer)
        assert isinstance(response.data, dict)
        response.data["classes"] = study.classes
        return response


class AnalysisResultListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AnalysisResultOutput"  # nested serializers share a class name

        kind = serializers.CharField()
        key = serializers.CharField()
        params = serializers.DictField()
        n = serializers.IntegerField()
        # "data" would shadow Serializer.data.
        result = serializers.DictField(source="data")
        updated_at = serializers.DateTimeField()

    class QuerySerializer(serializers.Serializer):
        class Meta:
            ref_name = "AnalysisResultListQuery"

        kind = choice_field("kind", AnalysisResult.Kind.values, required=False)

    pagination_class = IdCursorPagination

    @extend_schema(
        parameters=[QuerySerializer],
        responses=OutputSerializer(many=True),
        summary="Stored analysis results (mixing factor, midpoints, IRI alignment)",
        examples=[
            OpenApiExample(
                "A λ level of a mixing-factor study",
                response_only=True,
                value={
                    "kind": "mixing-lambda",
                    "key": "0.25",
                    "params": {"include_repeats": True},
                    "n": 40,
                    "result": {"lam_true": 0.25, "mean_lam_hat": 0.31, "sd_lam_hat": 0.12},
                    "updated_at": "2026-11-23T17:00:29Z",
                },
            )
        ],
    )
    def get(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        kind = query_params(request, self.QuerySerializer).get("kind")
        qs = selectors.analysis_result_list(study=study, kind=kind).order_by("id")
        return cursor_page(request, self, qs, self.OutputSerializer)


class ExportQuerySerializer(MethodQuerySerializer):
    class Meta:
        ref_name = "ExportQuery"

    what = choice_field("export", list(exports.WHATS))
    format = choice_field(
        "format",
        list(exports.FORMATS),
        help_text="npy and npy-index: soft-labels and annotation-soft-labels only.",
    )
    until = serializers.IntegerField(
        min_value=0,
        required=False,
        help_text=(
            "Label exports read rows up to this id. The response's X-HMix-Until header gives "
            "the bound used: pass it to the npy-index request so the index lists exactly the "
            "rows of the .npy."
        ),
    )
    raw_ids = serializers.BooleanField(required=False, help_text=RAW_IDS_HELP)


# Each format's media type (exports.CONTENT_TYPES); a JSON export is an array of records.
EXPORT_RESPONSES = {
    (200, media_type): OpenApiTypes.ANY if media_type == "application/json" else OpenApiTypes.BINARY
    for media_type in dict.fromkeys(exports.CONTENT_TYPES.values())
}


@method_decorator(transaction.non_atomic_requests, name="dispatch")
class ExportApi(APIView):
    non_atomic_request = True  # read by the exception handler (hmix_site/common/api.py)

    @extend_schema(
        parameters=[ExportQuerySerializer],
        responses=EXPORT_RESPONSES,
        summary="Stream an export (the same files as `manage.py export`)",
        description=(
            "The media type follows the format: csv and npy-index text/csv, json "
            "application/json, jsonl application/x-ndjson, npy application/octet-stream."
        ),
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse:
        study = study_for_researcher(slug=slug, request=request)
        q = query_params(request, ExportQuerySerializer)
        what, fmt = q["what"], q["format"]
        until = q["until"] if "until" in q else exports.export_until(study=study, what=what)
        raw_ids = q.get("raw_ids", False)
        try:
            stream = exports.export_stream(
                study=study,
                what=what,
                fmt=fmt,
                method=method_from_query(request, study),
                until=until,
                raw_ids=raw_ids,
            )
        except exports.ExportError as exc:
            raise serializers.ValidationError({"export": str(exc)}) from exc
        ext = "index.csv" if fmt == "npy-index" else fmt
        response = StreamingHttpResponse(stream, content_type=exports.CONTENT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="{study.slug}-{what}.{ext}"'
        response["X-HMix-Until"] = str(until)
        return response
