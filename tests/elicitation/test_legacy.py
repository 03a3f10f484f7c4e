from typing import Any

import pytest

from elicitation import legacy
from elicitation.legacy import CategoricalAnswer, LegacyFormatError, LegacyStimulus, RowError
from tests import legacy_fixtures as fx
from tests.legacy_fixtures import (
    AIRPLANE,
    AUTOMOBILE,
    BIRD,
    CAT,
    CLASSES,
    DEER,
    DOG,
    FROG,
    HORSE,
    SHIP,
    TRUCK,
)


def _parse(fmt: str, text: str) -> legacy.LegacyFile:
    return legacy.parse(fmt, fx.lines(text))


def _errors(fmt: str, text: str) -> list[RowError]:
    with pytest.raises(LegacyFormatError) as exc:
        _parse(fmt, text)
    return exc.value.errors


# --- values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80", 80.0),
        (" 80", 80.0),
        ("80 ", 80.0),
        ("8p", 80.0),
        (" 8p ", 80.0),
        ("0", 0.0),
        ("12.5", 12.5),
        ("2550", 2550.0),
        (60, 60.0),
    ],
)
def test_parse_percent_reads_the_typed_text_as_the_legacy_pipeline(
    text: Any, expected: float
) -> None:
    # when / then
    assert legacy.parse_percent(text) == expected


@pytest.mark.parametrize("text", ["", " ", "abc", "-5", "80%", "1_000", "nan", "inf", None, True])
def test_parse_percent_refuses_what_is_not_a_percentage(text: Any) -> None:
    # when / then
    with pytest.raises(ValueError):  # noqa: PT011 (the messages are checked through parse())
        legacy.parse_percent(text)


@pytest.mark.parametrize(
    ("value", "step"),
    [
        (0.0, 0),
        (0.1, 1),
        (0.6000000000000001, 6),
        (0.30000000000000004, 3),
        (0.7999999999999999, 8),
        (5.551115123125783e-17, 0),
        (1.0, 10),
    ],
)
def test_lambda_to_step_rounds_float_noise_to_the_series_step(value: float, step: int) -> None:
    # when / then
    assert legacy.lambda_to_step(value) == step


