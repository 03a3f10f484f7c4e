"""Small files in the five published raw formats, written by the tests themselves.

The rows are made up (subjects, image indices and answers), but the layout follows the published
exports (docs/formats/import.md#legacy): a header with an unnamed leading index column, jsPsych
rows of other trial types mixed in, the answers as JSON in a CSV cell, and the quirks of the
real files (typed " 80" and "8p", `secondProbNo` with something typed in prob2 anyway, an empty
prob2 after choosing a second class, the same class twice, chosen classes ticked impossible,
every class ticked impossible, float noise in final_value, a ".png" on class_pair, and a subject
who took the study twice, restarting trial_index).

The expected per-annotation labels next to each file were computed by hand from the pseudo-code
of docs/methods/soft-labels.md; the comments give the arithmetic.
"""

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from elicitation import legacy
from elicitation.legacy import CIFAR10_CLASSES

CLASSES = list(CIFAR10_CLASSES)
(AIRPLANE, AUTOMOBILE, BIRD, CAT, DEER, DOG, FROG, HORSE, SHIP, TRUCK) = range(10)

CIFAR10S_HEADER = list(legacy.CIFAR10S_HEADER)
HMIX_CATEGORICAL_HEADER = [
    "",
    "trial_type",
    "trial_index",
    "time_elapsed",
    "subject",
    "study_id",
    "condition",
    "rt",
    "url",
    "view_history",
    "response",
    "question_order",
    "success",
    "timeout",
    "failed_images",
    "filename",
    "task",
    "subj_id",
    "label1",
    "label2",
    "mixtureCoeff",
    "id1",
    "id2",
]
MIXING_HEADER = [
    "",
    "index",
    "trial_type",
    "trial_index",
    "time_elapsed",
    "subject",
    "study_id",
    "condition",
    "rt",
    "view_history",
    "response",
    "question_order",
    "responses",
    "filename",
    "task",
    "subj_id",
    "label1",
    "label2",
    "mixtureCoeff",
    "id1",
    "id2",
    "class_pair",
]
CONSTRUCT_HEADER = [
    "",
    "index",
    "trial_type",
    "trial_index",
    "time_elapsed",
    "subject",
    "study_id",
    "condition",
    "rt",
    "response",
    "final_value",
    "start_value",
    "task",
    "class_pair",
    "starting_value",
    "filename",
]
SELECT_HEADER = [
    "",
    "index",
    "trial_type",
    "trial_index",
    "time_elapsed",
    "subject",
    "study_id",
    "condition",
    "rt",
    "response",
    "task",
    "class_pair",
]


