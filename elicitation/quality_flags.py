"""Flags on how a session was answered, and the comprehension check's option order.

Pure functions over plain values (no database), shared by the services that store the flags and
by their tests. A flag never refuses an answer: it marks it for the researcher.
"""

import hashlib
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

# Fewer answers than this say nothing about a pattern: two equal answers are often honest.
STRAIGHT_LINING_MIN_TRIALS = 3


@dataclass(frozen=True)
class AnswerRecord:
    """What quality checks need of one stored response."""

    trial_type: str
    top_class: int | None
    p1_pct: float | None
    second_class: int | None
    p2_pct: float | None
    value: dict[str, Any]


def answer_pattern(record: AnswerRecord) -> Hashable:
    """The part of an answer a participant who ignores the stimulus would repeat.

    A: the classes and shares given (each participant sees one class order for all trials, so a
    class is also a screen position); B: both slider values; C: the step stopped at; D: the
    position clicked; E: the side chosen; F: the column position picked for each row.
    """
    v = record.value
    ttype = record.trial_type
    if ttype == "categorical":
        return (record.top_class, record.p1_pct, record.second_class, record.p2_pct)
    if ttype == "mixing_factor":
        return (v.get("mixing_raw"), v.get("confidence_raw"))
    if ttype == "construct_midpoint":
        return v.get("final_step")
    if ttype == "select_midpoint":
        return v.get("chosen_position")
    if ttype == "iri_2afc":
        return v.get("side")
    columns = v.get("columns", [])
    return tuple(
        columns.index(row["chosen_column"]) if row["chosen_column"] in columns else None
        for row in v.get("rows", [])
    )


def straight_lining(records: Sequence[AnswerRecord]) -> bool:
    """Whether every answer has the same pattern (at least STRAIGHT_LINING_MIN_TRIALS of them)."""
    if len(records) < STRAIGHT_LINING_MIN_TRIALS:
        return False
    return len({answer_pattern(r) for r in records}) == 1


def comprehension_option_orders(
    *, token: str, attempt: int, questions: Sequence[dict[str, Any]]
) -> list[list[int]]:
    """The order in which each question's options are shown on this attempt.

    Derived from the session token and the attempt number, so the page that shows the check and
    the submit that grades it agree without storing anything when the page is read; the grading
    service stores the order with the attempt. A new attempt gets a new order.
    """
    seed = hashlib.sha256(f"{token}:{attempt}".encode()).digest()
    rng = random.Random(seed)  # noqa: S311 (an unpredictable-enough order, not a secret)
    orders = []
    for question in questions:
        order = list(range(len(question["options"])))
        rng.shuffle(order)
        orders.append(order)
    return orders