@pytest.mark.parametrize("value", [0.55, 1.1, -0.1, 0.123])
def test_lambda_to_step_refuses_a_value_off_the_series(value: float) -> None:
    # when / then
    with pytest.raises(ValueError, match="is not one of the 11 steps"):
        legacy.lambda_to_step(value)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            {
                "classSelect": "mostProbCat",
                "prob": "60",
                "classSelect2": "secondProbDog",
                "prob2": "20",
                "improbClassSelectShip": "1",
                "improbClassSelectAirplane": "1",
            },
            CategoricalAnswer(CAT, 60.0, 60.0, DOG, 20.0, (AIRPLANE, SHIP)),
        ),
        # "no alternative": whatever was typed in prob2 is ignored
        (
            {
                "classSelect": "mostProbTruck",
                "prob": " 80",
                "classSelect2": "secondProbNo",
                "prob2": "15",
            },
            CategoricalAnswer(TRUCK, 80.0, 80.0, None, None, ()),
        ),
        # a second class with an empty probability is kept, without a probability
        (
            {
                "classSelect": "mostProbCat",
                "prob": "8p",
                "classSelect2": "secondProbDeer",
                "prob2": " ",
            },
            CategoricalAnswer(CAT, 80.0, 80.0, DEER, None, ()),
        ),
        # a typed 0 counts as 100, and the typed value is kept
        (
            {
                "classSelect": "mostProbHorse",
                "prob": "0",
                "classSelect2": "secondProbNo",
                "prob2": "",
            },
            CategoricalAnswer(HORSE, 100.0, 0.0, None, None, ()),
        ),
        # the same class twice, and chosen classes ticked impossible, are kept as given
        (
            {
                "classSelect": "mostProbDeer",
                "prob": "75",
                "classSelect2": "secondProbDeer",
                "prob2": "25",
                "improbClassSelectDeer": "1",
            },
            CategoricalAnswer(DEER, 75.0, 75.0, DEER, 25.0, (DEER,)),
        ),
        # out-of-range typed text is kept for the exclusion rules to flag
        (
            {
                "classSelect": "mostProbFrog",
                "prob": "2550",
                "classSelect2": "secondProbBird",
                "prob2": "300",
            },
            CategoricalAnswer(FROG, 2550.0, 2550.0, BIRD, 300.0, ()),
        ),
        # no classSelect2 at all: no second class
        (
            {"classSelect": "mostProbShip", "prob": "100", "improbClassSelectBird": "0"},
            CategoricalAnswer(SHIP, 100.0, 100.0, None, None, ()),
        ),
    ],
)
def test_parse_categorical_applies_the_raw_value_rules(
    answer: dict[str, str], expected: CategoricalAnswer
) -> None:
    # when
    parsed = legacy.parse_categorical(answer, CLASSES)
    # then
    assert parsed == expected


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"prob": "60"}, "classSelect must be mostProb<Class>, got ''"),
        ({"classSelect": "Cat", "prob": "60"}, "classSelect must be mostProb<Class>, got 'Cat'"),
        ({"classSelect": "mostProbCat"}, "prob: expected typed text, got None"),
        (
            {"classSelect": "mostProbCat", "prob": "60", "classSelect2": "Dog", "prob2": "5"},
            "classSelect2 must be secondProb<Class> or secondProbNo, got 'Dog'",
        ),
        (
            {
                "classSelect": "mostProbCat",
                "prob": "60",
                "classSelect2": "secondProbDog",
                "prob2": "lots",
            },
            "prob2: 'lots' is not a non-negative number",
        ),
        (
            {"classSelect": "mostProbCat", "prob": "60", "improbClassSelectDog": "yes"},
            "improbClassSelectDog must be '1' when ticked, got 'yes'",
        ),
    ],
)
def test_parse_categorical_refuses_an_unreadable_form(answer: dict[str, str], message: str) -> None:
    # when
    with pytest.raises(legacy.FieldError) as exc:
        legacy.parse_categorical(answer, CLASSES)
    # then
    assert (exc.value.column, exc.value.message) == ("response", message)


# --- whole files -------------------------------------------------------------------------------


