"""The participant journey as a JSON API. The session token in the URL is the credential."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from elicitation import exits, payloads, selectors, services
from elicitation.models import Participant, Study
from elicitation.presenters import session_state
from hmix_site.common import body_limits, ratelimits
from hmix_site.common.serializers import JsonTypedSerializer


def _participant(token: str) -> Participant:
    try:
        return selectors.participant_get_by_token(token=token)
    except (Participant.DoesNotExist, ValidationError) as exc:
        raise Http404("No session with this token.") from exc


class ParticipantApi(APIView):
    # Participants have no accounts: the unguessable session token is their credential.
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    # An answer is a few hundred bytes: larger bodies get a 413 before they are read.
    body_limit_setting = body_limits.PARTICIPANT


class NonAtomicParticipantApi(ParticipantApi):
    """For the hot path: the request is not wrapped in a transaction (ATOMIC_REQUESTS).

    Its one service call is atomic by itself; wrapping the request as well would only add a
    transaction (or, under a test's transaction, two savepoint statements) per request.
    """

    non_atomic_request = True  # read by the exception handler (hmix_site/common/api.py)

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        return transaction.non_atomic_requests(super().as_view(**initkwargs))


class SessionOutputSerializer(serializers.Serializer):
    token = serializers.UUIDField()
    stage = serializers.CharField()
    study = serializers.DictField()
    progress = serializers.DictField()
    trial = serializers.DictField(allow_null=True)
    next_image_url = serializers.CharField(allow_null=True)
    consent_html = serializers.CharField()
    instructions = serializers.ListField(child=serializers.DictField())
    comprehension = serializers.ListField(child=serializers.DictField())
    debrief_questions = serializers.ListField(child=serializers.CharField())
    completion = serializers.DictField(
        allow_null=True,
        help_text='At completion: {"code", "method": "redirect" | "post" | "show", "url", '
        '"fields"}; "post" means submit `fields` as a form to `url` (MTurk externalSubmit).',
    )
    screen_out = serializers.DictField(
        allow_null=True,
        help_text='When the study was full or the participant excluded: {"reason": "full" | '
        '"excluded", "code", "method": ... as completion, or "return"}.',
    )


class SessionStartApi(ParticipantApi):
    # 404: no study with the slug in the body; 403: a Prolific ID resumed from another
    # Prolific study or submission (hmix_site/common/schema.py documents the usual statuses).
    extra_error_statuses = (403, 404)

    class InputSerializer(JsonTypedSerializer):
        class Meta:
            ref_name = "SessionStartInput"  # nested serializers share a class name

        study = serializers.SlugField(max_length=80)  # Study.slug's length
        platform = serializers.ChoiceField(choices=Participant.Platform.choices)
        external_id = serializers.CharField(max_length=128, required=False, default="")
        platform_study_id = serializers.CharField(max_length=128, required=False, default="")
        platform_session_id = serializers.CharField(max_length=128, required=False, default="")
        turk_submit_to = serializers.CharField(
            max_length=200,
            required=False,
            default="",
            help_text="MTurk's turkSubmitTo; only its production and sandbox hosts are kept.",
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs["platform"] != Participant.Platform.DIRECT and not attrs["external_id"]:
                raise serializers.ValidationError(
                    {"external_id": "external_id (PROLIFIC_PID / workerId) is required."}
                )
            attrs["turk_submit_to"] = exits.turk_submit_to_clean(attrs["turk_submit_to"])
            return attrs

    @extend_schema(
        request=InputSerializer,
        responses={201: SessionOutputSerializer, 200: SessionOutputSerializer},
        summary="Start a participant session, or resume this worker's existing one",
        description=(
            "The explicit start: nothing is stored before it. A new session is refused with "
            '409 and extra {"reason": "full", "screen_out_code"} when every place is taken.'
        ),
        examples=[
            OpenApiExample(
                "Prolific",
                value={
                    "study": "demo-soft-labels",
                    "platform": "prolific",
                    "external_id": "5f1d...",
                    "platform_study_id": "63a...",
                    "platform_session_id": "abc...",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            study = selectors.study_get_by_slug(slug=data.pop("study"))
        except Study.DoesNotExist as exc:
            raise Http404("No such study.") from exc
        ratelimits.participant_arrival_limit(request=request, study_slug=study.slug)
        participant, created = services.participant_start(
            study=study, user_agent=request.headers.get("User-Agent", ""), **data
        )
        return Response(
            session_state(participant=participant),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class SessionDetailApi(NonAtomicParticipantApi):
    @extend_schema(responses=SessionOutputSerializer, summary="Where the session stands now")
    def get(self, request: Request, token: str) -> Response:
        participant = services.participant_touch(participant=_participant(token))
        return Response(session_state(participant=participant))


class ConsentApi(ParticipantApi):
    class InputSerializer(JsonTypedSerializer):
        class Meta:
            ref_name = "ConsentInput"  # nested serializers share a class name

        decline = serializers.BooleanField(required=False, default=False)
        adult = serializers.BooleanField(required=False, default=False)
        understood = serializers.BooleanField(required=False, default=False)
        agree = serializers.BooleanField(required=False, default=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs["decline"]:
                return attrs
            missing = [k for k in ("adult", "understood", "agree") if not attrs[k]]
            if missing:
                raise serializers.ValidationError(
                    dict.fromkeys(missing, "All three statements must be confirmed to take part.")
                )
            return attrs

    @extend_schema(
        request=InputSerializer,
        responses=SessionOutputSerializer,
        summary="Give consent (all three statements) or decline",
    )
    def post(self, request: Request, token: str) -> Response:
        participant = _participant(token)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        participant = services.participant_consent(
            participant=participant, agreed=not serializer.validated_data["decline"]
        )
        return Response(session_state(participant=participant))


class InstructionsApi(ParticipantApi):
    @extend_schema(
        request=None, responses=SessionOutputSerializer, summary="Mark the instructions as read"
    )
    def post(self, request: Request, token: str) -> Response:
        participant = services.participant_instructions_complete(participant=_participant(token))
        return Response(session_state(participant=participant))


class ComprehensionApi(ParticipantApi):
    class InputSerializer(JsonTypedSerializer):
        class Meta:
            ref_name = "ComprehensionInput"  # nested serializers share a class name

        answers = serializers.ListField(
            child=serializers.IntegerField(min_value=0), max_length=payloads.MAX_QUESTIONS
        )

    @extend_schema(
        request=InputSerializer,
        responses=SessionOutputSerializer,
        summary="Answer the comprehension check (wrong: back to the instructions)",
    )
    def post(self, request: Request, token: str) -> Response:
        participant = _participant(token)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        attempt = services.comprehension_submit(
            participant=participant, answers=serializer.validated_data["answers"]
        )
        # The service's locked and updated copy of the participant: no need to read it again.
        return Response(
            {**session_state(participant=attempt.participant), "passed": attempt.passed}
        )


class ResponseCreateApi(NonAtomicParticipantApi):
    class InputSerializer(JsonTypedSerializer):
        class Meta:
            ref_name = "ResponseCreateInput"  # nested serializers share a class name

        trial = serializers.IntegerField(min_value=1)
        client_key = serializers.UUIDField()
        rt_ms = serializers.IntegerField(min_value=0, max_value=24 * 3600 * 1000)
        answer = serializers.JSONField()

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ResponseCreateOutput"  # nested serializers share a class name

        id = serializers.IntegerField()
        trial = serializers.IntegerField(source="trial_id")
        client_key = serializers.UUIDField()
        created_at = serializers.DateTimeField()

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer, 200: OutputSerializer},
        summary="Submit the answer to the current trial (idempotent on client_key)",
        description=(
            "A repeated submit with the same client_key returns the stored response with status "
            "200 and writes nothing. For categorical studies `answer` is "
            '`{"top_class": "Cat", "p1": 60, "second_class": "Dog" | null, "p2": 20 | null, '
            '"impossible": ["Ship", ...]}` with percentages 0-100.'
        ),
        examples=[
            OpenApiExample(
                "Categorical",
                value={
                    "trial": 17,
                    "client_key": "0b6c2f7e-3a51-4c1e-9b1a-7a1f1e2d3c4b",
                    "rt_ms": 8450,
                    "answer": {
                        "top_class": "Circle",
                        "p1": 70,
                        "second_class": "Square",
                        "p2": 20,
                        "impossible": ["Star"],
                    },
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, token: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        response, created = services.response_record_by_token(
            token=token,
            trial_id=data["trial"],
            client_key=data["client_key"],
            rt_ms=data["rt_ms"],
            answer=data["answer"],
        )
        return Response(
            self.OutputSerializer(response).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class DebriefApi(ParticipantApi):
    class InputSerializer(JsonTypedSerializer):
        class Meta:
            ref_name = "DebriefInput"  # nested serializers share a class name

        answers = serializers.DictField(
            child=serializers.CharField(allow_blank=True, max_length=payloads.MAX_ANSWER_CHARS),
            default=dict,
        )

        def validate_answers(self, value: dict[str, str]) -> dict[str, str]:
            # Keys are question numbers ("0", "1", ...): at most one per question a study has.
            if len(value) > payloads.MAX_QUESTIONS:
                raise serializers.ValidationError(
                    f"At most {payloads.MAX_QUESTIONS} answers, one per debrief question."
                )
            if any(not key.isdigit() or len(key) > 3 for key in value):
                raise serializers.ValidationError("Answers are keyed by question number.")
            return value

    @extend_schema(
        request=InputSerializer,
        responses=SessionOutputSerializer,
        summary="Answer the debrief and complete the session",
    )
    def post(self, request: Request, token: str) -> Response:
        participant = _participant(token)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        participant = services.participant_debrief_submit(
            participant=participant, answers=serializer.validated_data["answers"]
        )
        return Response(session_state(participant=participant))
