"""Participants' privacy: the pseudonyms exports name them by, and withdrawal on request.

Every door (dashboard, REST API, `manage.py withdraw_participant`) withdraws through
`participant_withdraw`, which makes the permission check itself.
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from analysis import recompute_services
from elicitation import pseudonyms, selectors
from elicitation.models import (
    ComprehensionAttempt,
    Participant,
    ParticipantWithdrawal,
    Response,
    Study,
    Trial,
)
from hmix_site.common.exceptions import ApplicationError

logger = logging.getLogger(__name__)

Mode = ParticipantWithdrawal.Mode
MAX_REASON = 500


def participant_pseudonym(*, participant: Participant) -> str:
    """The participant's pseudonym under the site's key (settings.HMIX_PSEUDONYM_KEY)."""
    return pseudonyms.pseudonym(
        key=settings.HMIX_PSEUDONYM_KEY,
        study_id=participant.study_id,
        platform=participant.platform,
        external_id=participant.external_id,
        token=str(participant.token),
    )


def participant_pseudonyms_fill(*, study: Study) -> int:
    """Store the pseudonym of every participant of the study who has none yet; returns how many.

    Participants get theirs when they are created; this catches rows written around the
    services (bulk SQL fixtures, say). Exports call it first, so they never write an empty
    participant column. A pseudonym once stored is never recomputed: it stays stable even if
    the key changes.
    """
    missing = list(Participant.objects.filter(study=study, pseudonym=""))
    for participant in missing:
        participant.pseudonym = participant_pseudonym(participant=participant)
    Participant.objects.bulk_update(missing, ["pseudonym"], batch_size=2000)
    return len(missing)


@transaction.atomic
def participant_withdraw(
    *, participant: Participant, user_id: int | None, mode: str, reason: str = ""
) -> ParticipantWithdrawal:
    """Withdraw a participant's data at their request (or the researcher's decision).

    `mode` is "delete" (their responses, trials, comprehension answers and debrief are
    deleted; the participant row stays, so the platform id cannot start the study again and
    the log keeps naming it) or "exclude" (everything is kept but their responses leave every
    soft label, analysis and export). Either way the soft labels and analyses that used their
    answers are marked stale and recomputed, a session still running is ended (its batch slot
    freed), and the withdrawal is logged (who, when, which participant, how).

    Only a researcher of the participant's study may do it (PermissionDenied otherwise, nothing
    written); a participant is withdrawn once (ApplicationError 409 the second time).
    """
    if mode not in Mode.values:
        raise ValidationError({"mode": f"Unknown mode {mode!r}; expected one of {Mode.values}."})
    if len(reason) > MAX_REASON:
        raise ValidationError({"reason": f"The reason is longer than {MAX_REASON} characters."})
    participant = (
        Participant.objects.select_for_update().select_related("study").get(pk=participant.pk)
    )
    study = participant.study
    if not selectors.study_is_researcher(study=study, user_id=user_id):
        raise PermissionDenied("You are not a researcher of this study.")
    if participant.withdrawn_at is not None:
        raise ApplicationError(
            "This participant was already withdrawn.",
            {"participant": participant.pseudonym},
            status=409,
        )
    if not participant.pseudonym:
        participant.pseudonym = participant_pseudonym(participant=participant)
    responses = Response.objects.filter(participant=participant)
    stimulus_ids = sorted(set(responses.values_list("stimulus_id", flat=True)))
    n_responses = responses.count()
    fields = ["withdrawn_at", "pseudonym", "updated_at"]
    if mode == Mode.DELETE:
        responses.delete()
        Trial.objects.filter(participant=participant).delete()
        ComprehensionAttempt.objects.filter(participant=participant).delete()
        participant.debrief = {}
        participant.user_agent = ""
        fields += ["debrief", "user_agent"]
    if participant.stage not in Participant.FINISHED_STAGES:
        # A session still running ends here; its slot goes to someone else.
        participant.stage = Participant.Stage.RETURNED
        participant.lease_expires_at = None
        fields += ["stage", "lease_expires_at"]
    participant.withdrawn_at = timezone.now()
    participant.save(update_fields=fields)
    withdrawal = ParticipantWithdrawal(
        study=study,
        participant=participant,
        pseudonym=participant.pseudonym,
        by_id=user_id,
        mode=mode,
        n_responses=n_responses,
        reason=reason,
    )
    withdrawal.full_clean(exclude=["study", "participant", "by"], validate_unique=False)
    withdrawal.save()
    # As an answer does: every label and analysis that read these responses is refreshed once
    # this transaction commits (analysis.recompute_services).
    for stimulus_id in stimulus_ids:
        recompute_services.results_mark_stale(
            trial_type=study.trial_type, study_id=study.id, stimulus_id=stimulus_id
        )
    logger.info(
        "Participant %s of %s withdrawn (%s, %d responses) by user %s",
        participant.pseudonym,
        study.slug,
        mode,
        n_responses,
        user_id,
    )
    return withdrawal
