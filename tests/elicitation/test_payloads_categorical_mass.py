"""payloads.parse_categorical (interface A): the stated shares must be able to be true."""

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from elicitation.payloads import parse_categorical

CLASSES = ["Circle", "Square", "Star", "Heart", "Cross"]


def _answer(**overrides: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "top_class": "Circle",
        "p1": 60,
        "second_class": "Square",
        "p2": 30,
        "impossible": [],
    }
    answer.update(overrides)
    return answer


@pytest.mark.parametrize(
    ("answer", "errors"),
    [
        pytest.param(
            _answer(p1=0, second_class=None, p2=None),
            {"p1": ["The most probable class needs a share above 0%."]},
            id="top-class-at-zero",
        ),
        pytest.param(
            _answer(p1=5, p2=5, impossible=["Star", "Heart", "Cross"]),
            {
                "impossible": [
                    "The shares add up to 10% and every other class is ruled impossible: with "
                    "no class left open they must add up to 100%."
                ]
            },
            id="five-plus-five-with-every-other-class-impossible",
        ),
        pytest.param(
            _answer(
                p1=70, second_class=None, p2=None, impossible=["Square", "Star", "Heart", "Cross"]
            ),
            {
                "impossible": [
                    "The shares add up to 70% and every other class is ruled impossible: with "
                    "no class left open they must add up to 100%."
                ]
            },
            id="top-class-alone-below-100",
        ),
        pytest.param(
            _answer(p1=15, second_class=None, p2=None),
            {
                "p1": [
                    "The shares add up to 15%, which leaves 85% for the 4 classes still "
                    "possible; none of them can be more probable than the most probable class "
                    "(15%), so together they hold at most 60%."
                ]
            },
            id="top-class-too-small-to-be-the-most-probable",
        ),
        pytest.param(
            _answer(p1=50, p2=48, impossible=["Star", "Heart", "Cross"]),
            {
                "impossible": [
                    "The shares add up to 98% and every other class is ruled impossible: with "
                    "no class left open they must add up to 100%."
                ]
            },
            id="two-points-short-is-more-than-rounding",
        ),
        pytest.param(
            _answer(p1=50, p2=10, impossible=["Star"]),
            {
                "p2": [
                    "The shares add up to 60%, which leaves 40% for the 2 classes still "
                    "possible; none of them can be more probable than the second class (10%), "
                    "so together they hold at most 20%."
                ]
            },
            id="second-class-too-small-for-the-rest",
        ),
    ],
)
def test_shares_that_cannot_add_up_are_refused_naming_the_problem(
    answer: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_categorical(answer, CLASSES)
    # then
    assert exc_info.value.message_dict == errors


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(_answer(p1=20, second_class=None, p2=None), id="uniform-over-five"),
        pytest.param(
            _answer(p1=60, p2=40, impossible=["Star", "Heart", "Cross"]), id="exactly-100"
        ),
        pytest.param(_answer(p1=100, second_class=None, p2=None, impossible=[]), id="certain"),
        pytest.param(_answer(p1=50, p2=20, impossible=[]), id="rest-fits-under-p2"),
        pytest.param(_answer(p1=33, p2=33, impossible=["Heart", "Cross"]), id="three-way-tie"),
        pytest.param(
            _answer(p1=50, p2=49, impossible=["Star", "Heart", "Cross"]), id="within-rounding"
        ),
    ],
)
def test_shares_that_can_add_up_are_accepted(answer: dict[str, Any]) -> None:
    # when
    parsed = parse_categorical(answer, CLASSES)
    # then
    assert parsed.top_class == 0
    assert parsed.p1_pct == float(answer["p1"])
