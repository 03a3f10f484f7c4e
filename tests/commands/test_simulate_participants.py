"""The simulator counts what it could not do: errors with reasons, lost answers, bounded DB use."""

import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.backends.signals import connection_created

from elicitation import services
from elicitation.models import Participant, Response, Study
from elicitation.simulation import LOCAL_SERVER_MAX_IN_FLIGHT, Outcome, lost_in_database

pytestmark = pytest.mark.django_db(transaction=True)


def _simulate(**kwargs: Any) -> tuple[dict[str, Any], str, CommandError | None]:
    """Run the command; returns its JSON line, its stderr and the CommandError it ended with."""
    out, err = io.StringIO(), io.StringIO()
    failure = None
    try:
        call_command("simulate_participants", stdout=out, stderr=err, **kwargs)
    except CommandError as exc:
        failure = exc
    return json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue(), failure


@pytest.fixture
def small_study(make_study: Callable[..., Study]) -> Study:
    # 2 stimuli + 2 repeats = 4 trials each; one batch with room for 60 participants.
    return make_study(n_stimuli=2, batch_size=2, participants_per_batch=60)


def test_a_participant_failing_mid_journey_is_an_error_with_its_reason(
    small_study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a server that fails the third submit of participant 1 (and only that one)
    record = services.response_record_by_token

    def failing(*, token: str, **kwargs: Any) -> Any:
        participant = Participant.objects.get(token=token)
        answered = Response.objects.filter(participant=participant).count()
        if participant.external_id.endswith("-1") and answered == 2:
            raise RuntimeError("injected failure")
        return record(token=token, **kwargs)

    monkeypatch.setattr(services, "response_record_by_token", failing)
    # when
    result, stderr, failure = _simulate(study=small_study.slug, participants=4, concurrency=2)
    # then the other three complete, participant 1 is an error with where and why
    assert (result["completed"], result["errors"], result["lost"]) == (3, 1, 0)
    assert result["error_reasons"] == {"trials/submit/HTTP 500": 1}
    assert "participant 1 at stage trials (submit HTTP 500): HTTP 500" in stderr
    # then the command fails after printing its figures
    assert failure is not None
    assert str(failure) == (
        "1 of 4 participants did not complete and 0 completed ones lost answers (details above)."
    )
    # then the failed submit stored nothing
    stuck = Participant.objects.get(external_id__endswith="-1", study=small_study)
    assert (stuck.stage, stuck.responses.count()) == (Participant.Stage.TRIALS, 2)


def test_a_completed_participant_with_a_missing_answer_is_lost(
    small_study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a server that drops one stored answer of participant 0 as it completes
    debrief = services.participant_debrief_submit

    def dropping(*, participant: Participant, answers: Any) -> Participant:
        done = debrief(participant=participant, answers=answers)
        if participant.external_id.endswith("-0"):
            Response.objects.filter(participant=participant).order_by("id").first().delete()
        return done

    monkeypatch.setattr(services, "participant_debrief_submit", dropping)
    # when
    result, stderr, failure = _simulate(study=small_study.slug, participants=3, concurrency=3)
    # then all completed, one of them lost an answer, and the command fails
    assert (result["completed"], result["errors"], result["lost"]) == (3, 0, 1)
    assert result["all_completed_stored"] is False
    assert result["lost_check"] == "database"
    assert "participant 0: stage completed, 3 of 4 answers stored" in stderr
    assert failure is not None


def test_lost_is_checked_in_one_query(small_study: Study, django_assert_num_queries: Any) -> None:
    # given three completed participants (as the simulator saw them), one missing an answer
    result, _, failure = _simulate(study=small_study.slug, participants=3, concurrency=3)
    assert (failure, result["completed"]) == (None, 3)
    participants = list(Participant.objects.filter(study=small_study).order_by("id"))
    outcomes = [
        Outcome(index=i, status="completed", token=str(p.token), acked=4)
        for i, p in enumerate(participants)
    ]
    participants[2].responses.order_by("id").last().delete()
    # when
    with django_assert_num_queries(1):
        lost = lost_in_database(outcomes)
    # then
    assert lost == {2: "participant 2: stage completed, 3 of 4 answers stored"}


def test_participants_turned_away_as_full_are_errors_unless_allowed(
    make_study: Callable[..., Study],
) -> None:
    # given a study with room for one participant
    study = make_study(n_stimuli=2, batch_size=2, participants_per_batch=1)
    # when three come, then three more who may be turned away
    result, stderr, failure = _simulate(study=study.slug, participants=3, concurrency=3)
    allowed, _, allowed_failure = _simulate(
        study=study.slug, participants=3, concurrency=3, allow_full=True
    )
    # then
    assert (result["completed"], result["full"], result["errors"]) == (1, 2, 2)
    assert result["error_reasons"] == {"full/comprehension": 2}
    assert "ended at stage full (no batch slot)" in stderr
    assert failure is not None
    assert (allowed["completed"], allowed["full"], allowed["errors"]) == (0, 3, 0)
    assert allowed["full_allowed"] is True
    assert allowed_failure is None


@contextmanager
def _connections_opened() -> Iterator[list[str]]:
    """The names of the threads that open a database connection meanwhile, one per opening."""
    threads: list[str] = []

    def opened(sender: Any, connection: Any, **kwargs: Any) -> None:
        threads.append(threading.current_thread().name)

    connection_created.connect(opened)
    try:
        yield threads
    finally:
        connection_created.disconnect(opened)


def test_database_use_is_bounded_whatever_the_concurrency(small_study: Study) -> None:
    # when 50 participants run at once through the command's own server
    with _connections_opened() as threads:
        result, _, failure = _simulate(study=small_study.slug, participants=50, concurrency=50)
    # then all completed
    assert (failure, result["completed"], result["errors"], result["lost"]) == (None, 50, 0, 0)
    # then no client thread opened a connection, the oracle thread one, and the server's
    # requests ran on its pool of LOCAL_SERVER_MAX_IN_FLIGHT threads (each reconnects after a
    # request here: the test settings' CONN_MAX_AGE is 0), so at most that many at once
    assert [t for t in threads if t.startswith("sim-client")] == []
    assert [t for t in threads if t.startswith("sim-oracle")] == ["sim-oracle_0"]
    server = {t for t in threads if t.startswith("sim-server")}
    assert 0 < len(server) <= LOCAL_SERVER_MAX_IN_FLIGHT
    assert set(threads) - server == {"sim-oracle_0"}


def test_no_oracle_mode_answers_without_touching_the_database(small_study: Study) -> None:
    # when the simulator is given only the slug and the comprehension answers
    with _connections_opened() as threads:
        result, _, failure = _simulate(
            study=small_study.slug,
            participants=3,
            concurrency=3,
            no_oracle=True,
            comprehension_answers="1",
        )
    # then every participant completed, checked against the server's progress
    assert (failure, result["completed"], result["errors"], result["lost"]) == (None, 3, 0, 0)
    assert result["lost_check"] == "http"
    assert Response.objects.filter(study=small_study).count() == result["responses"] == 12
    # then only the server's threads opened connections
    assert {t for t in threads if not t.startswith("sim-server")} == set()


def test_no_oracle_mode_without_comprehension_answers_says_so(small_study: Study) -> None:
    # when
    result, stderr, failure = _simulate(
        study=small_study.slug, participants=1, concurrency=1, no_oracle=True
    )
    # then
    assert (result["completed"], result["errors"]) == (0, 1)
    assert "comprehension answers unknown (--comprehension-answers)" in stderr
    assert failure is not None


def test_requests_are_counted_per_kind(small_study: Study) -> None:
    # when
    result, _, failure = _simulate(study=small_study.slug, participants=2, concurrency=2, seed=3)
    # then every request of the journey is counted, per kind and in all
    latency = result["latency_ms"]
    assert failure is None
    assert latency["submit"]["n"] == result["responses"] == 8
    assert latency["state"]["n"] == 8
    assert latency["start"]["n"] == latency["consent"]["n"] == latency["debrief"]["n"] == 2
    kinds = [k for k in latency if k != "all"]
    assert result["requests"] == latency["all"]["n"] == sum(latency[k]["n"] for k in kinds)
