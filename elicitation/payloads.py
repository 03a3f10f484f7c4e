"""Parsing and validating what a participant submits, per trial type.

Pure functions: no database access, so the rules are testable on their own and shared by the
JSON API and the HTML pages. Errors are Django ValidationErrors keyed by field, which the API
layer turns into a 400 naming the problem.
"""

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError


@dataclass(frozen=True)
class CategoricalAnswer:
    top_class: int
    p1_pct: float
    second_class: int | None
    p2_pct: float | None
    impossible: tuple[int, ...]


def _percent(value: Any, field: str) -> float:
    # bool is an int subclass; "true" is not a percentage.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError({field: f"{field} must be a number from 0 to 100."})
    if not 0 <= value <= 100:
        raise ValidationError({field: f"{field} must be between 0 and 100, got {value}."})
    return float(value)


def _class_index(name: Any, classes: list[str], field: str) -> int:
    if not isinstance(name, str) or name not in classes:
        raise ValidationError({field: f"Unknown class {name!r}; expected one of {classes}."})
    return classes.index(name)


def parse_categorical(answer: Any, classes: list[str]) -> CategoricalAnswer:
    """Interface A, with the design's "do better" rules enforced at input.

    The second class must differ from the first, a chosen class cannot be ticked impossible, and
    the two stated probabilities cannot add up to more than 100% (the published interface took
    free text and let all three through).
    """
    if not isinstance(answer, dict):
        raise ValidationError({"answer": "answer must be an object."})
    unknown = set(answer) - {"top_class", "p1", "second_class", "p2", "impossible"}
    if unknown:
        raise ValidationError({"answer": f"Unexpected fields: {sorted(unknown)}."})
    if "top_class" not in answer or "p1" not in answer:
        raise ValidationError({"answer": "top_class and p1 are required."})
    top = _class_index(answer["top_class"], classes, "top_class")
    p1 = _percent(answer["p1"], "p1")

    second_name = answer.get("second_class")
    second: int | None = None
    p2: float | None = None
    if second_name is not None:
        second = _class_index(second_name, classes, "second_class")
        if second == top:
            raise ValidationError(
                {"second_class": "The second class must differ from the most probable class."}
            )
        if answer.get("p2") is None:
            raise ValidationError({"p2": "p2 is required when a second class is chosen."})
        p2 = _percent(answer["p2"], "p2")
        if p2 > p1:
            raise ValidationError(
                {"p2": "The second class cannot be more probable than the first."}
            )
        if p1 + p2 > 100:
            raise ValidationError({"p2": f"p1 + p2 is {p1 + p2:g}%, more than 100%."})
    elif answer.get("p2") is not None:
        raise ValidationError({"p2": "p2 given without a second class."})

    raw_impossible = answer.get("impossible", [])
    if not isinstance(raw_impossible, list):
        raise ValidationError({"impossible": "impossible must be a list of class names."})
    impossible = sorted({_class_index(n, classes, "impossible") for n in raw_impossible})
    chosen = {top} if second is None else {top, second}
    clash = [classes[i] for i in impossible if i in chosen]
    if clash:
        raise ValidationError(
            {"impossible": f"{clash[0]} is chosen as probable and cannot also be impossible."}
        )
    return CategoricalAnswer(
        top_class=top, p1_pct=p1, second_class=second, p2_pct=p2, impossible=tuple(impossible)
    )


def parse_comprehension(answers: Any, questions: list[dict[str, Any]]) -> list[int]:
    if not isinstance(answers, list) or len(answers) != len(questions):
        raise ValidationError(
            {"answers": f"Expected a list of {len(questions)} answers, one per question."}
        )
    parsed: list[int] = []
    for i, (value, question) in enumerate(zip(answers, questions, strict=True)):
        n_options = len(question["options"])
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n_options:
            raise ValidationError(
                {"answers": f"Answer {i + 1} must be an option number from 0 to {n_options - 1}."}
            )
        parsed.append(value)
    return parsed
