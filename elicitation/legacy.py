"""The published CIFAR-10S and H-Mix raw exports: parse one file into typed records (pure).

Formats and quirks: docs/formats/import.md#legacy; the raw-value rules for the typed
percentages: docs/methods/soft-labels.md#parsing-legacy-values. A file is read row by row with
the csv module, rows of other jsPsych trial types are skipped, and every problem of every row is
collected (with its CSV line number, the header being line 1) so that one LegacyFormatError
lists them all. Nothing here touches Django: `legacy_services.legacy_import` does the writes.

A `subject` is not always one session: the published CIFAR-10S file has a subject who took the
study twice in the same batch, the second run restarting `trial_index` and `time_elapsed`.
Each contiguous run of a subject's rows is therefore its own session (see `_session_of`), and
the file says which subjects were split (`LegacyFile.split_subjects`).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

CIFAR10S: Final = "cifar10s"
HMIX_CATEGORICAL: Final = "hmix-categorical"
HMIX_MIXING_FACTOR: Final = "hmix-mixing-factor"
HMIX_CONSTRUCT: Final = "hmix-construct"
HMIX_SELECT_SHUFFLED: Final = "hmix-select-shuffled"
FORMATS: Final = (
    CIFAR10S,
    HMIX_CATEGORICAL,
    HMIX_MIXING_FACTOR,
    HMIX_CONSTRUCT,
    HMIX_SELECT_SHUFFLED,
)

# docs/user-guide/interfaces.md#conventions: CIFAR-10's classes in the standard order.
CIFAR10_CLASSES: Final = (
    "Airplane",
    "Automobile",
    "Bird",
    "Cat",
    "Deer",
    "Dog",
    "Frog",
    "Horse",
    "Ship",
    "Truck",
)

# Stimulus kinds, as the values of elicitation.models.Stimulus.Kind.
PLAIN: Final = "plain"
MIXED: Final = "mixed"
SERIES: Final = "series"

# Answer kinds, one per interface of the published studies.
CATEGORICAL: Final = "categorical"
MIXING: Final = "mixing"
CONSTRUCT: Final = "construct"
SELECT: Final = "select"

REPEAT_PREFIX: Final = "rerun_"
COMMON_COLUMNS: Final = ("trial_type", "trial_index", "subject", "condition", "rt", "task")
N_STEPS: Final = 11  # midpoint series: λ = step / 10 for steps 0..10
# How far 10·λ may sit from a whole step and still be that step: the published values carry
# float noise such as 0.6000000000000001, never a real in-between value.
STEP_TOLERANCE: Final = 1e-6
MAX_SUBJECT_LENGTH: Final = 128  # Participant.external_id (and platform_study_id)
# A subject's second, third, ... session becomes participant "<subject>#2", "<subject>#3", ...
SESSION_SEPARATOR: Final = "#"
MAX_KEY_LENGTH: Final = 255  # Stimulus.key
# Errors shown in the exception message; every one stays in LegacyFormatError.errors.
MAX_ERRORS_SHOWN: Final = 50

_FLOAT: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PERCENT: Final = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_WHOLE: Final = re.compile(r"[0-9]+(?:\.0*)?")
_CIFAR_FILENAME: Final = re.compile(r"cifar10_(?:train|test)_([0-9]+)_([A-Za-z]+)\.png")
_MIXED_FILENAME: Final = re.compile(
    r"mixed_([0-9]*\.?[0-9]+)_([A-Za-z]+)_([0-9]+)_([A-Za-z]+)_([0-9]+)\.png"
)
_CLASS_PAIR: Final = re.compile(r"([A-Za-z]+)_([0-9]+)_([A-Za-z]+)_([0-9]+)(?:\.png)?")
_SELECT: Final = re.compile(r"select(.+)")

# The categorical form's keys (docs/methods/soft-labels.md#input-record;
# docs/formats/import.md#legacy-cifar10s).
_TOP_PREFIX: Final = "mostProb"
_SECOND_PREFIX: Final = "secondProb"
_NO_SECOND: Final = "secondProbNo"
_IMPOSSIBLE_PREFIX: Final = "improbClassSelect"
_TICKED: Final = frozenset({"1", "on", "true"})
_UNTICKED: Final = frozenset({"", "0", "off", "false"})


# ---------------------------------------------------------------------------------------------
# Results and errors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """One problem: line is the CSV line number where the row starts (the header is line 1)."""

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.message}"


class LegacyFormatError(ValueError):
    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        shown = "\n".join(f"  {e}" for e in self.errors[:MAX_ERRORS_SHOWN])
        more = len(self.errors) - MAX_ERRORS_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.errors)} problem(s) in the file:\n{shown}{tail}")


@dataclass(frozen=True)
class LegacyStimulus:
    """A stimulus as the published file describes it; key is its published name."""

    key: str
    kind: str
    true_class: str = ""
    class1: str = ""
    class2: str = ""
    lam: float | None = None
    source1: str = ""
    source2: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CategoricalAnswer:
    """A parsed categorical response; classes are indices into CIFAR10_CLASSES.

    p1_raw is the typed p1 as a number; p1_pct is what the published pipeline used (a typed 0
    counts as 100). p1_pct and p2_pct may exceed 100: the legacy free-text inputs allowed it.
    """

    top_class: int
    p1_pct: float
    p1_raw: float
    second_class: int | None
    p2_pct: float | None
    impossible: tuple[int, ...]


@dataclass(frozen=True)
class LegacyResponse:
    """One response row. `value` holds the parsed answer of the mixing-factor and midpoint
    formats with exactly the keys the analysis reads; `raw` the row's own fields."""

    line: int
    subject: str
    study_id: str
    condition: int
    trial_index: int
    rt_ms: int
    task: str
    is_repeat: bool
    stimulus_key: str
    raw: dict[str, Any]
    display: dict[str, Any] = field(default_factory=dict)
    categorical: CategoricalAnswer | None = None
    value: dict[str, Any] = field(default_factory=dict)
    session: int = 1  # 1 for a subject's first run of trial_index, 2 for a restart, ...

    @property
    def participant_key(self) -> str:
        """The participant this row belongs to: the subject, or `<subject>#<n>` for its n-th
        session when the subject took the study more than once."""
        return session_key(self.subject, self.session)


