import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from elicitation import services
from elicitation.models import Batch, Participant, Response, Study, Trial
from hmix_site.common.exceptions import ApplicationError
from tests.conftest import (
    advance_to_trials,
    answer_remaining_trials,
    categorical_answer,
    start_in_trials,
)

pytestmark = pytest.mark.django_db

Stage = Participant.Stage


def test_batches_fill_evenly_in_turn(make_study: Callable[..., Study]) -> None:
    # given three batches with room for two each
    study = make_study(n_stimuli=6, batch_size=2, participants_per_batch=2)
    # when six people arrive one after another
    batches = [start_in_trials(study, f"p{i}").batch.number for i in range(6)]
    # then each batch is used once before any is used twice
    assert batches[:3] == [1, 2, 3]
    assert sorted(batches[3:]) == [1, 2, 3]


def test_arrival_after_every_slot_is_taken_is_refused_before_anything_is_stored(
    make_study: Callable[..., Study],
) -> None:
    # given
    study = make_study(n_stimuli=2, batch_size=2, participants_per_batch=1)
    study.full_code = "FULL42"
    study.save(update_fields=["full_code"])
    start_in_trials(study, "first")
    # when
    with pytest.raises(ApplicationError) as exc_info:
        services.participant_start(study=study, platform="prolific", external_id="late")
    # then
    assert exc_info.value.status == 409
    assert exc_info.value.message == "Sorry, all places in this study are taken."
    assert exc_info.value.extra == {"reason": "full", "screen_out_code": "FULL42"}
    assert Participant.objects.filter(external_id="late").exists() is False


def test_a_place_taken_while_reading_the_instructions_ends_the_session_as_full(
    make_study: Callable[..., Study],
) -> None:
    # given two people consent while one place is free
    study = make_study(n_stimuli=2, batch_size=2, participants_per_batch=1)
    slow, _ = services.participant_start(study=study, platform="prolific", external_id="slow")
    start_in_trials(study, "fast")
    # when the slower one finishes the check
    late = advance_to_trials(slow)
    # then
    assert late.stage == Stage.FULL
    assert late.batch is None
    assert Trial.objects.filter(participant=late).exists() is False


def test_an_expired_slot_is_reclaimed_when_a_batch_is_claimed_without_the_periodic_task(
    make_study: Callable[..., Study],
) -> None:
    # given one slot, held by someone who walked away, and no beat to reclaim it
    study = make_study(n_stimuli=2, batch_size=2, participants_per_batch=1)
    gone = start_in_trials(study, "gone")
    Participant.objects.filter(id=gone.id).update(lease_expires_at=timezone.now() - timedelta(1))
    # when a newcomer arrives (the arrival check counts the stale slot as free)
    newcomer = start_in_trials(study, "new")
    # then the claim freed it first
    gone.refresh_from_db()
    assert gone.stage == Stage.EXPIRED
    assert newcomer.stage == Stage.TRIALS
    assert newcomer.batch_id == gone.batch_id


def test_expired_lease_frees_the_slot_for_the_next_arrival(
    make_study: Callable[..., Study],
) -> None:
    # given one slot, held by someone who walked away
    study = make_study(n_stimuli=2, batch_size=2, participants_per_batch=1)
    gone = start_in_trials(study, "gone")
    Participant.objects.filter(id=gone.id).update(lease_expires_at=timezone.now() - timedelta(1))
    # when the beat task runs, then a newcomer arrives
    reclaimed = services.participant_leases_reclaim()
    newcomer = start_in_trials(study, "new")
    # then
    gone.refresh_from_db()
    assert reclaimed == 1
    assert gone.stage == Stage.EXPIRED
    assert newcomer.stage == Stage.TRIALS
    assert newcomer.batch_id == gone.batch_id


def test_returning_before_reclaim_keeps_the_batch_and_renews_the_lease(
    make_study: Callable[..., Study],
) -> None:
    # given
    study = make_study(n_stimuli=2, batch_size=2, participants_per_batch=1)
    p = start_in_trials(study, "back")
    Participant.objects.filter(id=p.id).update(lease_expires_at=timezone.now() + timedelta(0, 5))
    p.refresh_from_db()  # the touch decides from the row as read, like the views' fresh read
    # when they come back (the page or the API touches the session)
    services.participant_touch(participant=p)
    reclaimed = services.participant_leases_reclaim(now=timezone.now() + timedelta(0, 60))
    # then
    p.refresh_from_db()
    assert reclaimed == 0
    assert p.stage == Stage.TRIALS
    assert p.lease_expires_at > timezone.now() + timedelta(minutes=study.lease_minutes - 1)


def test_reclaim_twice_is_a_no_op(make_study: Callable[..., Study]) -> None:
    # given
    study = make_study(n_stimuli=2, batch_size=2, participants_per_batch=1)
    p = start_in_trials(study, "x")
    Participant.objects.filter(id=p.id).update(lease_expires_at=timezone.now() - timedelta(1))
    # when
    first = services.participant_leases_reclaim()
    second = services.participant_leases_reclaim()
    # then
    assert (first, second) == (1, 0)


def _run_concurrently(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(i) for i < n in n threads released at the same instant; re-raise any error."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:  # surfaced below, in the test thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


@pytest.mark.django_db(transaction=True)
def test_crowd_arriving_at_once_never_overfills_a_batch(make_study: Callable[..., Study]) -> None:
    # given 4 batches of 3 stimuli with room for 4 people each (16 slots) and 24 arrivals
    study = make_study(n_stimuli=12, batch_size=3, participants_per_batch=4, repeats=1)
    n = 24
    # when all arrive at the same instant, then all who got a batch answer at the same time
    participants = _run_concurrently(n, lambda i: start_in_trials(study, f"crowd-{i}").id)

    def answer_all(i: int) -> None:
        p = answer_remaining_trials(
            Participant.objects.get(id=participants[i]),
            lambda _trial: categorical_answer(),
            rt_ms=100,
        )
        if p.stage == Stage.DEBRIEF:
            services.participant_debrief_submit(participant=p, answers={})

    _run_concurrently(n, answer_all)
    # then no batch is over its target, the slots are all used, and the rest were told "full"
    people = Participant.objects.filter(study=study)
    per_batch = Counter(people.exclude(batch=None).values_list("batch__number", flat=True))
    assert per_batch == {1: 4, 2: 4, 3: 4, 4: 4}
    assert people.filter(stage=Stage.COMPLETED).count() == 16
    assert people.filter(stage=Stage.FULL).count() == 8
    # and every stimulus of each completed batch was answered exactly once per participant
    for p in people.filter(stage=Stage.COMPLETED):
        batch_stimuli = sorted(
            Batch.objects.get(id=p.batch_id).stimuli.values_list("id", flat=True)
        )
        main = sorted(
            Response.objects.filter(participant=p, kind=Trial.Kind.MAIN).values_list(
                "stimulus_id", flat=True
            )
        )
        assert main == batch_stimuli
        assert Response.objects.filter(participant=p, kind=Trial.Kind.REPEAT).count() == 1