def test_cifar10s_file_is_parsed_into_responses_and_plain_stimuli() -> None:
    # when
    parsed = _parse("cifar10s", fx.cifar10s_csv())
    # then
    assert (parsed.fmt, parsed.n_rows, parsed.n_skipped, parsed.has_study_id) == (
        "cifar10s",
        15,
        6,
        False,
    )
    assert list(parsed.stimuli.values()) == [
        LegacyStimulus(
            key="cifar10_train_17_Cat.png",
            kind="plain",
            true_class="Cat",
            source1="17",
            meta={"cifar10_test_index": 17},
        ),
        LegacyStimulus(
            key="cifar10_train_42_Truck.png",
            kind="plain",
            true_class="Truck",
            source1="42",
            meta={"cifar10_test_index": 42},
        ),
        LegacyStimulus(
            key="cifar10_train_5_Airplane.png",
            kind="plain",
            true_class="Airplane",
            source1="5",
            meta={"cifar10_test_index": 5},
        ),
        LegacyStimulus(
            key="cifar10_train_64_Ship.png",
            kind="plain",
            true_class="Ship",
            source1="64",
            meta={"cifar10_test_index": 64},
        ),
    ]
    summary = [
        (r.line, r.subject, r.condition, r.trial_index, r.rt_ms, r.is_repeat, r.stimulus_key)
        for r in parsed.responses
    ]
    assert summary == [
        (6, "subj-alpha-01", 3, 4, 41235, False, "cifar10_train_17_Cat.png"),
        (7, "subj-alpha-01", 3, 5, 30000, False, "cifar10_train_42_Truck.png"),
        (9, "subj-alpha-01", 3, 7, 20000, True, "cifar10_train_17_Cat.png"),
        (11, "subj-bravo-02", 3, 4, 15000, False, "cifar10_train_17_Cat.png"),
        (12, "subj-bravo-02", 3, 5, 16000, False, "cifar10_train_42_Truck.png"),
        (13, "subj-bravo-02", 3, 6, 17000, False, "cifar10_train_5_Airplane.png"),
        (14, "subj-charlie-03", 4, 4, 18000, False, "cifar10_train_5_Airplane.png"),
        (15, "subj-charlie-03", 4, 5, 19000, False, "cifar10_train_42_Truck.png"),
        (16, "subj-charlie-03", 4, 6, 21000, False, "cifar10_train_64_Ship.png"),
    ]
    assert [r.categorical for r in parsed.responses] == [
        CategoricalAnswer(CAT, 60.0, 60.0, DOG, 20.0, (AIRPLANE, AUTOMOBILE, FROG, SHIP, TRUCK)),
        CategoricalAnswer(TRUCK, 80.0, 80.0, None, None, (BIRD, CAT, DEER, DOG, FROG, HORSE, SHIP)),
        CategoricalAnswer(CAT, 80.0, 80.0, DEER, None, ()),  # prob2 left blank
        CategoricalAnswer(DEER, 75.0, 75.0, DEER, 25.0, (AIRPLANE, AUTOMOBILE, SHIP, TRUCK)),
        CategoricalAnswer(HORSE, 100.0, 100.0, DEER, 10.0, (DOG,)),
        CategoricalAnswer(
            CAT,
            100.0,
            0.0,
            None,
            None,
            (AIRPLANE, AUTOMOBILE, BIRD, DEER, DOG, FROG, HORSE, SHIP, TRUCK),
        ),
        CategoricalAnswer(SHIP, 20.0, 20.0, TRUCK, 10.0, ()),
        CategoricalAnswer(
            CAT, 60.0, 60.0, DOG, 20.0, (AIRPLANE, AUTOMOBILE, BIRD, DEER, FROG, HORSE, SHIP, TRUCK)
        ),
        CategoricalAnswer(TRUCK, 2550.0, 2550.0, None, None, tuple(range(10))),
    ]


def test_cifar10s_raw_keeps_the_row_fields_and_the_typed_answer() -> None:
    # when
    parsed = _parse("cifar10s", fx.cifar10s_csv())
    # then
    assert parsed.responses[1].raw == {
        "trial_type": "survey-html-form",
        "trial_index": "5",
        "time_elapsed": "105000",
        "subject": "subj-alpha-01",
        "condition": "3",
        "rt": "30000.4",
        "task": "spec_conf",
        "response": {
            "classSelect": "mostProbTruck",
            "prob": " 80",
            "classSelect2": "secondProbNo",
            "prob2": "15",
            **{f"improbClassSelect{c}": "1" for c in fx.all_but("Airplane", "Automobile", "Truck")},
        },
        "filename": "cifar10_train_42_Truck.png",
        "label": "Truck",
        "img_id": "42.0",
    }


def test_hmix_categorical_file_has_mixed_stimuli_and_a_study_id() -> None:
    # when
    parsed = _parse("hmix-categorical", fx.hmix_categorical_csv())
    # then
    assert (parsed.n_rows, parsed.n_skipped, len(parsed.responses), parsed.has_study_id) == (
        9,
        2,
        7,
        True,
    )
    assert parsed.stimuli["mixed_0.25_Cat_111_Dog_222.png"] == LegacyStimulus(
        key="mixed_0.25_Cat_111_Dog_222.png",
        kind="mixed",
        class1="Cat",
        class2="Dog",
        lam=0.25,
        source1="111",
        source2="222",
        meta={
            "lam_text": "0.25",
            "class_pair": "Cat_111_Dog_222",
            "cifar10_test_index1": 111,
            "cifar10_test_index2": 222,
            "mixup_label": [0.25, 0.75],
        },
    )
    assert {r.study_id for r in parsed.responses} == {fx.HMIX_STUDY_ID}
    assert [r.is_repeat for r in parsed.responses] == [
        False,
        False,
        True,
        False,
        False,
        False,
        True,
    ]
    assert parsed.responses[5].categorical == CategoricalAnswer(BIRD, 70.0, 70.0, SHIP, 80.0, (0,))