def csv_text(header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """The file: header, then one line per row (missing cells empty, index column numbered)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i, row in enumerate(rows):
        unknown = set(row) - set(header)
        assert not unknown, f"columns not in the header: {unknown}"
        writer.writerow([i if c == "" else row.get(c, "") for c in header])
    return buf.getvalue()


def lines(text: str) -> list[str]:
    return io.StringIO(text, newline="").readlines()


def form(
    top: str,
    p1: str,
    second: str | None = None,
    p2: str = "",
    impossible: Iterable[str] = (),
) -> str:
    """The CIFAR-10S answer form as the published files store it (a JSON object of strings)."""
    answer = {
        "classSelect": f"mostProb{top}",
        "prob": p1,
        "classSelect2": "secondProbNo" if second is None else f"secondProb{second}",
        "prob2": p2,
    }
    answer.update({f"improbClassSelect{c}": "1" for c in impossible})
    return json.dumps(answer, separators=(",", ":"))


def all_but(*keep: str) -> list[str]:
    return [c for c in CLASSES if c not in keep]


def all_but_indices(*keep: str) -> list[int]:
    return [i for i, c in enumerate(CLASSES) if c not in keep]


# --- CIFAR-10S ---------------------------------------------------------------------------------


def _plain(subject: str, condition: int, index: int, image: int, label: str, **row: Any) -> dict:
    return {
        "trial_type": "survey-html-form",
        "trial_index": index,
        "time_elapsed": 100000 + 1000 * index,
        "subject": subject,
        "condition": condition,
        "task": "spec_conf",
        "filename": f"cifar10_train_{image}_{label}.png",
        "label": label,
        "img_id": f"{image}.0",
        **row,
    }


def _other(subject: str, condition: int, index: int, trial_type: str, **row: Any) -> dict:
    return {
        "trial_type": trial_type,
        "trial_index": index,
        "time_elapsed": 1000 * (index + 1),
        "subject": subject,
        "condition": condition,
        **row,
    }


def cifar10s_rows() -> list[dict[str, Any]]:
    a, b, c = "subj-alpha-01", "subj-bravo-02", "subj-charlie-03"
    return [
        # line 2-5: the session's preamble, skipped
        _other(a, 3, 0, "pavlovia"),
        _other(
            a,
            3,
            1,
            "instructions",
            rt="5000.25",
            view_history='[{"page_index":0,"viewing_time":1200.5}]',
        ),
        _other(a, 3, 2, "survey-multi-choice", rt="3000.0", response='{"Q0":"An answer."}'),
        _other(a, 3, 3, "preload"),
        # line 6 (A)
        _plain(
            a,
            3,
            4,
            17,
            "Cat",
            rt="41234.6",
            response=form(
                "Cat", "60", "Dog", "20", ["Airplane", "Automobile", "Ship", "Truck", "Frog"]
            ),
        ),
        # line 7 (B): " 80", and "15" typed in prob2 although "no alternative" was chosen
        _plain(
            a,
            3,
            5,
            42,
            "Truck",
            rt="30000.4",
            response=form("Truck", " 80", None, "15", all_but("Airplane", "Automobile", "Truck")),
        ),
        # line 8: a form of the same trial type that is not a response (other task), skipped
        _other(a, 3, 6, "survey-html-form", rt="900", response='{"comments":"none"}'),
        # line 9 (C): repeat; "8p"; a second class chosen but its probability left empty
        _plain(
            a,
            3,
            7,
            17,
            "Cat",
            rt="20000",
            task="rerun_spec_conf",
            response=form("Cat", "8p", "Deer", ""),
        ),
        # line 10: skipped
        _other(b, 3, 0, "pavlovia"),
        # line 11 (D): the same class as first and second
        _plain(
            b,
            3,
            4,
            17,
            "Cat",
            rt="15000",
            response=form("Deer", "75", "Deer", "25", ["Airplane", "Automobile", "Ship", "Truck"]),
        ),
        # line 12 (E)
        _plain(
            b, 3, 5, 42, "Truck", rt="16000", response=form("Horse", "100", "Deer", "10", ["Dog"])
        ),
        # line 13 (F): a typed 0 (read as 100)
        _plain(
            b, 3, 6, 5, "Airplane", rt="17000", response=form("Cat", "0", None, "", all_but("Cat"))
        ),
        # line 14 (G)
        _plain(c, 4, 4, 5, "Airplane", rt="18000", response=form("Ship", "20", "Truck", "10")),
        # line 15 (H)
        _plain(
            c,
            4,
            5,
            42,
            "Truck",
            rt="19000",
            response=form("Cat", "60", "Dog", "20", all_but("Cat", "Dog")),
        ),
        # line 16 (I): "2550", and every class ticked impossible (the chosen one too)
        _plain(c, 4, 6, 64, "Ship", rt="21000", response=form("Truck", "2550", None, "", CLASSES)),
    ]


def cifar10s_csv() -> str:
    return csv_text(CIFAR10S_HEADER, cifar10s_rows())


_T = 0.2 / 3  # A: S = .8, r = .2, P = {Bird, Cat, Deer, Dog, Horse}, k = 5 - 2 = 3
_U = 0.2 / 9  # C: S = .8, r = .2, P = all, k = 10 - 1 = 9
_W = 0.1 / 7  # E: S = 1.1 -> v / S, k = 9 - 2 = 7, r = γ, stated × .9
CIFAR10S_LABELS: dict[str, list[list[float]]] = {
    "cifar10_train_17_Cat.png": [
        [0, 0, _T, 0.6, _T, 0.2, 0, _T, 0, 0],  # A
        [_U, _U, _U, 0.8, _U, _U, _U, _U, _U, _U],  # C
        # D: 75 overwritten by 25 (Q1); S = .25, r = .75, P has 6 classes, k = 5
        [0, 0, 0.15, 0.15, 0.25, 0.15, 0.15, 0.15, 0, 0],
    ],
    "cifar10_train_42_Truck.png": [
        # B: S = .8, r = .2, P = {Airplane, Automobile, Truck}, k = 2
        [0.1, 0.1, 0, 0, 0, 0, 0, 0, 0, 0.8],
        [_W, _W, _W, _W, 0.09 / 1.1, 0, _W, 0.9 / 1.1, _W, _W],  # E
        # H: S = .8, P = {Cat, Dog}, k = 0: nothing added, renormalised
        [0, 0, 0, 0.75, 0, 0.25, 0, 0, 0, 0],
    ],
    "cifar10_train_5_Airplane.png": [
        # F: p1 = 100, S = 1, P = {Cat}, k = 0
        [0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        # G: S = .3, r = .7, k = 10 - 2 = 8
        [0.0875, 0.0875, 0.0875, 0.0875, 0.0875, 0.0875, 0.0875, 0.0875, 0.2, 0.1],
    ],
    # I: S = 25.5 -> v / S = Truck 1; P = {}, k = -1 (Q2): no class at zero is possible, the
    # shrink leaves Truck .9, renormalised to 1
    "cifar10_train_64_Ship.png": [[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
}


# --- CIFAR-10S: a subject who took the study twice ----------------------------------------------

SECOND_SESSION_SUBJECT = "subj-bravo-02"


def cifar10s_two_sessions_rows() -> list[dict[str, Any]]:
    """The CIFAR-10S file with a second complete session of subj-bravo-02 in the same batch
    appended, as in the published file: its preamble and answers restart trial_index at 0 and
    time_elapsed from the start, so the subject's trial_index 4, 5 and 6 occur twice."""
    b = SECOND_SESSION_SUBJECT
    return [
        *cifar10s_rows(),
        # line 17-18: the second session's preamble, skipped
        _other(b, 3, 0, "pavlovia"),
        _other(b, 3, 1, "instructions", rt="4000.0"),
        # line 19 (J): a second class with a blank prob2 that is also ticked impossible (the
        # "double select" rule counts it; the constructions see no second class)
        _plain(b, 3, 4, 17, "Cat", rt="22000", response=form("Cat", "90", "Dog", "", ["Dog"])),
        # line 20 (K)
        _plain(
            b,
            3,
            5,
            42,
            "Truck",
            rt="23000",
            response=form("Truck", "100", None, "", all_but("Truck")),
        ),
        # line 21 (L): repeat; the top class again as second, with a blank prob2
        _plain(
            b,
            3,
            6,
            42,
            "Truck",
            rt="24000",
            task="rerun_spec_conf",
            response=form("Truck", "70", "Truck", "", ["Cat"]),
        ),
    ]


def cifar10s_two_sessions_csv() -> str:
    return csv_text(CIFAR10S_HEADER, cifar10s_two_sessions_rows())


CIFAR10S_TWO_SESSIONS_LABELS: dict[str, list[list[float]]] = {
    **CIFAR10S_LABELS,
    "cifar10_train_17_Cat.png": [
        *CIFAR10S_LABELS["cifar10_train_17_Cat.png"],
        # J: S = .9, r = .1, P = all but Dog, k = 9 - 1 = 8: .1 / 8 each, Dog nothing
        [0.0125, 0.0125, 0.0125, 0.9, 0.0125, 0, 0.0125, 0.0125, 0.0125, 0.0125],
    ],
    "cifar10_train_42_Truck.png": [
        *CIFAR10S_LABELS["cifar10_train_42_Truck.png"],
        # K: S = 1, P = {Truck}, k = 0: Truck 1
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        # L: S = .7, r = .3, P = all but Cat, k = 9 - 1 = 8: .3 / 8 each, Cat nothing
        [0.0375, 0.0375, 0.0375, 0, 0.0375, 0.0375, 0.0375, 0.0375, 0.0375, 0.7],
    ],
}


# --- H-Mix categorical -------------------------------------------------------------------------

HMIX_STUDY_ID = "fakeprolificstudy0001"


def _mixed(
    subject: str,
    condition: int,
    index: int,
    lam: str,
    l1: str,
    i1: int,
    l2: str,
    i2: int,
    **row: Any,
) -> dict[str, Any]:
    return {
        "trial_type": "survey-html-form",
        "trial_index": index,
        "time_elapsed": 200000 + 1000 * index,
        "subject": subject,
        "study_id": HMIX_STUDY_ID,
        "condition": condition,
        "task": "spec_conf",
        "filename": f"mixed_{lam}_{l1}_{i1}_{l2}_{i2}.png",
        "label1": l1,
        "label2": l2,
        "mixtureCoeff": lam,
        "id1": f"{i1}.0",
        "id2": f"{i2}.0",
        **row,
    }


CAT_DOG = ("0.25", "Cat", 111, "Dog", 222)
BIRD_SHIP = ("0.75", "Bird", 333, "Ship", 444)
AUTO_TRUCK = ("0.5", "Automobile", 555, "Truck", 666)


def hmix_categorical_rows() -> list[dict[str, Any]]:
    a, b = "hsubj-one", "hsubj-two"
    return [
        {
            "trial_type": "pavlovia",
            "trial_index": 0,
            "subject": a,
            "study_id": HMIX_STUDY_ID,
            "condition": 2,
        },
        {
            "trial_type": "preload",
            "trial_index": 1,
            "subject": a,
            "study_id": HMIX_STUDY_ID,
            "condition": 2,
            "success": "True",
            "timeout": "False",
            "failed_images": "[]",
        },
        # line 4 (P)
        _mixed(
            a,
            2,
            2,
            *CAT_DOG,
            rt="30000.5",
            response=form("Truck", "100", None, "", all_but("Airplane", "Automobile", "Truck")),
        ),
        # line 5 (Q)
        _mixed(
            a, 2, 3, *BIRD_SHIP, rt="31000", response=form("Horse", "100", "Deer", "10", ["Dog"])
        ),
        # line 6 (R): repeat
        _mixed(
            a,
            2,
            4,
            *CAT_DOG,
            rt="32000",
            task="rerun_spec_conf",
            response=form(
                "Cat", "60", "Dog", "20", ["Airplane", "Automobile", "Ship", "Truck", "Frog"]
            ),
        ),
        # line 7 (S1): " 50"
        _mixed(
            b,
            5,
            2,
            *CAT_DOG,
            rt="12000",
            response=form("Dog", " 50", "Cat", "50", all_but("Cat", "Dog")),
        ),
        # line 8 (S2): the same class twice
        _mixed(b, 5, 3, *BIRD_SHIP, rt="13000", response=form("Ship", "90", "Ship", "30")),
        # line 9 (S3): "8p" as the second probability
        _mixed(
            b,
            5,
            4,
            *AUTO_TRUCK,
            rt="14000",
            response=form("Bird", "70", "Ship", "8p", ["Airplane"]),
        ),
        # line 10 (S4): repeat; both chosen classes ticked impossible
        _mixed(
            b,
            5,
            5,
            *CAT_DOG,
            rt="15000",
            task="rerun_spec_conf",
            response=form(
                "Cat",
                "40",
                "Dog",
                "30",
                ["Cat", "Dog", "Airplane", "Automobile", "Ship", "Truck", "Frog"],
            ),
        ),
    ]


def hmix_categorical_csv() -> str:
    return csv_text(HMIX_CATEGORICAL_HEADER, hmix_categorical_rows())


_Q = 0.1 / 7 / 1.1  # Q: S = 1.1 > 1: stated − .05 each, + .1/7 to the 7 at zero, / 1.1
_S2 = 0.7 / 9  # S2: 90 overwritten by 30; S = .3, r = .7, k = 9
_S3 = 0.1 / 7 / 1.5  # S3: S = 1.5 > 1: Bird .65, Ship .75, + .1/7 to 7 classes, / 1.5
HMIX_LABELS: dict[str, list[list[float]]] = {
    "mixed_0.25_Cat_111_Dog_222.png": [
        # P: S == 1, k = 2: + .05 to Airplane and Automobile, Truck kept, / 1.1
        [0.05 / 1.1, 0.05 / 1.1, 0, 0, 0, 0, 0, 0, 0, 1 / 1.1],
        # R: S < 1, as cifar10s-top2-clamp
        [0, 0, _T, 0.6, _T, 0.2, 0, _T, 0, 0],
        # S1: S == 1, P = {Cat, Dog}, k = 0: as stated
        [0, 0, 0, 0.5, 0, 0.5, 0, 0, 0, 0],
        # S4: S = .7, r = .3, P = {Bird, Deer, Horse}, k = 3 - 2 = 1: + .3 each, / 1.6
        [0, 0, 0.1875, 0.25, 0.1875, 0.1875, 0, 0.1875, 0, 0],
    ],
    "mixed_0.75_Bird_333_Ship_444.png": [
        [_Q, _Q, _Q, _Q, 0.05 / 1.1, 0, _Q, 0.95 / 1.1, _Q, _Q],  # Q
        [_S2, _S2, _S2, _S2, _S2, _S2, _S2, _S2, 0.3, _S2],  # S2
    ],
    "mixed_0.5_Automobile_555_Truck_666.png": [
        [0, _S3, 0.65 / 1.5, _S3, _S3, _S3, _S3, _S3, 0.5, _S3],  # S3
    ],
}


# --- H-Mix mixing factor -----------------------------------------------------------------------


def _slider_row(
    subject: str,
    index: int,
    lam: str,
    l1: str,
    i1: int,
    l2: str,
    i2: int,
    mixing: Any,
    confidence: Any,
    **row: Any,
) -> dict[str, Any]:
    return {
        "index": index,
        "trial_type": "multiple-slider",
        "trial_index": index,
        "time_elapsed": 50000 + 1000 * index,
        "subject": subject,
        "study_id": "fakeprolificstudy0002",
        "condition": 1,
        "rt": "9000.5",
        "question_order": "[0,1]",
        "responses": json.dumps({"mixingcoeff": mixing, "confidence": confidence}),
        "filename": f"mixed_{lam}_{l1}_{i1}_{l2}_{i2}.png",
        "task": "rate_mixture",
        "label1": l1,
        "label2": l2,
        "mixtureCoeff": lam,
        "id1": f"{i1}.0",
        "id2": f"{i2}.0",
        # the published column carries a ".png" the class pair of the other files does not
        "class_pair": f"{l1}_{i1}_{l2}_{i2}.png",
        **row,
    }


CAT_FROG = ("0.25", "Cat", 7, "Frog", 8)
AIRPLANE_HORSE = ("0.75", "Airplane", 9, "Horse", 10)


def mixing_rows() -> list[dict[str, Any]]:
    a, b = "msubj-one", "msubj-two"
    return [
        {
            "trial_type": "instructions",
            "trial_index": 5,
            "subject": a,
            "study_id": "fakeprolificstudy0002",
            "condition": 1,
        },
        _slider_row(a, 6, *CAT_FROG, 25, 50),  # λ̂ .75, c .5
        _slider_row(a, 7, *AIRPLANE_HORSE, 0, 100),  # λ̂ 1, c 1
        _slider_row(a, 8, *CAT_FROG, 40, 80, task="rerun_rate_mixture"),  # λ̂ .6, c .8
        _slider_row(b, 6, *CAT_FROG, 75, 100),  # λ̂ .25, c 1
        _slider_row(b, 7, *AIRPLANE_HORSE, 50, 20),  # λ̂ .5, c .2
    ]


def mixing_csv() -> str:
    return csv_text(MIXING_HEADER, mixing_rows())


# --- H-Mix midpoints ---------------------------------------------------------------------------


def _construct_row(
    subject: str, condition: int, index: int, pair: str, final: str, start: str, **row: Any
) -> dict[str, Any]:
    return {
        "index": index,
        "trial_type": "reconstruction",
        "trial_index": index,
        "time_elapsed": 70000 + 1000 * index,
        "subject": subject,
        "study_id": "fakeprolificstudy0003",
        "condition": condition,
        "rt": "12000.5",
        "final_value": final,
        "start_value": start,
        "task": "select_create",
        "class_pair": pair,
        "starting_value": start,
        **row,
    }


def construct_rows() -> list[dict[str, Any]]:
    a, b = "csubj-one", "csubj-two"
    return [
        _construct_row(a, 1, 6, "Cat_1_Dog_2", "0.6000000000000001", "0.1"),  # step 6
        _construct_row(a, 1, 7, "Bird_3_Frog_4", "0.5", "0.1"),  # step 5
        _construct_row(a, 1, 8, "Cat_1_Dog_2", "0.5", "0.1", task="rerun_select_create"),  # 5
        _construct_row(b, 2, 6, "Cat_1_Dog_2", "0.30000000000000004", "0.9"),  # step 3
        _construct_row(b, 2, 7, "Bird_3_Frog_4", "0.7999999999999999", "0.9"),  # step 8
    ]


def construct_csv() -> str:
    return csv_text(CONSTRUCT_HEADER, construct_rows())


def _select_row(subject: str, index: int, pair: str, choice: str, **row: Any) -> dict[str, Any]:
    return {
        "index": index,
        "trial_type": "survey-html-form",
        "trial_index": index,
        "time_elapsed": 90000 + 1000 * index,
        "subject": subject,
        "study_id": "fakeprolificstudy0004",
        "condition": 3,
        "rt": "7000.0",
        "response": json.dumps({"select": choice}),
        "task": "select_shuffled",
        "class_pair": pair,
        **row,
    }


def select_rows() -> list[dict[str, Any]]:
    a, b = "dsubj-one", "dsubj-two"
    return [
        _select_row(a, 6, "Cat_1_Dog_2", "select0.3"),
        _select_row(a, 7, "Bird_3_Frog_4", "select0.5"),
        _select_row(a, 8, "Cat_1_Dog_2", "select0.3", task="rerun_select_shuffled"),
        _select_row(b, 6, "Cat_1_Dog_2", "select0.6"),
    ]


def select_csv() -> str:
    return csv_text(SELECT_HEADER, select_rows())


FILES = {
    "cifar10s": cifar10s_csv,
    "hmix-categorical": hmix_categorical_csv,
    "hmix-mixing-factor": mixing_csv,
    "hmix-construct": construct_csv,
    "hmix-select-shuffled": select_csv,
}
