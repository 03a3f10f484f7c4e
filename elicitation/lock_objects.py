"""Every row lock of the elicitation app, in one place (see services.assignment_claim)."""

from django.db.models import QuerySet

from elicitation.models import Batch, Participant, Stimulus, Study


def participant_select_for_update_by_token(*, token: str) -> Participant | None:
    # The submit path's only read of the participant: fetched by token and locked at once, then
    # its study. Only the participant row is locked: studies are read by everyone.
    from elicitation import selectors  # local import: selectors imports the models too

    return selectors.participant_by_token(token=token, for_update=True)


def batch_qs_select_for_update(*, batch_id: int, skip_locked: bool) -> QuerySet[Batch]:
    return (
        Batch.objects.select_for_update(skip_locked=skip_locked).filter(id=batch_id).order_by("pk")
    )


def stimulus_qs_select_for_update(*, stimulus_id: int) -> QuerySet[Stimulus]:
    # Serialises recomputes of one stimulus's labels: the one that gets the lock last reads every
    # committed response, so an older recompute can never overwrite a newer one.
    # NO KEY UPDATE, not UPDATE: a new response checks its foreign key to the stimulus with FOR
    # KEY SHARE when it commits, which a plain FOR UPDATE would block for the whole recompute.
    return Stimulus.objects.select_for_update(no_key=True).filter(id=stimulus_id)


def stimuli_qs_select_for_update(*, stimulus_ids: list[int]) -> QuerySet[Stimulus]:
    # The same lock for a batch of stimuli (the soft-label sweep), taken in id order so two
    # batches that overlap cannot deadlock.
    return (
        Stimulus.objects.select_for_update(no_key=True)
        .filter(id__in=stimulus_ids)
        .order_by("pk")
        .only("id")
    )


def study_qs_select_for_update_no_key(*, study_id: int) -> QuerySet[Study]:
    # Serialises recomputes of one study's analyses; NO KEY UPDATE for the reason above (every
    # response references its study).
    return Study.objects.select_for_update(no_key=True).filter(id=study_id)


def study_select_for_update(*, study_id: int) -> Study:
    # Serialises status changes of one study. NO KEY UPDATE: arriving participants check their
    # foreign key to the study with FOR KEY SHARE, which this lock does not block.
    return Study.objects.select_for_update(no_key=True).get(id=study_id)