def test_mixing_factor_file_gives_lambda_hat_and_confidence() -> None:
    # when
    parsed = _parse("hmix-mixing-factor", fx.mixing_csv())
    # then
    assert (parsed.n_rows, parsed.n_skipped) == (6, 1)
    assert [(r.subject, r.is_repeat, r.value) for r in parsed.responses] == [
        ("msubj-one", False, {"lam_hat": 0.75, "confidence": 0.5}),
        ("msubj-one", False, {"lam_hat": 1.0, "confidence": 1.0}),
        ("msubj-one", True, {"lam_hat": 0.6, "confidence": 0.8}),
        ("msubj-two", False, {"lam_hat": 0.25, "confidence": 1.0}),
        ("msubj-two", False, {"lam_hat": 0.5, "confidence": 0.2}),
    ]
    assert parsed.responses[0].raw["responses"] == {"mixingcoeff": 25, "confidence": 50}
    # the ".png" of the class_pair column is not part of the pair
    assert parsed.stimuli["mixed_0.25_Cat_7_Frog_8.png"].meta["class_pair"] == "Cat_7_Frog_8"
    assert parsed.stimuli["mixed_0.75_Airplane_9_Horse_10.png"].lam == 0.75


def test_construct_file_rounds_final_values_to_integer_steps() -> None:
    # when
    parsed = _parse("hmix-construct", fx.construct_csv())
    # then
    assert [(r.subject, r.is_repeat, r.value, r.display) for r in parsed.responses] == [
        ("csubj-one", False, {"start_step": 1, "final_step": 6}, {"start_step": 1}),
        ("csubj-one", False, {"start_step": 1, "final_step": 5}, {"start_step": 1}),
        ("csubj-one", True, {"start_step": 1, "final_step": 5}, {"start_step": 1}),
        ("csubj-two", False, {"start_step": 9, "final_step": 3}, {"start_step": 9}),
        ("csubj-two", False, {"start_step": 9, "final_step": 8}, {"start_step": 9}),
    ]
    assert parsed.responses[0].raw["final_value"] == "0.6000000000000001"
    assert parsed.stimuli["Cat_1_Dog_2"] == LegacyStimulus(
        key="Cat_1_Dog_2",
        kind="series",
        class1="Cat",
        class2="Dog",
        source1="1",
        source2="2",
        meta={
            "class_pair": "Cat_1_Dog_2",
            "steps": 11,
            "cifar10_test_index1": 1,
            "cifar10_test_index2": 2,
        },
    )


def test_select_file_reads_the_step_after_the_word_select() -> None:
    # when
    parsed = _parse("hmix-select-shuffled", fx.select_csv())
    # then
    assert [(r.stimulus_key, r.is_repeat, r.value) for r in parsed.responses] == [
        ("Cat_1_Dog_2", False, {"chosen_step": 3}),
        ("Bird_3_Frog_4", False, {"chosen_step": 5}),
        ("Cat_1_Dog_2", True, {"chosen_step": 3}),
        ("Cat_1_Dog_2", False, {"chosen_step": 6}),
    ]
    assert list(parsed.stimuli) == ["Cat_1_Dog_2", "Bird_3_Frog_4"]


def test_a_byte_order_mark_and_blank_lines_are_tolerated() -> None:
    # given
    text = "\ufeff" + fx.select_csv() + "\n"
    # when
    parsed = _parse("hmix-select-shuffled", text)
    # then
    assert len(parsed.responses) == 4


