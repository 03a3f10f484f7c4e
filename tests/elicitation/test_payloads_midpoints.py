"""The server-side rules for answers to interfaces C and D (elicitation/payloads.py).

The parser tests are pure (no database); the API tests check that a refused answer is a 400 that
writes nothing.
"""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from elicitation import imaging, services, stimulus_services
from elicitation.defaults import study_texts
from elicitation.models import ImageSet, Participant, Response, Study, Trial
from elicitation.payloads import parse_construct_midpoint, parse_select_midpoint
from tests.conftest import advance_to_trials

C_DISPLAY = {"class1": "Circle", "class2": "Ring", "start_step": 9}
D_ORDER = [4, 0, 10, 7, 2, 9, 1, 5, 8, 3, 6]
D_DISPLAY = {"class1": "Circle", "class2": "Ring", "order": D_ORDER}


def _visits(*pairs: tuple[Any, Any]) -> list[dict[str, Any]]:
    return [{"step": step, "t_ms": t} for step, t in pairs]


# --- C: parse_construct_midpoint -------------------------------------------------------------


def test_construct_walk_to_both_ends_and_back_is_parsed() -> None:
    # given
    walk = [(9, 0), (10, 400), (9, 800.5), *((s, 900 + 10 * (8 - s)) for s in range(8, -1, -1))]
    walk += [(1, 1200), (2, 1200), (3, 1300)]
    answer = {"final_step": 3, "visits": _visits(*walk)}

    # when
    value = parse_construct_midpoint(answer, C_DISPLAY)

    # then
    assert value == {
        "start_step": 9,
        "final_step": 3,
        "lam": 0.3,
        "visits": [{"step": s, "t_ms": float(t)} for s, t in walk],
    }


def test_construct_submit_without_moving_is_refused_unless_the_study_allows_it() -> None:
    # given
    answer = {"final_step": 9, "visits": _visits((9, 0))}

    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_construct_midpoint(answer, C_DISPLAY)

    # then
    assert exc_info.value.message_dict == {
        "visits": ["Take at least one step through the series before submitting."]
    }


def test_construct_submit_without_moving_is_parsed_when_the_study_allows_it() -> None:
    # given
    answer = {"final_step": 9, "visits": _visits((9, 0))}

    # when
    value = parse_construct_midpoint(answer, C_DISPLAY, allow_no_steps=True)

    # then
    assert value == {
        "start_step": 9,
        "final_step": 9,
        "lam": 0.9,
        "visits": [{"step": 9, "t_ms": 0.0}],
    }


