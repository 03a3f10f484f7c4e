"""Every row lock of the elicitation app, in one place (see services.assignment_claim)."""

from django.db.models import QuerySet

from elicitation.models import Batch, Participant, Stimulus


def participant_qs_select_for_update(*, participant_id: int) -> QuerySet[Participant]:
    # Serialises one participant's concurrent requests (double clicks, retries, two tabs).
    return Participant.objects.select_for_update().filter(id=participant_id)


def batch_qs_select_for_update(*, batch_id: int, skip_locked: bool) -> QuerySet[Batch]:
    return (
        Batch.objects.select_for_update(skip_locked=skip_locked).filter(id=batch_id).order_by("pk")
    )


def stimulus_qs_select_for_update(*, stimulus_id: int) -> QuerySet[Stimulus]:
    # Serialises recomputes of one stimulus's labels: the one that gets the lock last reads every
    # committed response, so an older recompute can never overwrite a newer one.
    return Stimulus.objects.select_for_update().filter(id=stimulus_id)