# --- malformed files -----------------------------------------------------------------------------


def _with(rows: list[dict[str, Any]], index: int, **changes: Any) -> list[dict[str, Any]]:
    rows[index] = {**rows[index], **changes}
    return rows


@pytest.mark.parametrize(
    ("fmt", "header", "missing"),
    [
        ("cifar10s", fx.CIFAR10S_HEADER, "img_id"),
        ("hmix-categorical", fx.HMIX_CATEGORICAL_HEADER, "mixtureCoeff"),
        ("hmix-mixing-factor", fx.MIXING_HEADER, "responses"),
        ("hmix-construct", fx.CONSTRUCT_HEADER, "final_value"),
        ("hmix-select-shuffled", fx.SELECT_HEADER, "subject"),
    ],
)
def test_a_missing_column_is_reported_on_the_header_line(
    fmt: str, header: list[str], missing: str
) -> None:
    # given
    text = fx.csv_text([c for c in header if c != missing], [])
    # when
    errors = _errors(fmt, text)
    # then
    assert errors == [RowError(1, None, f"missing column(s) for {fmt}: {missing}")]


@pytest.mark.parametrize(
    ("fmt", "rows", "expected"),
    [
        (
            "cifar10s",
            _with(fx.cifar10s_rows(), 4, response='{"classSelect": "mostProbCat", "prob": '),
            RowError(
                6,
                "response",
                'unparsable JSON (Expecting value): \'{"classSelect": "mostProbCat", "prob": \'',
            ),
        ),
        (
            "cifar10s",
            _with(fx.cifar10s_rows(), 5, response=fx.form("Zebra", "60")),
            RowError(7, "response", "unknown class name 'Zebra'"),
        ),
        (
            "cifar10s",
            _with(fx.cifar10s_rows(), 5, response=fx.form("Cat", "60", "Unicorn", "20")),
            RowError(7, "response", "unknown class name 'Unicorn'"),
        ),
        (
            "hmix-categorical",
            _with(fx.hmix_categorical_rows(), 3, response=fx.form("Cat", "60", None, "", ["Lion"])),
            RowError(5, "response", "unknown class name 'Lion'"),
        ),
        (
            "hmix-categorical",
            _with(fx.hmix_categorical_rows(), 2, response=fx.form("Cat", "sixty")),
            RowError(4, "response", "prob: 'sixty' is not a non-negative number"),
        ),
        (
            "cifar10s",
            _with(fx.cifar10s_rows(), 4, label="Kangaroo"),
            RowError(6, "label", "unknown class name 'Kangaroo'"),
        ),
        (
            "hmix-mixing-factor",
            _with(fx.mixing_rows(), 2, responses='{"mixingcoeff": 101, "confidence": 50}'),
            RowError(4, "responses", "mixingcoeff must be in 0..100, got 101"),
        ),
        (
            "hmix-mixing-factor",
            _with(fx.mixing_rows(), 4, responses='{"mixingcoeff": 10, "confidence": -1}'),
            RowError(6, "responses", "confidence must be in 0..100, got -1"),
        ),
        (
            "hmix-mixing-factor",
            _with(fx.mixing_rows(), 1, responses='{"mixingcoeff": 10}'),
            RowError(3, "responses", "missing 'confidence'"),
        ),
        (
            "hmix-construct",
            _with(fx.construct_rows(), 1, final_value="0.55"),
            RowError(3, "final_value", "0.55 is not one of the 11 steps 0.0, 0.1, ..., 1.0"),
        ),
        (
            "hmix-construct",
            _with(fx.construct_rows(), 0, class_pair="Cat_1_Wolf_2"),
            RowError(2, "class_pair", "unknown class name 'Wolf'"),
        ),
        (
            "hmix-select-shuffled",
            _with(fx.select_rows(), 3, response='{"select": "selectmiddle"}'),
            RowError(5, "response", "expected a number, got 'middle'"),
        ),
        (
            "hmix-select-shuffled",
            _with(fx.select_rows(), 3, response="not json"),
            RowError(5, "response", "unparsable JSON (Expecting value): 'not json'"),
        ),
    ],
)
def test_a_bad_row_is_refused_with_its_line_and_problem(
    fmt: str, rows: list[dict[str, Any]], expected: RowError
) -> None:
    # given
    header = {
        "cifar10s": fx.CIFAR10S_HEADER,
        "hmix-categorical": fx.HMIX_CATEGORICAL_HEADER,
        "hmix-mixing-factor": fx.MIXING_HEADER,
        "hmix-construct": fx.CONSTRUCT_HEADER,
        "hmix-select-shuffled": fx.SELECT_HEADER,
    }[fmt]
    # when
    errors = _errors(fmt, fx.csv_text(header, rows))
    # then
    assert errors == [expected]