@pytest.mark.parametrize(
    ("answer", "errors"),
    [
        pytest.param(
            {"final_step": 2, "visits": _visits((1, 0), (2, 100))},
            {"visits": ["The first visit must be the start step."]},
            id="first-visit-not-the-start",
        ),
        pytest.param(
            {"final_step": 7, "visits": _visits((9, 0), (7, 100))},
            {"visits": ["Visit 1 must be one step from the previous one, and not earlier."]},
            id="jump-by-two",
        ),
        pytest.param(
            {"final_step": 9, "visits": _visits((9, 0), (9, 100))},
            {"visits": ["Visit 1 must be one step from the previous one, and not earlier."]},
            id="same-step-twice",
        ),
        pytest.param(
            {"final_step": 9, "visits": _visits((9, 0), (10, 500), (9, 499.9))},
            {"visits": ["Visit 2 must be one step from the previous one, and not earlier."]},
            id="time-going-backwards",
        ),
        pytest.param(
            {"final_step": 10, "visits": _visits((9, 0), (10, 100), (9, 200))},
            {"final_step": ["final_step must be the last step visited."]},
            id="final-not-last-visited",
        ),
        pytest.param(
            {"final_step": 11, "visits": _visits((9, 0), (10, 100))},
            {"final_step": ["final_step must be between 0 and 10, got 11."]},
            id="final-out-of-range",
        ),
        pytest.param(
            {"final_step": 10, "visits": _visits((9, 0), (10, 100), (11, 200))},
            {"visits.step": ["visits.step must be between 0 and 10, got 11."]},
            id="step-above-range",
        ),
        pytest.param(
            {"final_step": 0, "visits": _visits((9, 0), (-1, 100))},
            {"visits.step": ["visits.step must be between 0 and 10, got -1."]},
            id="step-below-range",
        ),
        pytest.param(
            {"final_step": 9, "visits": _visits((9, -5))},
            {"visits": ["Visit 0 needs a time t_ms >= 0."]},
            id="negative-time",
        ),
        pytest.param(
            {"final_step": 9, "visits": _visits((9, "0"))},
            {"visits": ["Visit 0 needs a time t_ms >= 0."]},
            id="time-as-text",
        ),
        pytest.param(
            {"final_step": 9, "visits": _visits((9, True))},
            {"visits": ["Visit 0 needs a time t_ms >= 0."]},
            id="time-as-bool",
        ),
        pytest.param(
            {"final_step": 9.0, "visits": _visits((9, 0))},
            {"final_step": ["final_step must be a whole number from 0 to 10."]},
            id="final-as-float",
        ),
        pytest.param(
            {"final_step": True, "visits": _visits((9, 0))},
            {"final_step": ["final_step must be a whole number from 0 to 10."]},
            id="final-as-bool",
        ),
        pytest.param(
            {"final_step": 9, "visits": _visits(("9", 0))},
            {"visits.step": ["visits.step must be a whole number from 0 to 10."]},
            id="step-as-text",
        ),
        pytest.param(
            {"final_step": 9, "visits": []},
            {"visits": ["visits must be a list of 1 to 2000 steps."]},
            id="no-visits",
        ),
        pytest.param(
            {"final_step": 9, "visits": {"step": 9, "t_ms": 0}},
            {"visits": ["visits must be a list of 1 to 2000 steps."]},
            id="visits-not-a-list",
        ),
        pytest.param(
            {"final_step": 9, "visits": [{"step": 9}]},
            {"visits": ["Visit 0 must be {'step': int, 't_ms': number}."]},
            id="visit-without-time",
        ),
        pytest.param(
            {"final_step": 9, "visits": [[9, 0]]},
            {"visits": ["Visit 0 must be {'step': int, 't_ms': number}."]},
            id="visit-not-an-object",
        ),
        pytest.param(
            {"final_step": 9},
            {"answer": ["Missing fields: ['visits']."]},
            id="missing-visits",
        ),
        pytest.param(
            {"final_step": 9, "visits": _visits((9, 0)), "lam": 0.9},
            {"answer": ["Unexpected fields: ['lam']."]},
            id="extra-field",
        ),
        pytest.param(9, {"answer": ["answer must be an object."]}, id="not-an-object"),
    ],
)
def test_construct_bad_answers_are_refused(answer: Any, errors: dict[str, list[str]]) -> None:
    # when
    with pytest.raises(ValidationError) as exc:
        parse_construct_midpoint(answer, C_DISPLAY)

    # then
    assert exc.value.message_dict == errors


def test_construct_refuses_more_than_the_maximum_number_of_visits() -> None:
    # given: 2001 visits alternating between steps 9 and 10
    visits = _visits(*((9 + i % 2, i) for i in range(2001)))

    # when
    with pytest.raises(ValidationError) as exc:
        parse_construct_midpoint({"final_step": 9, "visits": visits}, C_DISPLAY)

    # then
    assert exc.value.message_dict == {"visits": ["visits must be a list of 1 to 2000 steps."]}


# --- D: parse_select_midpoint ----------------------------------------------------------------


@pytest.mark.parametrize(("position", "step"), [(0, 4), (2, 10), (7, 5), (10, 6)])
def test_select_position_is_mapped_to_the_step_shown_there(position: int, step: int) -> None:
    # when
    value = parse_select_midpoint({"chosen_position": position}, D_DISPLAY)

    # then
    assert value == {
        "chosen_position": position,
        "chosen_step": step,
        "lam": step / 10,
        "order": D_ORDER,
    }