@dataclass(frozen=True)
class LegacyFile:
    fmt: str
    classes: tuple[str, ...]
    has_study_id: bool
    stimuli: dict[str, LegacyStimulus]  # by key, in order of first appearance
    responses: list[LegacyResponse]
    n_rows: int  # data rows read (the header not counted)
    n_skipped: int  # rows of other trial types, skipped
    # Subjects whose rows hold more than one session, with the number of sessions.
    split_subjects: dict[str, int] = field(default_factory=dict)


def session_key(subject: str, session: int) -> str:
    return subject if session == 1 else f"{subject}{SESSION_SEPARATOR}{session}"


@dataclass(frozen=True)
class FormatSpec:
    trial_type: str
    task: str
    stimulus_kind: str
    answer: str
    columns: tuple[str, ...]  # required beyond COMMON_COLUMNS
    json_column: str | None


SPECS: Final[Mapping[str, FormatSpec]] = {
    CIFAR10S: FormatSpec(
        "survey-html-form",
        "spec_conf",
        PLAIN,
        CATEGORICAL,
        ("response", "filename", "label", "img_id"),
        "response",
    ),
    HMIX_CATEGORICAL: FormatSpec(
        "survey-html-form",
        "spec_conf",
        MIXED,
        CATEGORICAL,
        ("response", "filename", "label1", "label2", "mixtureCoeff", "id1", "id2"),
        "response",
    ),
    HMIX_MIXING_FACTOR: FormatSpec(
        "multiple-slider",
        "rate_mixture",
        MIXED,
        MIXING,
        ("responses", "filename", "label1", "label2", "mixtureCoeff", "id1", "id2", "class_pair"),
        "responses",
    ),
    HMIX_CONSTRUCT: FormatSpec(
        "reconstruction",
        "select_create",
        SERIES,
        CONSTRUCT,
        ("final_value", "start_value", "class_pair"),
        None,
    ),
    HMIX_SELECT_SHUFFLED: FormatSpec(
        "survey-html-form",
        "select_shuffled",
        SERIES,
        SELECT,
        ("response", "class_pair"),
        "response",
    ),
}