def test_every_problem_of_every_row_is_collected_in_one_error() -> None:
    # given
    rows = fx.cifar10s_rows()
    rows = _with(rows, 4, response="{oops", rt="")
    rows = _with(rows, 11, response=fx.form("Cat", "60", None, "", ["Dragon"]))
    rows = _with(rows, 14, img_id="65.0")
    # when
    with pytest.raises(LegacyFormatError) as exc:
        _parse("cifar10s", fx.csv_text(fx.CIFAR10S_HEADER, rows))
    # then
    assert exc.value.errors == [
        RowError(6, "rt", "expected a number, got ''"),
        RowError(
            6,
            "response",
            "unparsable JSON (Expecting property name enclosed in double quotes): '{oops'",
        ),
        RowError(13, "response", "unknown class name 'Dragon'"),
        RowError(
            16, "filename", "'cifar10_train_64_Ship.png' does not match label 'Ship' and img_id 65"
        ),
    ]
    assert str(exc.value).splitlines()[0] == "4 problem(s) in the file:"
    assert "  line 13, column 'response': unknown class name 'Dragon'" in str(exc.value)


def test_a_filename_that_contradicts_its_columns_is_refused() -> None:
    # given a mixing-factor row naming one image in `filename` and another in the columns
    rows = _with(fx.mixing_rows(), 4, filename="mixed_0.75_Airplane_9_Horse_10.png")
    # when
    errors = _errors("hmix-mixing-factor", fx.csv_text(fx.MIXING_HEADER, rows))
    # then
    assert errors == [
        RowError(
            6,
            "filename",
            "'mixed_0.75_Airplane_9_Horse_10.png' does not match the label, mixtureCoeff and "
            "id columns",
        )
    ]


def test_a_repeated_trial_index_or_a_changing_condition_is_refused() -> None:
    # given
    rows = fx.select_rows()
    rows = _with(rows, 1, trial_index=6)
    rows = _with(rows, 2, condition=4)
    # when
    errors = _errors("hmix-select-shuffled", fx.csv_text(fx.SELECT_HEADER, rows))
    # then
    assert errors == [
        RowError(
            3,
            "trial_index",
            "subject 'dsubj-one' has trial_index 6 on line 2 and 6 here, but time_elapsed did "
            "not restart (not a new session)",
        ),
        RowError(
            4,
            "condition",
            "subject 'dsubj-one' has condition 4 and study_id 'fakeprolificstudy0004' here but 3 "
            "and 'fakeprolificstudy0004' on line 2 of the same session",
        ),
    ]