@pytest.mark.parametrize(
    ("answer", "errors"),
    [
        pytest.param(
            {"chosen_position": 11},
            {"chosen_position": ["chosen_position must be between 0 and 10, got 11."]},
            id="above-range",
        ),
        pytest.param(
            {"chosen_position": -1},
            {"chosen_position": ["chosen_position must be between 0 and 10, got -1."]},
            id="below-range",
        ),
        pytest.param(
            {"chosen_position": "3"},
            {"chosen_position": ["chosen_position must be a whole number from 0 to 10."]},
            id="text",
        ),
        pytest.param(
            {"chosen_position": 3.0},
            {"chosen_position": ["chosen_position must be a whole number from 0 to 10."]},
            id="float",
        ),
        pytest.param(
            {"chosen_position": False},
            {"chosen_position": ["chosen_position must be a whole number from 0 to 10."]},
            id="bool",
        ),
        pytest.param(
            {"chosen_position": None},
            {"chosen_position": ["chosen_position must be a whole number from 0 to 10."]},
            id="null",
        ),
        pytest.param({}, {"answer": ["Missing fields: ['chosen_position']."]}, id="missing"),
        pytest.param(
            {"chosen_position": 3, "chosen_step": 5},
            {"answer": ["Unexpected fields: ['chosen_step']."]},
            id="extra-field",
        ),
        pytest.param([3], {"answer": ["answer must be an object."]}, id="not-an-object"),
    ],
)
def test_select_bad_answers_are_refused(answer: Any, errors: dict[str, list[str]]) -> None:
    # when
    with pytest.raises(ValidationError) as exc:
        parse_select_midpoint(answer, D_DISPLAY)

    # then
    assert exc.value.message_dict == errors


# --- the API refuses them and writes nothing ---------------------------------------------------


@pytest.fixture
def make_series_participant(researcher: Any) -> Callable[[str], Participant]:
    """A participant at their first trial of a live C or D study on demo-shape series."""

    def make(trial_type: str) -> Participant:
        study = services.study_create(
            slug=f"series-{uuid.uuid4().hex[:12]}",
            title="Find the 50/50 blend",
            trial_type=trial_type,
            owner_id=researcher.id,
            classes=list(imaging.DEMO_CLASSES),
            completion_code="CODE123",
            **study_texts(trial_type),
        )
        image_set = stimulus_services.image_set_create(
            name=f"shapes-{study.slug}",
            source=ImageSet.Source.DEMO,
            images=imaging.generate_demo_images(per_class=1, seed=3),
        )
        stimuli = stimulus_services.stimuli_generate_series(
            study=study, image_set=image_set, n_pairs=1
        )
        services.batches_build(study=study, stimuli=stimuli, batch_size=1)
        services.study_set_status(study=study, status=Study.Status.LIVE)
        participant, _ = services.participant_start(
            study=study, platform=Participant.Platform.PROLIFIC, external_id="PID-BAD"
        )
        return advance_to_trials(participant)

    return make


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("trial_type", "answer", "message"),
    [
        pytest.param(
            Study.TrialType.CONSTRUCT_MIDPOINT,
            {"final_step": 3, "visits": [{"step": 3, "t_ms": 0}]},
            "visits: The first visit must be the start step.",
            id="construct-first-visit-not-the-start",
        ),
        pytest.param(
            Study.TrialType.CONSTRUCT_MIDPOINT,
            {"final_step": 11, "visits": [{"step": 1, "t_ms": 0}]},
            "final_step must be between 0 and 10, got 11.",
            id="construct-out-of-range",
        ),
        pytest.param(
            Study.TrialType.SELECT_MIDPOINT,
            {"chosen_position": 11},
            "chosen_position must be between 0 and 10, got 11.",
            id="select-out-of-range",
        ),
        pytest.param(
            Study.TrialType.SELECT_MIDPOINT,
            {"chosen_step": 5},
            "answer: Unexpected fields: ['chosen_step'].",
            id="select-malformed",
        ),
    ],
)
def test_bad_midpoint_answer_is_refused_with_400_and_nothing_is_written(
    api_client: APIClient,
    make_series_participant: Callable[[str], Participant],
    trial_type: str,
    answer: dict[str, Any],
    message: str,
) -> None:
    # given
    participant = make_series_participant(trial_type)
    trial = Trial.objects.get(participant=participant, position=0)
    url = reverse("participant-api:session-responses", kwargs={"token": participant.token})

    # when
    res = api_client.post(
        url,
        {"trial": trial.id, "client_key": str(uuid.uuid4()), "rt_ms": 900, "answer": answer},
        format="json",
    )

    # then
    assert res.status_code == 400
    assert res.json()["message"] == message
    assert Response.objects.exists() is False
    participant.refresh_from_db()
    assert participant.stage == Participant.Stage.TRIALS
    state = api_client.get(
        reverse("participant-api:session-detail", kwargs={"token": participant.token})
    ).json()
    assert state["trial"]["id"] == trial.id
    assert state["progress"]["answered"] == 0
