"""The study builder over REST: every action of the builder pages as an endpoint. Token
authentication, researchers of the study only, and bad input answers 400 naming the problem
with nothing written (the builder services are all or nothing)."""

from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis.apis import StudyDetailApi, StudyListApi, study_for_researcher
from elicitation import (
    builder_job_services,
    builder_services,
    imaging,
    selectors,
    services,
    uploads,
)
from elicitation.models import ImageSet, Study, StudyTransition
from hmix_site.common.serializers import JsonTypedSerializer
from jobs.apis import JobOutputSerializer
from jobs.models import Job


# Refuses fields it does not know: a misspelt field must not be silently ignored. (A comment,
# not a docstring: drf-spectacular would print a docstring into every input schema.)
class StrictSerializer(JsonTypedSerializer):
    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(dict.fromkeys(unknown, "Unknown field."))
        return attrs


def _upload_error(field: str, exc: imaging.ImageImportError) -> serializers.ValidationError:
    return serializers.ValidationError({field: f"Nothing was imported: {exc}"})


def _job_accepted(job: Job) -> Response:
    """202 with the queued job, as the export and legacy-import endpoints answer."""
    return Response(
        JobOutputSerializer(job).data,
        status=status.HTTP_202_ACCEPTED,
        headers={"Location": f"/api/jobs/{job.public_id}/"},
    )


class InstructionPageSerializer(serializers.Serializer):
    class Meta:
        ref_name = "BuilderInstructionPage"

    title = serializers.CharField(max_length=200, allow_blank=True, default="")
    html = serializers.CharField()


class ComprehensionQuestionSerializer(serializers.Serializer):
    class Meta:
        ref_name = "BuilderComprehensionQuestion"

    question = serializers.CharField(max_length=1000)
    options = serializers.ListField(child=serializers.CharField(max_length=500), min_length=2)
    answer = serializers.IntegerField(min_value=0, help_text="Index of the right option, from 0.")


class SettingsSerializer(serializers.Serializer):
    class Meta:
        ref_name = "BuilderSettings"

    catch_rate = serializers.FloatField(min_value=0, max_value=1, required=False)
    catch_threshold = serializers.FloatField(min_value=0, max_value=100, required=False)


class BuilderStudyOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "BuilderStudyOutput"

    slug = serializers.SlugField()
    title = serializers.CharField()
    trial_type = serializers.CharField()
    status = serializers.CharField()
    classes = serializers.ListField(child=serializers.CharField())
    participants_per_batch = serializers.IntegerField()
    repeats = serializers.IntegerField()
    consent_html = serializers.CharField()
    instructions = InstructionPageSerializer(many=True)
    comprehension = ComprehensionQuestionSerializer(many=True)
    max_comprehension_failures = serializers.IntegerField(allow_null=True)
    debrief_questions = serializers.ListField(child=serializers.CharField())
    completion_code = serializers.CharField(allow_blank=True)
    pays_without_code = serializers.BooleanField()
    completion_url = serializers.CharField(allow_blank=True)
    prolific_completion_url = serializers.CharField(allow_blank=True)
    full_code = serializers.CharField(allow_blank=True)
    excluded_code = serializers.CharField(allow_blank=True)
    expected_minutes = serializers.IntegerField()
    lease_minutes = serializers.IntegerField()
    min_response_ms = serializers.IntegerField()
    allow_no_steps = serializers.BooleanField()
    settings = serializers.DictField(help_text="The interface settings in force (with defaults).")


def _study_data(study: Study) -> dict[str, Any]:
    data = dict(BuilderStudyOutputSerializer(study).data)
    data["settings"] = selectors.study_settings(study=study)
    return data


STUDY_EXAMPLE = {
    "slug": "shapes-soft-labels",
    "title": "Blended shapes",
    "trial_type": "categorical",
    "participants_per_batch": 6,
    "repeats": 2,
}