def test_a_subject_whose_trial_index_restarts_is_split_into_sessions() -> None:
    # given the CIFAR-10S file with a second session of one subject appended
    text = fx.cifar10s_two_sessions_csv()
    # when
    parsed = legacy.parse("cifar10s", fx.lines(text))
    # then
    assert parsed.split_subjects == {"subj-bravo-02": 2}
    bravo = [
        (r.line, r.trial_index, r.session, r.participant_key)
        for r in parsed.responses
        if r.subject == "subj-bravo-02"
    ]
    assert bravo == [
        (11, 4, 1, "subj-bravo-02"),
        (12, 5, 1, "subj-bravo-02"),
        (13, 6, 1, "subj-bravo-02"),
        (19, 4, 2, "subj-bravo-02#2"),
        (20, 5, 2, "subj-bravo-02#2"),
        (21, 6, 2, "subj-bravo-02#2"),
    ]
    assert {r.session for r in parsed.responses if r.subject != "subj-bravo-02"} == {1}
    # the blank-p2 second classes are kept (Dog on line 19, Truck on line 21)
    second = {r.line: (r.categorical.second_class, r.categorical.p2_pct) for r in parsed.responses}
    assert (second[19], second[21]) == ((DOG, None), (TRUCK, None))


def test_a_session_may_sit_in_another_batch_but_not_change_batch_midway() -> None:
    # given a second session of subj-bravo-02 in batch 5, one of whose rows says batch 6
    rows = fx.cifar10s_two_sessions_rows()
    for i in range(len(rows) - 5, len(rows)):
        rows = _with(rows, i, condition=5)
    rows = _with(rows, len(rows) - 1, condition=6)
    # when
    errors = _errors("cifar10s", fx.csv_text(fx.CIFAR10S_HEADER, rows))
    # then only the row changing batch within its session is refused
    assert errors == [
        RowError(
            21,
            "condition",
            "subject 'subj-bravo-02' has condition 6 and study_id '' here but 5 and '' on line "
            "19 of the same session",
        )
    ]


def test_without_a_time_elapsed_column_a_trial_index_going_back_is_a_new_session() -> None:
    # given a file of a format whose rows carry no clock, one subject's trial_index restarting
    header = [c for c in fx.SELECT_HEADER if c != "time_elapsed"]
    rows = [{k: v for k, v in r.items() if k != "time_elapsed"} for r in fx.select_rows()]
    rows.insert(3, {**rows[0], "response": '{"select": "select0.7"}'})
    # when
    parsed = legacy.parse("hmix-select-shuffled", fx.lines(fx.csv_text(header, rows)))
    # then
    assert parsed.split_subjects == {"dsubj-one": 2}
    assert [(r.participant_key, r.value) for r in parsed.responses] == [
        ("dsubj-one", {"chosen_step": 3}),
        ("dsubj-one", {"chosen_step": 5}),
        ("dsubj-one", {"chosen_step": 3}),
        ("dsubj-one#2", {"chosen_step": 7}),
        ("dsubj-two", {"chosen_step": 6}),
    ]


def test_a_row_with_the_wrong_number_of_fields_is_refused() -> None:
    # given
    text = fx.select_csv().splitlines()
    text[2] += ",extra"
    # when
    errors = _errors("hmix-select-shuffled", "\n".join(text) + "\n")
    # then
    assert errors == [RowError(3, None, "13 fields where the header has 12")]


def test_an_empty_file_and_an_unknown_format_are_refused() -> None:
    # when / then
    assert _errors("cifar10s", "") == [RowError(1, None, "the file is empty")]
    with pytest.raises(ValueError, match="unknown format 'cifar100'"):
        legacy.parse("cifar100", [])


def test_line_numbers_count_physical_lines_of_multi_line_cells() -> None:
    # given a quoted cell spanning two lines before the bad row
    rows = fx.select_rows()
    rows.insert(
        0,
        {
            "trial_type": "instructions",
            "trial_index": 1,
            "subject": "dsubj-one",
            "condition": 3,
            "response": '{"note": "typed on\ntwo lines"}',
        },
    )
    rows = _with(rows, 2, response='{"select": "select1.5"}')
    # when
    errors = _errors("hmix-select-shuffled", fx.csv_text(fx.SELECT_HEADER, rows))
    # then: header 1, the instructions row 2-3, first response 4, the bad one 5
    assert errors == [RowError(5, "response", "1.5 is not one of the 11 steps 0.0, 0.1, ..., 1.0")]
