"""Researcher API: withdraw a participant, and read the study's withdrawal log."""

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis.apis import IdCursorPagination, cursor_page, study_for_researcher
from elicitation import privacy_selectors, privacy_services
from elicitation.models import ParticipantWithdrawal
from hmix_site.common.serializers import JsonTypedSerializer


class WithdrawalOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "WithdrawalOutput"  # nested serializers share a class name

    participant = serializers.CharField(source="pseudonym")
    mode = serializers.CharField()
    n_responses = serializers.IntegerField()
    reason = serializers.CharField()
    by = serializers.CharField(source="by.get_username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class ParticipantWithdrawApi(APIView):
    class InputSerializer(JsonTypedSerializer):
        class Meta:
            ref_name = "ParticipantWithdrawInput"  # nested serializers share a class name

        participant = serializers.CharField(
            max_length=128,
            help_text="The participant's pseudonym (as in the exports), platform id or token",
        )
        mode = serializers.ChoiceField(
            choices=ParticipantWithdrawal.Mode.choices,
            help_text="delete: their responses are deleted; exclude: kept but left out of every "
            "label, analysis and export",
        )
        reason = serializers.CharField(
            max_length=privacy_services.MAX_REASON, required=False, default="", allow_blank=True
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: WithdrawalOutputSerializer},
        summary="Withdraw a participant: delete or exclude their responses; labels recompute",
        examples=[
            OpenApiExample(
                "Delete on request",
                value={"participant": "3f2a9c0d41b7e655", "mode": "delete", "reason": "email"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        participant = privacy_selectors.participant_find_by_reference(
            study=study, reference=data["participant"]
        )
        if participant is None:
            raise Http404("No such participant in this study.")
        withdrawal = privacy_services.participant_withdraw(
            participant=participant,
            user_id=request.user.pk,
            mode=data["mode"],
            reason=data["reason"],
        )
        return Response(WithdrawalOutputSerializer(withdrawal).data, status=status.HTTP_201_CREATED)


class ParticipantWithdrawalListApi(APIView):
    pagination_class = IdCursorPagination  # documents the page cursor_page answers

    @extend_schema(
        responses=WithdrawalOutputSerializer(many=True),
        summary="The study's withdrawal log (who withdrew which participant, when, how)",
    )
    def get(self, request: Request, slug: str) -> Response:
        study = study_for_researcher(slug=slug, request=request)
        qs = privacy_selectors.participant_withdrawal_list(study=study)
        return cursor_page(request, self, qs, WithdrawalOutputSerializer)
