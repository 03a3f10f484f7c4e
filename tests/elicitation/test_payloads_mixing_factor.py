"""payloads.parse_mixing_factor (interface B): pure rules, no database."""

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from elicitation.payloads import parse_mixing_factor


def _answer(**overrides: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "mixing": 25,
        "confidence": 80,
        "moved_mixing": True,
        "moved_confidence": True,
    }
    answer.update(overrides)
    return answer


@pytest.mark.parametrize(
    ("mixing", "confidence", "lam_hat", "c"),
    [
        (0, 0, 1.0, 0.0),
        (100, 100, 0.0, 1.0),
        (25, 75, 0.75, 0.75),
        (50, 50, 0.5, 0.5),
        (75, 25, 0.25, 0.25),
    ],
)
def test_valid_answer_is_parsed_into_raw_values_lambda_and_confidence(
    mixing: int, confidence: int, lam_hat: float, c: float
) -> None:
    # when
    value = parse_mixing_factor(_answer(mixing=mixing, confidence=confidence))

    # then
    assert value == {
        "mixing_raw": mixing,
        "confidence_raw": confidence,
        "lam_hat": lam_hat,
        "confidence": c,
        "moved_mixing": True,
        "moved_confidence": True,
    }


def test_lambda_hat_is_one_minus_the_slider_fraction() -> None:
    # when
    value = parse_mixing_factor(_answer(mixing=30, confidence=7))

    # then
    assert value["lam_hat"] == pytest.approx(0.7, abs=1e-12)
    assert value["confidence"] == pytest.approx(0.07, abs=1e-12)


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"mixing": -1}, {"mixing": ["mixing must be between 0 and 100, got -1."]}),
        ({"mixing": 101}, {"mixing": ["mixing must be between 0 and 100, got 101."]}),
        ({"confidence": -1}, {"confidence": ["confidence must be between 0 and 100, got -1."]}),
        ({"confidence": 101}, {"confidence": ["confidence must be between 0 and 100, got 101."]}),
    ],
)
def test_values_out_of_range_are_refused(
    overrides: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_mixing_factor(_answer(**overrides))

    # then
    assert exc_info.value.message_dict == errors


@pytest.mark.parametrize("bad", [50.5, 50.0, "50", None, [50], {"value": 50}])
@pytest.mark.parametrize("field", ["mixing", "confidence"])
def test_non_integer_values_are_refused(field: str, bad: Any) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_mixing_factor(_answer(**{field: bad}))

    # then
    assert exc_info.value.message_dict == {
        field: [f"{field} must be a whole number from 0 to 100."]
    }


@pytest.mark.parametrize("flag", [True, False])
@pytest.mark.parametrize("field", ["mixing", "confidence"])
def test_booleans_are_not_slider_values(field: str, flag: bool) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_mixing_factor(_answer(**{field: flag}))

    # then
    assert exc_info.value.message_dict == {
        field: [f"{field} must be a whole number from 0 to 100."]
    }


@pytest.mark.parametrize("field", ["mixing", "confidence", "moved_mixing", "moved_confidence"])
def test_missing_field_is_refused(field: str) -> None:
    # given
    answer = _answer()
    del answer[field]

    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_mixing_factor(answer)

    # then
    assert exc_info.value.message_dict == {"answer": [f"Missing fields: [{field!r}]."]}


def test_empty_answer_names_every_missing_field() -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_mixing_factor({})

    # then
    assert exc_info.value.message_dict == {
        "answer": ["Missing fields: ['confidence', 'mixing', 'moved_confidence', 'moved_mixing']."]
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"lam": 0.5}, "Unexpected fields: ['lam']."),
        ({"rt_ms": 900, "class1": "Cat"}, "Unexpected fields: ['class1', 'rt_ms']."),
    ],
)
def test_extra_fields_are_refused(extra: dict[str, Any], message: str) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_mixing_factor(_answer(**extra))

    # then
    assert exc_info.value.message_dict == {"answer": [message]}


@pytest.mark.parametrize("answer", [None, "25 80", [25, 80], 25])
def test_answer_that_is_not_an_object_is_refused(answer: Any) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_mixing_factor(answer)

    # then
    assert exc_info.value.message_dict == {"answer": ["answer must be an object."]}


@pytest.mark.parametrize(
    "overrides",
    [
        {"moved_mixing": False},
        {"moved_confidence": False},
        {"moved_mixing": False, "moved_confidence": False},
        # Only the JSON literal true counts as set: no truthy stand-ins.
        {"moved_mixing": 1},
        {"moved_confidence": "true"},
        {"moved_mixing": None},
        # An untouched slider is refused before its (default) value is even looked at.
        {"moved_mixing": False, "mixing": 50},
        {"moved_confidence": False, "confidence": 500},
    ],
)
def test_answer_without_both_sliders_set_is_refused(overrides: dict[str, Any]) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_mixing_factor(_answer(**overrides))

    # then
    assert exc_info.value.messages == ["Set both sliders before submitting."]
    assert hasattr(exc_info.value, "error_dict") is False


@pytest.mark.parametrize(
    "set_by",
    [
        {"mixing": None, "confidence": "pointer"},
        {"mixing": "keyboard", "confidence": None},
    ],
)
def test_a_slider_the_payload_reports_as_never_set_is_refused(set_by: dict[str, Any]) -> None:
    # when: the moved flags say set, but the input record shows one slider was never touched
    with pytest.raises(ValidationError) as exc_info:
        parse_mixing_factor(_answer(set_by=set_by))
    # then
    assert exc_info.value.messages == ["Set both sliders before submitting."]


def test_how_each_slider_was_set_is_stored() -> None:
    # when
    value = parse_mixing_factor(_answer(set_by={"mixing": "keyboard", "confidence": "pointer"}))
    # then
    assert value["set_by"] == {"mixing": "keyboard", "confidence": "pointer"}


NOT_AN_OBJECT = "set_by must be an object with the keys 'mixing' and 'confidence'."


@pytest.mark.parametrize(
    ("set_by", "message"),
    [
        ("keyboard", "set_by must be an object with the keys 'mixing' and 'confidence'."),
        (
            {"mixing": "pointer"},
            "set_by must be an object with the keys 'mixing' and 'confidence'.",
        ),
        (
            {"mixing": "voice", "confidence": "pointer"},
            "set_by.mixing must be one of ['pointer', 'keyboard'] or null.",
        ),
    ],
)
def test_a_malformed_set_by_is_refused(set_by: Any, message: str) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_mixing_factor(_answer(set_by=set_by))
    # then
    assert exc_info.value.message_dict == {"set_by": [message]}
