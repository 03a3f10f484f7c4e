"""Exactly once under concurrency: the participant row lock is what serialises a session's
submits (services.response_record_by_token), in separate committed transactions."""

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from elicitation import selectors, services
from elicitation.models import Response, Study
from hmix_site.common.exceptions import ApplicationError
from tests.conftest import categorical_answer, start_in_trials

pytestmark = pytest.mark.django_db(transaction=True)


def _at_once(works: list[Callable[[], Any]]) -> list[Any]:
    """Run each work in its own thread (own connection), released together; exceptions are
    returned in place of results."""
    barrier = threading.Barrier(len(works))
    results: list[Any] = [None] * len(works)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = works[i]()
        except Exception as exc:  # returned, so the test's assertions show it
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(works))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


@pytest.mark.parametrize("n", [2, 8])
def test_the_same_submit_sent_at_once_is_stored_once_and_acknowledged_to_all(
    make_study: Callable[..., Study], n: int
) -> None:
    # given: one session and one submit (a double click, a retry racing the original)
    participant = start_in_trials(make_study(), f"DUP{n}")
    trial = selectors.trial_get_next(participant=participant)
    assert trial is not None
    body = {
        "token": str(participant.token),
        "trial_id": trial.id,
        "client_key": uuid.uuid4(),
        "rt_ms": 500,
        "answer": categorical_answer(),
    }
    # when: n copies arrive at the same instant
    results = _at_once([lambda: services.response_record_by_token(**body)] * n)
    # then: one created, every other copy gets that same stored response
    assert all(not isinstance(r, Exception) for r in results), results
    assert sorted(created for _, created in results) == [False] * (n - 1) + [True]
    assert len({response.id for response, _ in results}) == 1
    assert Response.objects.filter(participant=participant).count() == 1


def test_two_different_answers_to_one_trial_at_once_store_one_and_refuse_the_other(
    make_study: Callable[..., Study],
) -> None:
    # given: one session open in two tabs
    participant = start_in_trials(make_study(), "TABS")
    trial = selectors.trial_get_next(participant=participant)
    assert trial is not None

    def submit(top: str, second: str) -> Any:
        return services.response_record_by_token(
            token=str(participant.token),
            trial_id=trial.id,
            client_key=uuid.uuid4(),
            rt_ms=500,
            answer=categorical_answer(top_class=top, second_class=second),
        )

    # when: each tab submits its own answer at the same instant
    results = _at_once([lambda: submit("Cat", "Dog"), lambda: submit("Dog", "Cat")])
    # then: one is stored, the other told the trial was already answered
    stored = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, ApplicationError)]
    assert len(stored) == 1, results
    assert [(e.status, e.message) for e in refused] == [(409, "This trial was already answered.")]
    assert Response.objects.filter(participant=participant).count() == 1
    assert Response.objects.get(participant=participant).id == stored[0][0].id
