import contextlib
import uuid

from django.db.models import Q, QuerySet

from elicitation.models import Participant, ParticipantWithdrawal, Study


def participant_find_by_reference(*, study: Study, reference: str) -> Participant | None:
    """The study's participant a researcher means by `reference`: the pseudonym the exports
    show, the platform id (PROLIFIC_PID / workerId) or the session token; None if none.

    A pseudonym match wins over a platform id, which wins over a token (a worker could, in
    principle, have a platform id that looks like someone else's pseudonym).
    """
    reference = reference.strip()
    if not reference:
        return None
    condition = Q(pseudonym=reference) | Q(external_id=reference)
    with contextlib.suppress(ValueError):  # not a UUID: no token can match
        condition |= Q(token=uuid.UUID(reference))
    matches = list(Participant.objects.filter(condition, study=study).select_related("study"))
    for rule in (
        lambda p: p.pseudonym == reference,
        lambda p: p.external_id == reference,
        lambda p: True,
    ):
        for participant in matches:
            if rule(participant):
                return participant
    return None


def participant_withdrawal_list(*, study: Study) -> QuerySet[ParticipantWithdrawal]:
    """The study's withdrawal log, oldest first, with who did each."""
    return ParticipantWithdrawal.objects.filter(study=study).select_related("by").order_by("id")
