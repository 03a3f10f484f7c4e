"""The IRI workflow over REST: models (upload a TorchScript file, or train a small CNN), then
IRI generation into an E or F study, both as jobs polled at /api/jobs/<id>/."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis.apis import study_for_researcher
from analysis.builder_apis import StrictSerializer
from elicitation import selectors as elicitation_selectors
from elicitation.models import ImageSet, Study
from hmix_site.common.parsers import SafeJSONParser
from iri import selectors, services
from iri.models import MAX_INPUT_SIZE, MIN_INPUT_SIZE, Network
from jobs.apis import JobOutputSerializer
from jobs.models import Job


def _accepted(job: Job) -> Response:
    return Response(
        JobOutputSerializer(job).data,
        status=status.HTTP_202_ACCEPTED,
        headers={"Location": f"/api/jobs/{job.public_id}/"},
    )


def _image_set(request: Request, name: str) -> ImageSet:
    try:
        return elicitation_selectors.image_set_get_for_user(name=name, user_id=request.user.pk)
    except ImageSet.DoesNotExist as exc:
        raise serializers.ValidationError(
            {"image_set": f"No image set {name!r} that you can use."}
        ) from exc


def _network(request: Request, name: str) -> Network:
    try:
        return selectors.network_get_for_user(name=name, user_id=request.user.pk)
    except Network.DoesNotExist as exc:
        raise serializers.ValidationError({"model": f"You have no model named {name!r}."}) from exc


class NetworkOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    origin = serializers.CharField(source="source")
    regime = serializers.CharField()
    layer = serializers.CharField()
    input_size = serializers.IntegerField()
    mean = serializers.ListField(child=serializers.FloatField())
    std = serializers.ListField(child=serializers.FloatField())
    classes = serializers.ListField(child=serializers.CharField())
    meta = serializers.DictField()
    created_at = serializers.DateTimeField()


class NetworkListUploadApi(APIView):
    parser_classes = [MultiPartParser, FormParser]
    extra_error_statuses = (503,)  # no PyTorch on this server

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "NetworkUploadInput"

        name = serializers.SlugField(max_length=80)
        file = serializers.FileField(allow_empty_file=False)
        input_size = serializers.IntegerField(min_value=MIN_INPUT_SIZE, max_value=MAX_INPUT_SIZE)
        layer = serializers.CharField(max_length=64, default="forward")
        regime = serializers.SlugField(max_length=40, default="standard")
        mean = serializers.ListField(
            child=serializers.FloatField(), min_length=3, max_length=3, default=[0.0, 0.0, 0.0]
        )
        std = serializers.ListField(
            child=serializers.FloatField(), min_length=3, max_length=3, default=[1.0, 1.0, 1.0]
        )

    @extend_schema(responses=NetworkOutputSerializer(many=True), summary="Your models")
    def get(self, request: Request) -> Response:
        networks = selectors.network_list_for_user(user_id=request.user.pk)
        return Response(NetworkOutputSerializer(networks, many=True).data)

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={201: NetworkOutputSerializer},
        summary="Upload a TorchScript model for IRI generation",
        description=(
            "A TorchScript file (`torch.jit.save`) taking (N, 3, input_size, input_size) images. "
            "`mean`/`std` normalise the [0, 1] pixels before the model (leave the defaults if "
            "it normalises itself). `layer` is the method returning the representation: "
            "`forward` for the output, or a method exported with `@torch.jit.export` (e.g. "
            "penultimate features; replace the final ReLU by one passing gradients where it is "
            "inactive, as H-Mix's own CNNs do). The file is loaded and the layer run once "
            "before anything is stored; a problem answers 400 naming it. 503 without PyTorch."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        assert request.user.pk is not None  # IsAuthenticated
        network = services.network_upload(
            owner_id=request.user.pk,
            name=data["name"],
            data=data["file"].read(),
            input_size=data["input_size"],
            mean=data["mean"],
            std=data["std"],
            layer=data["layer"],
            regime=data["regime"],
        )
        return Response(NetworkOutputSerializer(network).data, status=status.HTTP_201_CREATED)


class NetworkTrainApi(APIView):
    parser_classes = [SafeJSONParser]
    extra_error_statuses = (503,)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "NetworkTrainInput"

        name = serializers.SlugField(max_length=80)
        image_set = serializers.CharField(max_length=100)
        regime = serializers.ChoiceField(choices=["standard", "robust"], default="standard")
        epochs = serializers.IntegerField(min_value=1, max_value=services.MAX_EPOCHS, default=25)
        epsilon = serializers.FloatField(min_value=1e-6, default=0.5)
        seed = serializers.IntegerField(min_value=0, default=0)

    @extend_schema(
        request=InputSerializer,
        responses={202: JobOutputSerializer},
        summary="Train a small CNN on an image set (standard or ℓ2-PGD robust), as a job",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        assert request.user.pk is not None  # IsAuthenticated
        job = services.network_train_job_create(
            owner_id=request.user.pk,
            name=data["name"],
            image_set=_image_set(request, data["image_set"]),
            regime=data["regime"],
            epochs=data["epochs"],
            epsilon=data["epsilon"],
            seed=data["seed"],
        )
        return _accepted(job)


class NewStudySerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=80)
    title = serializers.CharField(max_length=200)
    # A plain string (checked by the service): a second choice set named trial_type would
    # collide with the studies' enum in the OpenAPI schema.
    trial_type = serializers.CharField(
        max_length=32,
        help_text=f"{Study.TrialType.IRI_2AFC.value} or {Study.TrialType.IRI_CLUSTER.value}",
    )


class IriGenerateApi(APIView):
    parser_classes = [SafeJSONParser]
    # 404: no study of that slug; 503: no PyTorch on this server.
    extra_error_statuses = (404, 503)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "IriGenerateInput"

        model = serializers.SlugField(max_length=80)
        image_set = serializers.CharField(max_length=100)
        study = serializers.SlugField(max_length=80, required=False)
        new_study = NewStudySerializer(required=False)
        layer = serializers.CharField(max_length=64, required=False, default="")
        targets = serializers.ListField(
            child=serializers.CharField(max_length=320), required=False, default=list
        )
        per_class = serializers.IntegerField(min_value=1, max_value=1000, default=2)
        start = serializers.ChoiceField(choices=list(services.STARTS), default="noise")
        start_image = serializers.CharField(max_length=320, required=False, default="")
        regulariser = serializers.ChoiceField(choices=list(services.REGULARISERS), default="none")
        lam = serializers.FloatField(min_value=0, default=0.05)
        steps = serializers.IntegerField(min_value=1, max_value=services.MAX_STEPS, default=5000)
        eta = serializers.FloatField(min_value=1e-9, default=1.0)
        seeds = serializers.ListField(
            child=serializers.IntegerField(min_value=0),
            min_length=1,
            max_length=services.MAX_SEEDS,
            default=[0],
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            attrs = super().validate(attrs)
            if ("study" in attrs) == ("new_study" in attrs):
                raise serializers.ValidationError(
                    {"study": "Give either `study` (an existing draft) or `new_study`."}
                )
            return attrs

    @extend_schema(
        request=InputSerializer,
        responses={202: JobOutputSerializer},
        summary="Generate IRIs of a model into an E or F study (runs as a job)",
        description=(
            "Minimises ‖f(x) − f(x_t)‖₂ / ‖f(x_t)‖₂ + λ·R(x) for each target by normalised "
            "gradient steps of ℓ2 length `eta` in [0, 1] pixels, keeping the lowest-loss "
            "iterate; one run per seed, each with its own shared noise start. The IRIs go "
            "into a draft iri_2afc or iri_cluster study (clustering: 3+ targets, 2+ seeds) "
            "with full manifest rows; cancel with POST /api/jobs/<id>/cancel/."
        ),
        examples=[
            OpenApiExample(
                "Two seeds of the demo shapes into a new clustering study",
                value={
                    "model": "demo-robust",
                    "image_set": "demo-shapes",
                    "new_study": {
                        "slug": "iri-robust",
                        "title": "Which shape?",
                        "trial_type": "iri_cluster",
                    },
                    "per_class": 1,
                    "seeds": [0, 1],
                    "steps": 5000,
                    "eta": 1.0,
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.torch_require()
        study = None
        if "study" in data:
            study = study_for_researcher(slug=data["study"], request=request)
        assert request.user.pk is not None  # IsAuthenticated
        job = services.iri_generate_job_create(
            owner_id=request.user.pk,
            network=_network(request, data["model"]),
            image_set=_image_set(request, data["image_set"]),
            study=study,
            new_study=dict(data["new_study"]) if "new_study" in data else None,
            layer=data["layer"],
            targets=data["targets"],
            per_class=data["per_class"],
            start=data["start"],
            start_image=data["start_image"],
            regulariser=data["regulariser"],
            lam=data["lam"],
            steps=data["steps"],
            eta=data["eta"],
            seeds=data["seeds"],
        )
        return _accepted(job)