# The column header of the published CIFAR-10S raw file (raw_human_data.csv), in order.
CIFAR10S_HEADER: Final = (
    "",
    "trial_type",
    "trial_index",
    "time_elapsed",
    "subject",
    "condition",
    "rt",
    "view_history",
    "response",
    "filename",
    "task",
    "label",
    "img_id",
)

# Fields of a response row kept in Response.raw (when the file has them).
_RAW_COMMON: Final = (
    "trial_type",
    "trial_index",
    "time_elapsed",
    "subject",
    "study_id",
    "condition",
    "rt",
    "task",
)


class FieldError(ValueError):
    """A problem of one field of a row; `parse` collects them into a LegacyFormatError."""

    def __init__(self, column: str | None, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


# ---------------------------------------------------------------------------------------------
# Values (docs/methods/soft-labels.md#parsing-legacy-values; docs/formats/import.md#legacy)
# ---------------------------------------------------------------------------------------------


def parse_percent(text: object) -> float:
    """A typed percentage as the legacy pipeline read it.

    Surrounding spaces are ignored and the literal "8p" reads as 80. Any other non-numeric text,
    a negative or a non-finite value raises ValueError. Values above 100 are returned as they
    are (the legacy inputs took "2550"); deciding what to do with them is the caller's.
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"expected typed text, got {text!r}")
    s = str(text).strip()
    if s == "8p":
        return 80.0
    if not _PERCENT.fullmatch(s):
        raise ValueError(f"{text!r} is not a non-negative number")
    value = float(s)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _class_index(name: str, classes: Sequence[str], column: str) -> int:
    try:
        return classes.index(name)
    except ValueError:
        raise FieldError(column, f"unknown class name {name!r}") from None


def _whole(text: str, column: str) -> int:
    s = text.strip()
    if not _WHOLE.fullmatch(s):
        raise FieldError(column, f"expected a whole number, got {text!r}")
    return int(float(s))


def _number(text: str, column: str) -> float:
    s = text.strip()
    if not _FLOAT.fullmatch(s):
        raise FieldError(column, f"expected a number, got {text!r}")
    value = float(s)
    if not math.isfinite(value):
        raise FieldError(column, f"expected a finite number, got {text!r}")
    return value


def _unit(text: str, column: str) -> float:
    value = _number(text, column)
    if not 0.0 <= value <= 1.0:
        raise FieldError(column, f"λ must be in 0..1, got {text!r}")
    return value


def lambda_to_step(value: float) -> int:
    """A midpoint λ (weight of image 1) as the integer step 0..10 of the 11-step series.

    The published floats carry rounding noise (0.6000000000000001), so λ is rounded to the
    nearest tenth; a value further than STEP_TOLERANCE from a tenth is not on the series.
    """
    step = round(value * 10)
    if not (0 <= step < N_STEPS and abs(value * 10 - step) <= STEP_TOLERANCE):
        raise ValueError(f"{value!r} is not one of the 11 steps 0.0, 0.1, ..., 1.0")
    return step


def _step(text: str, column: str) -> int:
    value = _number(text, column)
    try:
        return lambda_to_step(value)
    except ValueError as exc:
        raise FieldError(column, str(exc)) from None


def _slider(obj: Mapping[str, Any], key: str, column: str) -> float:
    if key not in obj:
        raise FieldError(column, f"missing {key!r}")
    value = obj[key]
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FieldError(column, f"{key} must be a number, got {value!r}")
    if not 0 <= value <= 100:
        raise FieldError(column, f"{key} must be in 0..100, got {value!r}")
    return float(value)


def _json_object(text: str, column: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FieldError(column, f"unparsable JSON ({exc.msg}): {text[:80]!r}") from None
    if not isinstance(obj, dict):
        raise FieldError(column, f"expected a JSON object, got {text[:80]!r}")
    return obj


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return "" if value is None else str(value)


def parse_categorical(
    obj: Mapping[str, Any], classes: Sequence[str], column: str = "response"
) -> CategoricalAnswer:
    """The CIFAR-10S form: classSelect/prob, classSelect2/prob2, improbClassSelect<Class>.

    No second class when classSelect2 is secondProbNo (or absent), and then whatever was typed
    in prob2 is ignored. A second class chosen with prob2 left empty is kept without a
    probability: the constructions read it as no second class
    (docs/methods/soft-labels.md#parsing-legacy-values), but the CIFAR-10S "double select"
    exclusion rule counts it. A second class equal to the first is kept (quirk Q1 of the legacy
    construction depends on it), as is a chosen class also ticked impossible.
    Raises FieldError (column `column`) for anything else it cannot read.
    """
    top_choice = _text(obj, "classSelect")
    if not top_choice.startswith(_TOP_PREFIX):
        raise FieldError(column, f"classSelect must be mostProb<Class>, got {top_choice!r}")
    top = _class_index(top_choice.removeprefix(_TOP_PREFIX), classes, column)
    try:
        p1_raw = parse_percent(obj.get("prob"))
    except ValueError as exc:
        raise FieldError(column, f"prob: {exc}") from None
    # docs/methods/soft-labels.md#parsing-legacy-values: "map p1 == 0 to 100 (the original
    # pipeline's rule; keep the raw value too)".
    p1 = 100.0 if p1_raw == 0 else p1_raw

    second: int | None = None
    p2: float | None = None
    second_choice = _text(obj, "classSelect2")
    p2_text = _text(obj, "prob2")
    if second_choice not in ("", _NO_SECOND):
        if not second_choice.startswith(_SECOND_PREFIX):
            raise FieldError(
                column,
                f"classSelect2 must be secondProb<Class> or secondProbNo, got {second_choice!r}",
            )
        second = _class_index(second_choice.removeprefix(_SECOND_PREFIX), classes, column)
        if p2_text.strip():
            try:
                p2 = parse_percent(p2_text)
            except ValueError as exc:
                raise FieldError(column, f"prob2: {exc}") from None

    impossible = set()
    for key, value in obj.items():
        if not key.startswith(_IMPOSSIBLE_PREFIX):
            continue
        index = _class_index(key.removeprefix(_IMPOSSIBLE_PREFIX), classes, column)
        flag = str(value).strip().lower()
        if flag in _TICKED:
            impossible.add(index)
        elif flag not in _UNTICKED:
            raise FieldError(column, f"{key} must be '1' when ticked, got {value!r}")
    return CategoricalAnswer(
        top_class=top,
        p1_pct=p1,
        p1_raw=p1_raw,
        second_class=second,
        p2_pct=p2,
        impossible=tuple(sorted(impossible)),
    )


# ---------------------------------------------------------------------------------------------
# Stimuli
# ---------------------------------------------------------------------------------------------


def _test_index(text: str, column: str) -> int:
    # CIFAR-10 test indices are written as float strings ("1128.0").
    return _whole(text, column)


def class_pair_key(label1: str, id1: int, label2: str, id2: int) -> str:
    return f"{label1}_{id1}_{label2}_{id2}"


def parse_class_pair(
    text: str, classes: Sequence[str], column: str = "class_pair"
) -> tuple[str, int, str, int]:
    """`<Label1>_<id1>_<Label2>_<id2>` (a trailing ".png" is tolerated): (l1, id1, l2, id2)."""
    match = _CLASS_PAIR.fullmatch(text.strip())
    if match is None:
        raise FieldError(column, f"expected <Label1>_<id1>_<Label2>_<id2>, got {text!r}")
    label1, id1, label2, id2 = match.groups()
    _class_index(label1, classes, column)
    _class_index(label2, classes, column)
    return label1, int(id1), label2, int(id2)


def _plain_stimulus(cell: Mapping[str, str], classes: Sequence[str]) -> LegacyStimulus:
    filename = cell["filename"].strip()
    label = cell["label"].strip()
    _class_index(label, classes, "label")
    index = _test_index(cell["img_id"], "img_id")
    match = _CIFAR_FILENAME.fullmatch(filename)
    if match is None:
        raise FieldError("filename", f"expected cifar10_train_<index>_<Class>.png: {filename!r}")
    name_index, name_label = int(match.group(1)), match.group(2)
    _class_index(name_label, classes, "filename")
    if (name_index, name_label) != (index, label):
        raise FieldError(
            "filename", f"{filename!r} does not match label {label!r} and img_id {index}"
        )
    return LegacyStimulus(
        key=filename,
        kind=PLAIN,
        true_class=label,
        source1=str(index),
        # The file says "train", but the number is the CIFAR-10 *test* index.
        meta={"cifar10_test_index": index},
    )


def _mixed_stimulus(cell: Mapping[str, str], classes: Sequence[str]) -> LegacyStimulus:
    filename = cell["filename"].strip()
    label1, label2 = cell["label1"].strip(), cell["label2"].strip()
    _class_index(label1, classes, "label1")
    _class_index(label2, classes, "label2")
    lam = _unit(cell["mixtureCoeff"], "mixtureCoeff")
    id1, id2 = _test_index(cell["id1"], "id1"), _test_index(cell["id2"], "id2")
    match = _MIXED_FILENAME.fullmatch(filename)
    if match is None:
        raise FieldError(
            "filename", f"expected mixed_<λ>_<Label1>_<id1>_<Label2>_<id2>.png: {filename!r}"
        )
    lam_text, n_label1, n_id1, n_label2, n_id2 = match.groups()
    _class_index(n_label1, classes, "filename")
    _class_index(n_label2, classes, "filename")
    if (float(lam_text), n_label1, int(n_id1), n_label2, int(n_id2)) != (
        lam,
        label1,
        id1,
        label2,
        id2,
    ):
        raise FieldError(
            "filename", f"{filename!r} does not match the label, mixtureCoeff and id columns"
        )
    pair = class_pair_key(label1, id1, label2, id2)
    if "class_pair" in cell:
        given = parse_class_pair(cell["class_pair"], classes)
        if class_pair_key(*given) != pair:
            raise FieldError("class_pair", f"{cell['class_pair']!r} does not match {filename!r}")
    return LegacyStimulus(
        key=filename,
        kind=MIXED,
        class1=label1,
        class2=label2,
        lam=lam,
        source1=str(id1),
        source2=str(id2),
        meta={
            "lam_text": lam_text,
            "class_pair": pair,
            "cifar10_test_index1": id1,
            "cifar10_test_index2": id2,
            "mixup_label": [lam, 1 - lam],
        },
    )


def _series_stimulus(cell: Mapping[str, str], classes: Sequence[str]) -> LegacyStimulus:
    label1, id1, label2, id2 = parse_class_pair(cell["class_pair"], classes)
    pair = class_pair_key(label1, id1, label2, id2)
    return LegacyStimulus(
        key=pair,
        kind=SERIES,
        class1=label1,
        class2=label2,
        source1=str(id1),
        source2=str(id2),
        meta={
            "class_pair": pair,
            "steps": N_STEPS,
            "cifar10_test_index1": id1,
            "cifar10_test_index2": id2,
        },
    )


_STIMULUS_PARSERS: Final = {
    PLAIN: _plain_stimulus,
    MIXED: _mixed_stimulus,
    SERIES: _series_stimulus,
}


# ---------------------------------------------------------------------------------------------
# Rows and files
# ---------------------------------------------------------------------------------------------


@dataclass
class _Session:
    number: int
    condition: int | None
    study_id: str
    first_line: int
    trial_index: int  # of the session's latest row
    time_elapsed: float | None
    line: int


@dataclass
class _State:
    stimuli: dict[str, LegacyStimulus] = field(default_factory=dict)
    sessions: dict[str, _Session] = field(default_factory=dict)  # each subject's current one


def _time_elapsed(cell: Mapping[str, str]) -> float | None:
    # Optional and only used to tell a restart from a duplicate, so an unreadable one is None.
    text = cell.get("time_elapsed", "").strip()
    return float(text) if _FLOAT.fullmatch(text) else None


def _session_of(
    state: _State,
    subject: str,
    trial_index: int,
    time_elapsed: float | None,
    condition: int | None,
    study_id: str,
    line: int,
) -> tuple[_Session | None, RowError | None]:
    """The session a subject's row belongs to (a new one when the row restarts the run).

    jsPsych numbers a session's trials 0, 1, 2, ... and its clock `time_elapsed` only grows,
    so a row whose trial_index is not above the previous row's of that subject, and whose
    time_elapsed went back as well, begins the subject's next session. A trial_index going
    back while the clock runs on is no restart but a broken file (a duplicated row, say), and
    an error. Sessions are runs of consecutive rows of a subject in file order, which is how
    the published files are laid out (one session's rows after the other's).
    """
    current = state.sessions.get(subject)
    if current is None or trial_index > current.trial_index:
        if current is None:
            current = _Session(1, condition, study_id, line, trial_index, time_elapsed, line)
            state.sessions[subject] = current
        current.trial_index, current.time_elapsed, current.line = trial_index, time_elapsed, line
        return current, None
    restarted = (
        time_elapsed is None or current.time_elapsed is None or time_elapsed < current.time_elapsed
    )
    if not restarted:
        return None, RowError(
            line,
            "trial_index",
            f"subject {subject!r} has trial_index {current.trial_index} on line {current.line} "
            f"and {trial_index} here, but time_elapsed did not restart (not a new session)",
        )
    new = _Session(current.number + 1, condition, study_id, line, trial_index, time_elapsed, line)
    state.sessions[subject] = new
    return new, None


def _response(
    spec: FormatSpec, cell: Mapping[str, str], line: int, classes: Sequence[str], state: _State
) -> tuple[LegacyResponse | None, list[RowError]]:
    errors: list[RowError] = []

    def attempt(parse: Any, *args: Any) -> Any:
        try:
            return parse(*args)
        except FieldError as problem:
            errors.append(RowError(line, problem.column, problem.message))
            return None

    subject = cell["subject"].strip()
    if not subject:
        errors.append(RowError(line, "subject", "empty subject"))
    elif len(subject) > MAX_SUBJECT_LENGTH:
        errors.append(RowError(line, "subject", f"longer than {MAX_SUBJECT_LENGTH} characters"))
    study_id = cell.get("study_id", "").strip()
    if len(study_id) > MAX_SUBJECT_LENGTH:
        errors.append(RowError(line, "study_id", f"longer than {MAX_SUBJECT_LENGTH} characters"))
    condition = attempt(_whole, cell["condition"], "condition")
    trial_index = attempt(_whole, cell["trial_index"], "trial_index")
    rt = attempt(_number, cell["rt"], "rt")
    if rt is not None and rt < 0:
        errors.append(RowError(line, "rt", f"a response time cannot be negative: {cell['rt']!r}"))
        rt = None
    stimulus = attempt(_STIMULUS_PARSERS[spec.stimulus_kind], cell, classes)
    obj = (
        attempt(_json_object, cell[spec.json_column], spec.json_column) if spec.json_column else {}
    )

    categorical: CategoricalAnswer | None = None
    value: dict[str, Any] = {}
    display: dict[str, Any] = {}
    if spec.answer == CATEGORICAL and obj is not None:
        categorical = attempt(parse_categorical, obj, classes, "response")
    elif spec.answer == MIXING and obj is not None:
        mixing = attempt(_slider, obj, "mixingcoeff", "responses")
        confidence = attempt(_slider, obj, "confidence", "responses")
        if mixing is not None and confidence is not None:
            # docs/formats/import.md#legacy-hmix-mixing-factor: λ̂ = 1 − mixingcoeff/100;
            # (100 − v)/100 is one correctly rounded division, as in
            # analysis.summaries.lam_hat_from_slider.
            value = {"lam_hat": (100 - mixing) / 100, "confidence": confidence / 100}
    elif spec.answer == CONSTRUCT:
        start = attempt(_step, cell["start_value"], "start_value")
        final = attempt(_step, cell["final_value"], "final_value")
        if start is not None and final is not None:
            value = {"start_step": start, "final_step": final}
            display = {"start_step": start}
    elif spec.answer == SELECT and obj is not None:
        choice = _text(obj, "select").strip()
        match = _SELECT.fullmatch(choice)
        if match is None:
            errors.append(RowError(line, "response", f"expected select<λ>, got {choice!r}"))
        else:
            step = attempt(_step, match.group(1), "response")
            if step is not None:
                value = {"chosen_step": step}

    if stimulus is not None and len(stimulus.key) > MAX_KEY_LENGTH:
        errors.append(RowError(line, None, f"stimulus name longer than {MAX_KEY_LENGTH}"))
        stimulus = None
    if stimulus is not None:
        # Every field of a stimulus is checked against its key (filename or class pair), so the
        # first row naming a key describes it for all the others.
        state.stimuli.setdefault(stimulus.key, stimulus)
    session: _Session | None = None
    if subject and trial_index is not None:
        session, problem = _session_of(
            state, subject, trial_index, _time_elapsed(cell), condition, study_id, line
        )
        if problem is not None:
            errors.append(problem)
    if session is not None and session.number > 1:
        key = session_key(subject, session.number)
        if len(key) > MAX_SUBJECT_LENGTH:
            errors.append(
                RowError(line, "subject", f"session id {key!r} longer than {MAX_SUBJECT_LENGTH}")
            )
    if session is not None and condition is not None:
        if session.condition is None:
            session.condition = condition
        elif (session.condition, session.study_id) != (condition, study_id):
            errors.append(
                RowError(
                    line,
                    "condition",
                    f"subject {subject!r} has condition {condition} and study_id {study_id!r} "
                    f"here but {session.condition} and {session.study_id!r} on line "
                    f"{session.first_line} of the same session",
                )
            )
    if errors:
        return None, errors
    # Every one of these was parsed (an unparsed one left an error behind).
    assert session is not None
    assert stimulus is not None
    assert condition is not None
    assert trial_index is not None
    assert rt is not None
    raw: dict[str, Any] = {c: cell[c] for c in (*_RAW_COMMON, *spec.columns) if c in cell}
    if spec.json_column:
        raw[spec.json_column] = obj
    task = cell["task"].strip()
    return (
        LegacyResponse(
            line=line,
            subject=subject,
            study_id=study_id,
            condition=condition,
            trial_index=trial_index,
            rt_ms=round(rt),
            task=task,
            is_repeat=task.startswith(REPEAT_PREFIX),
            stimulus_key=stimulus.key,
            raw=raw,
            display=display,
            categorical=categorical,
            value=value,
            session=session.number,
        ),
        [],
    )


def parse(
    fmt: str, lines: Iterable[str], *, classes: Sequence[str] = CIFAR10_CLASSES
) -> LegacyFile:
    """Parse a whole file (an iterable of text lines, e.g. a file opened with newline="").

    Raises LegacyFormatError listing every problem with its line number; a file with missing
    columns stops at the header.
    """
    if fmt not in SPECS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    spec = SPECS[fmt]
    classes = tuple(classes)
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise LegacyFormatError([RowError(1, None, "the file is empty")])
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0].removeprefix("\ufeff")
    missing = [c for c in (*COMMON_COLUMNS, *spec.columns) if c not in header]
    if missing:
        raise LegacyFormatError(
            [RowError(1, None, f"missing column(s) for {fmt}: {', '.join(missing)}")]
        )
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        index.setdefault(name, i)
    index.pop("", None)  # the unnamed leading index column
    i_type, i_task = index["trial_type"], index["task"]
    tasks = {spec.task, REPEAT_PREFIX + spec.task}

    state = _State()
    responses: list[LegacyResponse] = []
    errors: list[RowError] = []
    n_rows = n_skipped = 0
    last_line = reader.line_num
    for row in reader:
        line, last_line = last_line + 1, reader.line_num
        if not row:
            continue  # a blank line
        n_rows += 1
        if len(row) != len(header):
            errors.append(
                RowError(line, None, f"{len(row)} fields where the header has {len(header)}")
            )
            continue
        if row[i_type].strip() != spec.trial_type or row[i_task].strip() not in tasks:
            n_skipped += 1
            continue
        cell = {name: row[i] for name, i in index.items()}
        response, row_errors = _response(spec, cell, line, classes, state)
        if response is None:
            errors.extend(row_errors)
        else:
            responses.append(response)
    if errors:
        raise LegacyFormatError(errors)
    return LegacyFile(
        fmt=fmt,
        classes=classes,
        has_study_id="study_id" in index,
        stimuli=state.stimuli,
        responses=responses,
        n_rows=n_rows,
        n_skipped=n_skipped,
        split_subjects={subject: s.number for subject, s in state.sessions.items() if s.number > 1},
    )
