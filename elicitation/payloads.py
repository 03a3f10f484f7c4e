"""Parsing and validating what a participant submits, per trial type.

Pure functions: no database access, so the rules are testable on their own and shared by the
JSON API and the HTML pages. Errors are Django ValidationErrors keyed by field, which the API
layer turns into a 400 naming the problem.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

# Bounds on what a study asks, so the participant's answers are bounded before any parsing:
# questions in the comprehension check and the debrief, and characters per debrief answer.
MAX_QUESTIONS = 50
MAX_ANSWER_CHARS = 5000
# Longest piece of a participant's input an error message repeats.
_ECHO_CHARS = 40


def _echo(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _ECHO_CHARS else text[: _ECHO_CHARS - 1] + "…"


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
        raise ValidationError({field: f"Unknown class {_echo(name)}; expected one of {classes}."})
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
    # Each class at most once: a longer list is refused before any entry is looked at (it
    # would otherwise be stored verbatim in Response.raw).
    if len(raw_impossible) > len(classes):
        raise ValidationError(
            {
                "impossible": f"impossible lists {len(raw_impossible)} classes; the study has "
                f"{len(classes)}."
            }
        )
    impossible = sorted({_class_index(n, classes, "impossible") for n in raw_impossible})
    chosen = {top} if second is None else {top, second}
    clash = [classes[i] for i in impossible if i in chosen]
    if clash:
        raise ValidationError(
            {"impossible": f"{clash[0]} is chosen as probable and cannot also be impossible."}
        )
    _check_categorical_mass(p1, p2, n_open=len(classes) - len(chosen) - len(impossible))
    return CategoricalAnswer(
        top_class=top, p1_pct=p1, second_class=second, p2_pct=p2, impossible=tuple(impossible)
    )


# Shares are typed as whole percentages, so each one, stated or left to an open class, may be
# half a point off the participant's belief (33 / 33 / 34 is their three-way tie): the check
# allows that much before calling the shares impossible.
ROUNDING_SLACK_PER_SHARE = 0.5


def _check_categorical_mass(p1: float, p2: float | None, *, n_open: int) -> None:
    """The stated shares must be able to add up to 100% over the classes left possible.

    What p1 and p2 leave over goes to the `n_open` classes neither chosen nor ruled impossible,
    and none of them can be more probable than the least probable stated class (the top class
    when no second is given): so the rest must be 0 when no class is open, and at most
    n_open × that share otherwise (each within rounding). A top class of 20% among five open
    classes is a uniform answer; 15% cannot be the most probable of them.
    """
    if p1 <= 0:
        raise ValidationError({"p1": "The most probable class needs a share above 0%."})
    stated = p1 + (p2 or 0.0)
    rest = 100.0 - stated
    n_stated = 1 if p2 is None else 2
    slack = ROUNDING_SLACK_PER_SHARE * (n_stated + n_open)
    if n_open == 0 and rest > slack:
        raise ValidationError(
            {
                "impossible": f"The shares add up to {stated:g}% and every other class is ruled "
                "impossible: with no class left open they must add up to 100%."
            }
        )
    cap = p1 if p2 is None else p2
    if rest > n_open * cap + slack:
        which = "most probable" if p2 is None else "second"
        raise ValidationError(
            {
                "p1" if p2 is None else "p2": f"The shares add up to {stated:g}%, which leaves "
                f"{rest:g}% for the {n_open} classes still possible; none of them can be more "
                f"probable than the {which} class ({cap:g}%), so together they hold at most "
                f"{n_open * cap:g}%."
            }
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


def _int_in(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({field: f"{field} must be a whole number from {low} to {high}."})
    if not low <= value <= high:
        raise ValidationError({field: f"{field} must be between {low} and {high}, got {value}."})
    return value


def _object(answer: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise ValidationError({"answer": "answer must be an object."})
    unknown = set(answer) - allowed
    if unknown:
        raise ValidationError({"answer": f"Unexpected fields: {sorted(unknown)}."})
    missing = allowed - set(answer)
    if missing:
        raise ValidationError({"answer": f"Missing fields: {sorted(missing)}."})
    return answer


SLIDER_INPUTS = ("pointer", "keyboard")


def parse_mixing_factor(answer: Any) -> dict[str, Any]:
    """Interface B. Both sliders must have been set: an untouched default is no answer.

    `set_by` (optional) says how each slider was set: {"mixing": "pointer" | "keyboard" | null,
    "confidence": ...}. A slider the payload reports as never set (null) is refused like an
    unmoved one, whichever way the page was used; the input kinds are stored with the answer.
    """
    fields = {"mixing", "confidence", "moved_mixing", "moved_confidence"}
    if isinstance(answer, dict) and "set_by" in answer:
        fields.add("set_by")
    a = _object(answer, fields)
    set_by = _slider_inputs(a.get("set_by"))
    if (
        a["moved_mixing"] is not True
        or a["moved_confidence"] is not True
        or (set_by is not None and None in set_by.values())
    ):
        # Not keyed by field: the API shows this message as it is, without an "answer: " prefix.
        raise ValidationError("Set both sliders before submitting.")
    mixing = _int_in(a["mixing"], "mixing", 0, 100)
    confidence = _int_in(a["confidence"], "confidence", 0, 100)
    value: dict[str, Any] = {
        "mixing_raw": mixing,
        "confidence_raw": confidence,
        # docs/methods/interface-analyses.md#mixing-factor: λ̂ (weight of image 1) = 1 − value/100,
        # c = value/100.
        "lam_hat": 1 - mixing / 100,
        "confidence": confidence / 100,
        "moved_mixing": True,
        "moved_confidence": True,
    }
    if set_by is not None:
        value["set_by"] = set_by
    return value


def _slider_inputs(raw: Any) -> dict[str, str | None] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"mixing", "confidence"}:
        raise ValidationError(
            {"set_by": "set_by must be an object with the keys 'mixing' and 'confidence'."}
        )
    for name, how in raw.items():
        if how is not None and how not in SLIDER_INPUTS:
            raise ValidationError(
                {"set_by": f"set_by.{name} must be one of {list(SLIDER_INPUTS)} or null."}
            )
    return {"mixing": raw["mixing"], "confidence": raw["confidence"]}


MAX_VISITS = 2000


def parse_construct_midpoint(
    answer: Any, display: dict[str, Any], *, allow_no_steps: bool = False
) -> dict[str, Any]:
    """Interface C: the walk through the series, one step at a time, from the start step.

    At least one step must be taken unless the study allows none: an answer left at the start
    step says nothing about where the participant sees the midpoint.
    """
    a = _object(answer, {"final_step", "visits"})
    final = _int_in(a["final_step"], "final_step", 0, 10)
    visits = a["visits"]
    if not isinstance(visits, list) or not visits or len(visits) > MAX_VISITS:
        raise ValidationError({"visits": f"visits must be a list of 1 to {MAX_VISITS} steps."})
    parsed: list[dict[str, Any]] = []
    for i, v in enumerate(visits):
        if not isinstance(v, dict) or set(v) != {"step", "t_ms"}:
            raise ValidationError({"visits": f"Visit {i} must be {{'step': int, 't_ms': number}}."})
        step = _int_in(v["step"], "visits.step", 0, 10)
        t = v["t_ms"]
        if isinstance(t, bool) or not isinstance(t, int | float) or t < 0:
            raise ValidationError({"visits": f"Visit {i} needs a time t_ms >= 0."})
        if parsed and (abs(step - parsed[-1]["step"]) != 1 or t < parsed[-1]["t_ms"]):
            raise ValidationError(
                {"visits": f"Visit {i} must be one step from the previous one, and not earlier."}
            )
        parsed.append({"step": step, "t_ms": float(t)})
    if parsed[0]["step"] != display["start_step"]:
        raise ValidationError({"visits": "The first visit must be the start step."})
    if parsed[-1]["step"] != final:
        raise ValidationError({"final_step": "final_step must be the last step visited."})
    if len(parsed) < 2 and not allow_no_steps:
        raise ValidationError(
            {"visits": "Take at least one step through the series before submitting."}
        )
    return {
        "start_step": display["start_step"],
        "final_step": final,
        "lam": final / 10,
        "visits": parsed,
    }


def parse_select_midpoint(answer: Any, display: dict[str, Any]) -> dict[str, Any]:
    """Interface D: the position clicked in the shown order, mapped back to its step."""
    a = _object(answer, {"chosen_position"})
    order = display["order"]
    position = _int_in(a["chosen_position"], "chosen_position", 0, len(order) - 1)
    step = order[position]
    return {"chosen_position": position, "chosen_step": step, "lam": step / 10, "order": order}


def parse_iri_2afc(answer: Any, display: dict[str, Any]) -> dict[str, Any]:
    a = _object(answer, {"choice"})
    if a["choice"] not in ("left", "right"):
        raise ValidationError({"choice": "choice must be 'left' or 'right'."})
    chosen = display["placement"][0 if a["choice"] == "left" else 1]
    catch = display["query"] != "iri"
    return {
        "side": a["choice"],
        "chosen": chosen,
        "placement": display["placement"],
        "correct": chosen == "target",
        "catch": catch,
        # On a catch trial the right answer is the option the query copies.
        "catch_passed": chosen == display["query"] if catch else None,
    }


def parse_iri_cluster(
    answer: Any, display: dict[str, Any], row_targets: list[int]
) -> dict[str, Any]:
    """Interface F: for each shown row, the shown column picked; stored as true indices."""
    a = _object(answer, {"assignments"})
    rows, columns = display["rows"], display["columns"]
    assignments = a["assignments"]
    if not isinstance(assignments, list) or len(assignments) != len(rows):
        raise ValidationError(
            {"assignments": f"assignments must list one column for each of the {len(rows)} rows."}
        )
    out = []
    for position, (row, pick) in enumerate(zip(rows, assignments, strict=True)):
        col_position = _int_in(pick, f"assignments[{position}]", 0, len(columns) - 1)
        chosen = columns[col_position]
        true = row["column"] if row["kind"] == "catch" else row_targets[row["index"]]
        out.append(
            {
                "row_position": position,
                "row": row,
                "chosen_column": chosen,
                "true_column": true,
                "correct": chosen == true,
                "catch": row["kind"] == "catch",
            }
        )
    return {"rows": out, "columns": columns}


def payload_digest(*, trial_id: int, rt_ms: int, answer: Any) -> str:
    """SHA-256 of a submit's payload in one canonical form (sorted keys, no spaces, ASCII), so
    a retry of the same body gives the same digest whatever its key order or whitespace."""
    canonical = json.dumps(
        {"trial": trial_id, "rt_ms": rt_ms, "answer": answer},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
