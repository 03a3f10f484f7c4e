"""Flags on answers (too fast, straight-lining), the shuffled comprehension check, and the
per-study settings behind them."""

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from elicitation import services
from elicitation.models import ComprehensionAttempt, Participant, Response, Study, Trial
from tests.conftest import (
    advance_to_trials,
    answer_remaining_trials,
    categorical_answer,
    start_in_trials,
)

pytestmark = pytest.mark.django_db


def test_answers_under_the_minimum_time_are_flagged_and_counted_not_refused(
    make_study: Callable[..., Study],
) -> None:
    # given: a study that flags answers under 800 ms
    study = make_study(n_stimuli=2, batch_size=2, repeats=0, min_response_ms=800)
    participant = start_in_trials(study, "P")
    trials = list(Trial.objects.filter(participant=participant).order_by("position"))
    # when: one answer in 799 ms, one in 800 ms
    for trial, rt in zip(trials, (799, 800), strict=True):
        services.response_record(
            participant=participant,
            trial_id=trial.id,
            client_key=uuid.uuid4(),
            rt_ms=rt,
            answer=categorical_answer(),
        )
    # then
    participant.refresh_from_db()
    assert list(Response.objects.order_by("position").values_list("rt_ms", "too_fast")) == [
        (799, True),
        (800, False),
    ]
    assert participant.fast_answers == 1


@pytest.mark.parametrize(("vary", "flagged"), [(False, True), (True, False)])
def test_straight_lining_is_assessed_when_the_session_completes(
    make_study: Callable[..., Study], vary: bool, flagged: bool
) -> None:
    # given
    study = make_study(n_stimuli=4, batch_size=4, repeats=0)
    participant = start_in_trials(study, "P")
    answers = iter(range(10))

    def answer(_: Trial) -> dict[str, Any]:
        return categorical_answer(p1=60 + next(answers) if vary else 60)

    participant = answer_remaining_trials(participant, answer)
    assert participant.straight_lining is None  # not assessed before the end
    # when
    done = services.participant_debrief_submit(participant=participant, answers={})
    # then
    done.refresh_from_db()
    assert done.stage == Participant.Stage.COMPLETED
    assert done.straight_lining is flagged


def test_the_check_shows_shuffled_options_and_stores_the_order_it_graded(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given: a four-option question at the check
    study = make_study(
        comprehension=[
            {"question": "Which?", "options": ["w", "x", "y", "z"], "answer": 2},
        ]
    )
    participant, _ = services.participant_start(study=study, platform="direct")
    services.participant_consent(participant=participant, agreed=True)
    services.participant_instructions_complete(participant=participant)
    # when: the page is read, then an answer posted
    page = client.get(f"/p/{participant.token}/").content.decode()
    shown = [page.index(f'value="{j}"') for j in range(4)]
    client.post(f"/p/{participant.token}/comprehension/", {"q0": "2"})
    # then
    attempt = ComprehensionAttempt.objects.get()
    assert attempt.passed is True
    assert attempt.answers == [2]
    # the stored order is the order of the options on the page
    assert attempt.option_orders == [sorted(range(4), key=lambda j: shown[j])]


def test_reading_the_check_writes_nothing(client: Client, make_study: Callable[..., Study]) -> None:
    # given
    study = make_study()
    participant, _ = services.participant_start(study=study, platform="direct")
    services.participant_consent(participant=participant, agreed=True)
    services.participant_instructions_complete(participant=participant)
    # when
    first = _shown_values(client.get(f"/p/{participant.token}/").content.decode())
    again = _shown_values(client.get(f"/p/{participant.token}/").content.decode())
    # then: the same order both times, and no attempt stored
    assert first == again
    assert sorted(first) == ["0", "1"]
    assert ComprehensionAttempt.objects.exists() is False


def _shown_values(page: str) -> list[str]:
    return re.findall(r'name="q0" value="(\d+)"', page)


@pytest.mark.parametrize(
    ("fields", "lease"),
    [
        ({}, 15),
        ({"expected_minutes": 45}, 45),
        ({"expected_minutes": 4}, 10),
        ({"lease_minutes": 90}, 90),
    ],
)
def test_the_lease_defaults_from_the_expected_length(
    researcher: Any, fields: dict[str, Any], lease: int
) -> None:
    # when
    study = services.study_create(
        slug=f"s-{lease}-{len(fields)}",
        title="T",
        trial_type=Study.TrialType.CATEGORICAL,
        owner_id=researcher.id,
        classes=["A", "B"],
        **fields,
    )
    # then
    assert study.lease_minutes == lease


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"full_code": "no spaces"},
            {"full_code": ["The study-full code may only hold letters, digits, '-' and '_'."]},
        ),
        (
            {"excluded_code": "x" * 65},
            {"excluded_code": ["The excluded code is longer than 64 characters."]},
        ),
        (
            {"prolific_completion_url": "javascript:alert(1)"},
            {
                "prolific_completion_url": [
                    "The completion URL must be a web address (https://…); {code} stands for "
                    "the completion code."
                ]
            },
        ),
        (
            {"expected_minutes": 0},
            {"expected_minutes": ["The expected length must be a whole number of at least 1."]},
        ),
        (
            {"min_response_ms": -1},
            {
                "min_response_ms": [
                    "The minimum response time must be a whole number of at least 0."
                ]
            },
        ),
        ({"allow_no_steps": "yes"}, {"allow_no_steps": ["allow_no_steps must be true or false."]}),
    ],
)
def test_bad_arrival_and_check_settings_are_refused_and_nothing_is_saved(
    make_study: Callable[..., Study], fields: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    # given
    study = make_study()
    before = Study.objects.values().get(id=study.id)
    # when
    with pytest.raises(ValidationError) as exc_info:
        services.study_update(study=study, **fields)
    # then
    assert exc_info.value.message_dict == errors
    assert Study.objects.values().get(id=study.id) == before


def test_arrival_and_check_settings_change_on_a_live_study(
    make_study: Callable[..., Study],
) -> None:
    # given
    study = make_study()
    # when
    services.study_update(
        study=study,
        full_code="FULL_1",
        excluded_code="EX-1",
        prolific_completion_url="https://app.prolific.com/submissions/complete?cc={code}",
        expected_minutes=20,
        lease_minutes=25,
        min_response_ms=1500,
        allow_no_steps=True,
    )
    # then
    study.refresh_from_db()
    assert (
        study.full_code,
        study.excluded_code,
        study.expected_minutes,
        study.lease_minutes,
        study.min_response_ms,
        study.allow_no_steps,
    ) == ("FULL_1", "EX-1", 20, 25, 1500, True)


def test_an_expired_holder_does_not_block_the_arrival_check(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given: the only place held by a session whose lease ran out, and no reclaim yet
    study = make_study(n_stimuli=2, batch_size=2, participants_per_batch=1)
    gone = advance_to_trials(
        services.participant_start(study=study, platform="prolific", external_id="GONE")[0]
    )
    Participant.objects.filter(id=gone.id).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    # when
    res = client.get(f"/s/{study.slug}/?PROLIFIC_PID=NEW&STUDY_ID=S&SESSION_ID=X")
    # then
    assert 'id="consent-form"' in res.content.decode()
    assert Participant.objects.get(id=gone.id).stage == Participant.Stage.TRIALS  # GET: no write
