"""What each trial shows, decided once when the participant's trials are planned.

Pure functions (no database): they take what they need about the stimulus and a random
generator, and return the JSON stored on Trial.display (and copied onto the Response), so that
every randomised order and placement is recorded with the answer.
"""

import random
from dataclasses import dataclass
from typing import Any

# λ = step / 10 for the integer steps 0..10 (docs/user-guide/interfaces.md#conventions).
MIDPOINT_STEPS = 11
START_STEPS = (1, 9)  # interface C starts one step in from either end, counterbalanced
CLUSTER_COLUMNS = 3


@dataclass(frozen=True)
class StimulusInfo:
    kind: str
    class1: str = ""
    class2: str = ""
    n_rows: int = 0  # IRI clustering: number of IRI rows


def categorical(*, class_order: list[str]) -> dict[str, Any]:
    return {"class_order": class_order}


def mixing_factor(info: StimulusInfo) -> dict[str, Any]:
    return {"class1": info.class1, "class2": info.class2}


def construct_midpoint(info: StimulusInfo, *, start_step: int) -> dict[str, Any]:
    if start_step not in START_STEPS:
        raise ValueError(f"start_step must be one of {START_STEPS}")
    return {"class1": info.class1, "class2": info.class2, "start_step": start_step}


def select_midpoint(info: StimulusInfo, rng: random.Random) -> dict[str, Any]:
    # Reshuffled for every trial, repeats included (docs/user-guide/interfaces.md#select-midpoint).
    order = list(range(MIDPOINT_STEPS))
    rng.shuffle(order)
    return {"class1": info.class1, "class2": info.class2, "order": order}


def iri_2afc(rng: random.Random, *, catch: bool) -> dict[str, Any]:
    placement = ["target", "start"]
    rng.shuffle(placement)
    # A catch trial's query is an exact copy of one option: anyone attending picks that one.
    query = rng.choice(["target", "start"]) if catch else "iri"
    return {"placement": placement, "query": query}


def iri_cluster(info: StimulusInfo, rng: random.Random, *, catch_rows: int) -> dict[str, Any]:
    columns = list(range(CLUSTER_COLUMNS))
    rng.shuffle(columns)
    rows: list[dict[str, Any]] = [{"kind": "iri", "index": i} for i in range(info.n_rows)]
    # A catch row is an unmodified copy of one of the column images.
    rows += [{"kind": "catch", "column": rng.randrange(CLUSTER_COLUMNS)} for _ in range(catch_rows)]
    rng.shuffle(rows)
    return {"columns": columns, "rows": rows}


def start_step_for(slot: int) -> int:
    """Counterbalancing of interface C: alternate start steps in order of arrival in a batch."""
    return START_STEPS[slot % 2]
