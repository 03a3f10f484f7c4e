"""payloads.parse_iri_2afc (interface E) and parse_iri_cluster (F): pure rules, no database."""

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from elicitation.payloads import parse_iri_2afc, parse_iri_cluster

SIDE_ERROR = {"choice": ["choice must be 'left' or 'right'."]}
# Shown: columns in the order C, A, B; rows: IRI 1, a catch copy of column C, IRI 0.
CLUSTER_DISPLAY = {
    "columns": [2, 0, 1],
    "rows": [
        {"kind": "iri", "index": 1},
        {"kind": "catch", "column": 2},
        {"kind": "iri", "index": 0},
    ],
}
ROW_TARGETS = [0, 1]  # IRI 0 was made for column A, IRI 1 for column B


@pytest.mark.parametrize(
    ("placement", "query", "choice", "chosen", "catch", "catch_passed"),
    [
        (["target", "start"], "iri", "left", "target", False, None),
        (["target", "start"], "iri", "right", "start", False, None),
        (["start", "target"], "iri", "left", "start", False, None),
        (["start", "target"], "iri", "right", "target", False, None),
        # Catch trials: the query copies one option, and picking that one passes.
        (["start", "target"], "start", "left", "start", True, True),
        (["start", "target"], "start", "right", "target", True, False),
        (["target", "start"], "target", "left", "target", True, True),
        (["target", "start"], "target", "right", "start", True, False),
    ],
)
def test_2afc_choice_is_mapped_through_the_shown_placement(
    placement: list[str],
    query: str,
    choice: str,
    chosen: str,
    catch: bool,
    catch_passed: bool | None,
) -> None:
    # when
    value = parse_iri_2afc({"choice": choice}, {"placement": placement, "query": query})

    # then
    assert value == {
        "side": choice,
        "chosen": chosen,
        "placement": placement,
        "correct": chosen == "target",
        "catch": catch,
        "catch_passed": catch_passed,
    }


@pytest.mark.parametrize("side", ["up", "LEFT", "", 0, 1, None, True, ["left"], {"side": "left"}])
def test_2afc_refuses_a_side_other_than_left_or_right(side: Any) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_iri_2afc({"choice": side}, {"placement": ["target", "start"], "query": "iri"})

    # then
    assert exc_info.value.message_dict == SIDE_ERROR


@pytest.mark.parametrize(
    ("answer", "errors"),
    [
        ("left", {"answer": ["answer must be an object."]}),
        (["left"], {"answer": ["answer must be an object."]}),
        (None, {"answer": ["answer must be an object."]}),
        ({}, {"answer": ["Missing fields: ['choice']."]}),
        ({"side": "left"}, {"answer": ["Unexpected fields: ['side']."]}),
        ({"choice": "left", "rt": 5}, {"answer": ["Unexpected fields: ['rt']."]}),
    ],
)
def test_2afc_refuses_malformed_answers(answer: Any, errors: dict[str, list[str]]) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_iri_2afc(answer, {"placement": ["target", "start"], "query": "iri"})

    # then
    assert exc_info.value.message_dict == errors


def test_cluster_assignments_are_stored_as_true_column_indices() -> None:
    # when: rows get the shown columns C, C and A
    value = parse_iri_cluster({"assignments": [0, 0, 1]}, CLUSTER_DISPLAY, ROW_TARGETS)

    # then
    assert value == {
        "columns": [2, 0, 1],
        "rows": [
            {
                "row_position": 0,
                "row": {"kind": "iri", "index": 1},
                "chosen_column": 2,
                "true_column": 1,
                "correct": False,
                "catch": False,
            },
            {
                "row_position": 1,
                "row": {"kind": "catch", "column": 2},
                "chosen_column": 2,
                "true_column": 2,
                "correct": True,
                "catch": True,
            },
            {
                "row_position": 2,
                "row": {"kind": "iri", "index": 0},
                "chosen_column": 0,
                "true_column": 0,
                "correct": True,
                "catch": False,
            },
        ],
    }


def test_cluster_catch_row_picked_wrongly_is_a_failed_catch() -> None:
    # when: the catch row (a copy of column C, shown first) is given column B
    value = parse_iri_cluster({"assignments": [1, 2, 1]}, CLUSTER_DISPLAY, ROW_TARGETS)

    # then
    assert value["rows"][1] == {
        "row_position": 1,
        "row": {"kind": "catch", "column": 2},
        "chosen_column": 1,
        "true_column": 2,
        "correct": False,
        "catch": True,
    }
    assert [r["correct"] for r in value["rows"]] == [False, False, True]


@pytest.mark.parametrize("assignments", [[], [0, 1], [0, 1, 2, 0], "0,1,2", None, {"0": 0}])
def test_cluster_refuses_other_than_one_column_per_row(assignments: Any) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_iri_cluster({"assignments": assignments}, CLUSTER_DISPLAY, ROW_TARGETS)

    # then
    assert exc_info.value.message_dict == {
        "assignments": ["assignments must list one column for each of the 3 rows."]
    }


@pytest.mark.parametrize(
    ("assignments", "errors"),
    [
        ([0, 3, 1], {"assignments[1]": ["assignments[1] must be between 0 and 2, got 3."]}),
        ([-1, 0, 1], {"assignments[0]": ["assignments[0] must be between 0 and 2, got -1."]}),
        ([0, 1, 99], {"assignments[2]": ["assignments[2] must be between 0 and 2, got 99."]}),
    ],
)
def test_cluster_refuses_a_column_out_of_range(
    assignments: list[int], errors: dict[str, list[str]]
) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_iri_cluster({"assignments": assignments}, CLUSTER_DISPLAY, ROW_TARGETS)

    # then
    assert exc_info.value.message_dict == errors


@pytest.mark.parametrize(
    ("assignments", "position"),
    [(["0", 1, 2], 0), ([0, True, 2], 1), ([0, 1, 2.0], 2), ([0, None, 2], 1), ([[0], 1, 2], 0)],
)
def test_cluster_refuses_a_column_that_is_not_a_whole_number(
    assignments: list[Any], position: int
) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_iri_cluster({"assignments": assignments}, CLUSTER_DISPLAY, ROW_TARGETS)

    # then
    field = f"assignments[{position}]"
    assert exc_info.value.message_dict == {field: [f"{field} must be a whole number from 0 to 2."]}


@pytest.mark.parametrize(
    ("answer", "errors"),
    [
        ([0, 1, 2], {"answer": ["answer must be an object."]}),
        ("0 1 2", {"answer": ["answer must be an object."]}),
        ({}, {"answer": ["Missing fields: ['assignments']."]}),
        ({"rows": [0, 1, 2]}, {"answer": ["Unexpected fields: ['rows']."]}),
        ({"assignments": [0, 1, 2], "extra": 1}, {"answer": ["Unexpected fields: ['extra']."]}),
    ],
)
def test_cluster_refuses_malformed_answers(answer: Any, errors: dict[str, list[str]]) -> None:
    # when
    with pytest.raises(ValidationError) as exc_info:
        parse_iri_cluster(answer, CLUSTER_DISPLAY, ROW_TARGETS)

    # then
    assert exc_info.value.message_dict == errors
