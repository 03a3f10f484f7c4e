"""quality_flags: straight-lining and the comprehension check's option order (pure, no DB)."""

from typing import Any

import pytest

from elicitation.quality_flags import (
    AnswerRecord,
    answer_pattern,
    comprehension_option_orders,
    straight_lining,
)


def _a(top: int, p1: float, second: int | None = None, p2: float | None = None) -> AnswerRecord:
    return AnswerRecord("categorical", top, p1, second, p2, {})


def _v(trial_type: str, value: dict[str, Any]) -> AnswerRecord:
    return AnswerRecord(trial_type, None, None, None, None, value)


@pytest.mark.parametrize(
    ("records", "flagged"),
    [
        pytest.param([_a(0, 60, 1, 30)] * 3, True, id="A-same-three-times"),
        pytest.param([_a(0, 60, 1, 30)] * 2 + [_a(0, 60, 2, 30)], False, id="A-second-differs"),
        pytest.param([_a(0, 60)] * 2, False, id="A-two-are-too-few"),
        pytest.param([_v("mixing_factor", {"mixing_raw": 50, "confidence_raw": 50})] * 4, True),
        pytest.param(
            [
                _v("mixing_factor", {"mixing_raw": 50, "confidence_raw": 50}),
                _v("mixing_factor", {"mixing_raw": 50, "confidence_raw": 51}),
                _v("mixing_factor", {"mixing_raw": 50, "confidence_raw": 50}),
            ],
            False,
        ),
        pytest.param([_v("construct_midpoint", {"final_step": 5})] * 3, True),
        pytest.param([_v("select_midpoint", {"chosen_position": 0})] * 3, True),
        pytest.param(
            [_v("iri_2afc", {"side": s}) for s in ("left", "left", "right")], False, id="E-mixed"
        ),
        pytest.param(
            [
                _v(
                    "iri_cluster",
                    {
                        "columns": cols,
                        "rows": [{"chosen_column": cols[0]}, {"chosen_column": cols[1]}],
                    },
                )
                for cols in ([0, 1, 2], [2, 0, 1], [1, 2, 0])
            ],
            True,
            id="F-same-screen-positions-whatever-the-columns",
        ),
        pytest.param([], False, id="no-answers"),
    ],
)
def test_straight_lining_flags_only_the_same_pattern_on_every_trial(
    records: list[AnswerRecord], flagged: bool
) -> None:
    # when / then
    assert straight_lining(records) is flagged


def test_the_categorical_pattern_is_the_classes_and_shares() -> None:
    # when / then
    assert answer_pattern(_a(3, 70.0, 1, 20.0)) == (3, 70.0, 1, 20.0)


QUESTIONS = [
    {"question": "Q1", "options": ["a", "b", "c", "d"], "answer": 1},
    {"question": "Q2", "options": ["x", "y"], "answer": 0},
]


def test_option_orders_are_permutations_that_repeat_for_the_same_attempt() -> None:
    # when
    first = comprehension_option_orders(token="tok-1", attempt=1, questions=QUESTIONS)
    again = comprehension_option_orders(token="tok-1", attempt=1, questions=QUESTIONS)
    # then
    assert first == again
    assert [sorted(order) for order in first] == [[0, 1, 2, 3], [0, 1]]


def test_option_orders_vary_across_sessions_so_the_right_option_moves() -> None:
    # when: the position of the right option (1) of a four-option question in 200 sessions
    positions = {
        comprehension_option_orders(token=f"tok-{i}", attempt=1, questions=QUESTIONS)[0].index(1)
        for i in range(200)
    }
    # then it is shown in every position somewhere
    assert positions == {0, 1, 2, 3}