class StudyCreateApi(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "StudyCreateInput"

        slug = serializers.SlugField(max_length=80)
        title = serializers.CharField(max_length=200)
        trial_type = serializers.ChoiceField(choices=Study.TrialType.choices)
        participants_per_batch = serializers.IntegerField(min_value=1, max_value=10_000, default=5)
        repeats = serializers.IntegerField(min_value=0, max_value=services.MAX_REPEATS, default=2)
        classes = serializers.ListField(
            child=serializers.CharField(max_length=100),
            required=False,
            default=list,
            help_text="Ordered class list; by default none until the first stimuli, which take "
            "their image set's classes (also replacing a given list they do not fit).",
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: BuilderStudyOutputSerializer},
        summary="Create a draft study with the default texts of its interface",
        examples=[OpenApiExample("Categorical study", value=STUDY_EXAMPLE, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assert request.user.pk is not None  # IsAuthenticated
        study = builder_services.study_create_draft(
            owner_id=request.user.pk, **serializer.validated_data
        )
        return Response(_study_data(study), status=status.HTTP_201_CREATED)


# One URL, two operations: GET lists your studies (analysis.apis), POST creates one. No
# docstring, since drf-spectacular would use it as the description of both.
class StudyListCreateApi(StudyCreateApi, StudyListApi):
    pass


class StudyUpdateApi(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "StudyUpdateInput"

        title = serializers.CharField(max_length=200, required=False)
        consent_html = serializers.CharField(required=False)
        instructions = InstructionPageSerializer(many=True, required=False)
        comprehension = ComprehensionQuestionSerializer(many=True, required=False)
        max_comprehension_failures = serializers.IntegerField(
            min_value=1, allow_null=True, required=False
        )
        debrief_questions = serializers.ListField(
            child=serializers.CharField(max_length=1000), required=False
        )
        completion_code = serializers.CharField(max_length=64, allow_blank=True, required=False)
        pays_without_code = serializers.BooleanField(
            required=False,
            help_text="No code: the researcher pays another way (lets the study launch "
            "without a completion code).",
        )
        completion_url = serializers.CharField(max_length=500, allow_blank=True, required=False)
        prolific_completion_url = serializers.CharField(
            max_length=500, allow_blank=True, required=False
        )
        full_code = serializers.CharField(max_length=64, allow_blank=True, required=False)
        excluded_code = serializers.CharField(max_length=64, allow_blank=True, required=False)
        settings = SettingsSerializer(required=False)
        participants_per_batch = serializers.IntegerField(min_value=1, required=False)
        expected_minutes = serializers.IntegerField(min_value=1, required=False)
        lease_minutes = serializers.IntegerField(min_value=1, required=False)
        min_response_ms = serializers.IntegerField(min_value=0, required=False)
        allow_no_steps = serializers.BooleanField(required=False)
        trial_type = serializers.ChoiceField(choices=Study.TrialType.choices, required=False)
        classes = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
        repeats = serializers.IntegerField(min_value=0, required=False)

    @extend_schema(
        request=InputSerializer,
        responses=BuilderStudyOutputSerializer,
        summary="Edit a study's texts and settings (any time) or its structure (draft only)",
        description=(
            "Texts, the completion code and URL and interface settings change at any time; "
            "trial_type, classes and repeats only while the study is a draft, and "
            "participants_per_batch until anyone has consented (409 otherwise). Every problem "
            "is reported, and nothing is saved unless all "
            "fields are valid."
        ),
        examples=[
            OpenApiExample(
                "Completion and check",
                value={
                    "completion_code": "C1A2B3",
                    "comprehension": [
                        {
                            "question": "Whose labels do you imagine?",
                            "options": ["My own only", "100 crowdworkers'"],
                            "answer": 1,
                        }
                    ],
                },
                request_only=True,
            )
        ],
    )
    def patch(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        for name in ("instructions", "comprehension", "settings"):
            if name in fields:  # nested serializers give OrderedDicts; the service takes JSON
                fields[name] = _plain(fields[name])
        if fields:
            study = services.study_update(study=study, **fields)
        return Response(_study_data(study))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# One URL, two operations: GET reads a study (analysis.apis), PATCH edits it.
class StudyDetailUpdateApi(StudyUpdateApi, StudyDetailApi):
    pass


class ImageSetOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ImageSetOutput"

    name = serializers.SlugField()
    # A field called "source" shadows Field.source in the stubs only (the metaclass collects it).
    source = serializers.CharField()  # type: ignore[assignment]
    classes = serializers.ListField(child=serializers.CharField())
    n_images = serializers.IntegerField()
    owned = serializers.BooleanField(help_text="False for shared sets (demo, command imports).")


def _image_set_data(image_set: ImageSet, user_id: int | None, n_images: int) -> dict[str, Any]:
    return {
        "name": image_set.name,
        "source": image_set.source,
        "classes": image_set.classes,
        "n_images": n_images,
        "owned": image_set.owner_id == user_id,
    }


class ImageSetListApi(APIView):
    @extend_schema(
        responses=ImageSetOutputSerializer(many=True),
        summary="Image sets you can generate stimuli from (yours and shared ones)",
    )
    def get(self, request: Request) -> Response:
        sets = selectors.image_set_list_for_user(user_id=request.user.pk)
        return Response(
            [_image_set_data(s, request.user.pk, s.n_images) for s in sets]  # type: ignore[attr-defined]
        )


class ImageSetCreateApi(APIView):
    parser_classes = [MultiPartParser]

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ImageSetCreateInput"

        name = serializers.SlugField(max_length=80)
        source = serializers.ChoiceField(  # type: ignore[assignment]
            choices=[("zip", "zip of class folders"), ("cifar10", "CIFAR-10 python batches")]
        )
        zip_file = serializers.FileField(
            required=False, help_text="source=zip: <class>/<image>.png, one folder per class."
        )
        cifar_files = serializers.ListField(
            child=serializers.FileField(),
            required=False,
            help_text="source=cifar10: one or more batch files (data_batch_1, test_batch, ...).",
        )
        cifar_meta = serializers.FileField(
            required=False, help_text="source=cifar10: batches.meta, for the class names."
        )
        limit_per_class = serializers.IntegerField(min_value=1, required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            attrs = super().validate(attrs)
            if attrs["source"] == "zip" and not attrs.get("zip_file"):
                raise serializers.ValidationError({"zip_file": "Give the zip file."})
            if attrs["source"] == "cifar10" and not attrs.get("cifar_files"):
                raise serializers.ValidationError(
                    {"cifar_files": "Give at least one CIFAR-10 batch file."}
                )
            return attrs

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={202: JobOutputSerializer},
        summary="Upload base images: a zip of class folders, or CIFAR-10 batch files (a job)",
        description=(
            "Only real images are stored (PNG, JPEG, BMP, WebP), each file at most "
            "HMIX_MAX_UPLOAD_BYTES, each image at most HMIX_MAX_IMAGE_PIXELS pixels (checked on "
            "the header, so decompression bombs are refused undecoded). The upload is checked "
            "at once (name, size, zip layout, every image's header; CIFAR batches in full): any "
            "problem answers 400 naming the file, and nothing is stored. Otherwise the answer "
            "is 202 with a job that a worker runs: poll /api/jobs/<id>/ until it is done "
            "(its result is a JSON summary of the new image set) or failed (an image broken "
            "inside its pixel data; nothing is stored)."
        ),
        examples=[
            OpenApiExample(
                "Zip of class folders",
                value={"name": "my-shapes", "source": "zip", "zip_file": "(binary)"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        assert request.user.pk is not None  # IsAuthenticated
        job = builder_job_services.image_upload_job_create(
            owner_id=request.user.pk,
            name=data["name"],
            source=data["source"],
            zip_file=data.get("zip_file"),
            cifar_files=data.get("cifar_files") or (),
            cifar_meta=data.get("cifar_meta"),
            limit_per_class=data.get("limit_per_class"),
        )
        return _job_accepted(job)


# One URL, two operations: GET lists the image sets you can use, POST uploads one.
class ImageSetListCreateApi(ImageSetCreateApi, ImageSetListApi):
    pass


class IriImportApi(APIView):
    parser_classes = [MultiPartParser]

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "IriImportInput"

        zip_file = serializers.FileField(help_text="The IRI set's images.")
        manifest = serializers.FileField(help_text="manifest.csv or manifest.json")
        seed = serializers.IntegerField(default=0, help_text="Clustering: how sets are formed.")

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "IriImportOutput"

        created = serializers.IntegerField()
        total = serializers.IntegerField()
        keys = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={201: OutputSerializer},
        summary="Import an IRI set (zip + manifest) into a draft IRI study",
        description=(
            "Every row of the manifest and every image is checked first; any problem answers "
            "400 with all of them listed in extra.fields, and nothing is imported."
        ),
    )
    def post(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        limits = uploads.upload_limits()
        try:
            files = uploads.iri_files_from_zip(data["zip_file"], limits=limits)
        except imaging.ImageImportError as exc:
            raise _upload_error("zip_file", exc) from exc
        try:
            manifest, manifest_format = uploads.manifest_from_upload(
                data["manifest"], limits=limits
            )
        except imaging.ImageImportError as exc:
            raise _upload_error("manifest", exc) from exc
        try:
            created = builder_services.study_iri_import(
                study=study,
                files=files,
                manifest=manifest,
                manifest_format=manifest_format,
                max_pixels=limits.max_pixels,
                seed=data["seed"],
            )
        except ValidationError as exc:
            raise serializers.ValidationError({"manifest": exc.messages}) from exc
        out = {
            "created": len(created),
            "total": selectors.stimulus_list(study=study).count(),
            "keys": [s.key for s in created],
        }
        return Response(self.OutputSerializer(out).data, status=status.HTTP_201_CREATED)


class StimuliGenerateApi(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "StimuliGenerateInput"

        image_set = serializers.SlugField(help_text="Name of an image set you can use.")
        n_pairs = serializers.IntegerField(min_value=1, help_text="Image pairs to mix.")
        lambdas = serializers.ListField(
            child=serializers.FloatField(min_value=0, max_value=1),
            required=False,
            default=list,
            help_text="Mixup studies (categorical, mixing_factor): the λ grid, weights of the "
            "image whose class sorts first. Midpoint series always use λ = 0.0, 0.1, …, 1.0.",
        )
        plain_per_class = serializers.IntegerField(
            min_value=0, default=0, help_text="Categorical studies: unmixed images per class."
        )
        seed = serializers.IntegerField(default=0)

    @extend_schema(
        request=InputSerializer,
        responses={202: JobOutputSerializer},
        summary="Generate the study's stimuli from an image set (draft studies only; a job)",
        description=(
            "Categorical and mixing-factor studies get mixup images for n_pairs image pairs × "
            "every λ; construct- and select-midpoint studies get 11-step midpoint series of "
            "n_pairs pairs. Class pairs are spread evenly. The request is checked at once (400 "
            "or 409 naming the problem, nothing written); then a worker renders the stimuli: "
            "the answer is 202 with the job to poll at /api/jobs/<id>/. A done job's result is "
            "a JSON summary (created, total, classes, keys); a failed one wrote nothing. "
            "Repeating a call adds nothing."
        ),
        examples=[
            OpenApiExample(
                "Mixup",
                value={
                    "image_set": "cifar10-test",
                    "lambdas": [0.1, 0.25, 0.5, 0.75, 0.9],
                    "n_pairs": 200,
                    "plain_per_class": 5,
                    "seed": 0,
                },
                request_only=True,
            ),
            OpenApiExample(
                "Midpoint series",
                value={"image_set": "cifar10-test", "n_pairs": 30},
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            image_set = selectors.image_set_get_for_user(
                name=data["image_set"], user_id=request.user.pk
            )
        except ImageSet.DoesNotExist as exc:
            raise serializers.ValidationError(
                {"image_set": f"No image set {data['image_set']!r} that you can use."}
            ) from exc
        assert request.user.pk is not None  # IsAuthenticated
        job = builder_job_services.stimuli_generate_job_create(
            study=study,
            image_set=image_set,
            owner_id=request.user.pk,
            n_pairs=data["n_pairs"],
            lambdas=data["lambdas"],
            plain_per_class=data["plain_per_class"],
            seed=data["seed"],
        )
        return _job_accepted(job)


class BatchesBuildApi(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "BatchesBuildInput"

        batch_size = serializers.IntegerField(
            min_value=1,
            help_text="Stimuli per batch, as a target: the stimuli are split into the number of "
            "batches that comes closest to it, with sizes that differ by at most one.",
        )
        participants_per_batch = serializers.IntegerField(
            min_value=1, max_value=10_000, required=False
        )
        seed = serializers.IntegerField(default=0)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "BatchOutput"

        number = serializers.IntegerField()
        size = serializers.IntegerField()
        target = serializers.IntegerField(help_text="Participants the batch takes.")

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer(many=True)},
        summary="Split the study's stimuli into batches (refused once participants hold any)",
        examples=[
            OpenApiExample(
                "25 stimuli, 6 participants each",
                value={"batch_size": 25, "participants_per_batch": 6},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        builder_services.study_batches_build(study=study, **serializer.validated_data)
        batches = [
            {"number": b.number, "size": b.n_items, "target": b.target}  # type: ignore[attr-defined]
            for b in selectors.batch_list(study=study)
        ]
        return Response(
            self.OutputSerializer(batches, many=True).data, status=status.HTTP_201_CREATED
        )


class StudyStatusApi(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "StudyStatusInput"

        # Every status is accepted here so that a refused change (back to draft, out of closed)
        # is answered by the lifecycle's own 409 naming the rule, not a generic choice error.
        status = serializers.ChoiceField(
            choices=[
                (Study.Status.LIVE, "Launch (or resume)"),
                (Study.Status.PAUSED, "Pause"),
                (Study.Status.CLOSED, "Close"),
                (Study.Status.DRAFT, "Draft (always refused once launched)"),
            ]
        )

    @extend_schema(
        request=InputSerializer,
        responses=BuilderStudyOutputSerializer,
        summary="Launch, pause, resume or close a study",
        description=(
            "draft → live ⇄ paused → closed. A launch (or resume) runs the launch checklist and "
            "answers 409 with every problem left in extra.checklist; a launched study never "
            "returns to draft and a closed one stays closed (409). Each change is recorded "
            "with who made it."
        ),
        examples=[OpenApiExample("Launch", value={"status": "live"}, request_only=True)],
    )
    def post(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        study = services.study_set_status(
            study=study,
            status=serializer.validated_data["status"],
            actor_id=request.user.pk,
            via=StudyTransition.Via.API,
        )
        return Response(_study_data(study))
