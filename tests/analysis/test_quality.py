import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from analysis import quality, quality_selectors, services
from analysis.models import SoftLabel
from analysis.quality import ParticipantQuality, QualityTrial
from elicitation import services as elicitation_services
from elicitation.legacy_services import legacy_import
from elicitation.models import Participant, Response, Study
from tests import legacy_fixtures as fx
from tests.conftest import advance_to_trials, categorical_answer
from tests.factories import UserFactory

CAT, DOG, SHIP = fx.CAT, fx.DOG, fx.SHIP


def _trial(
    *,
    participant: int = 1,
    top: int = CAT,
    p1: float = 60.0,
    p1_raw: float | None = None,
    second: int | None = DOG,
    p2: float | None = 20.0,
    impossible: frozenset[int] = frozenset(),
    true_class: int | None = CAT,
) -> QualityTrial:
    return QualityTrial(
        participant=participant,
        top=top,
        p1=p1,
        p1_raw=p1 if p1_raw is None else p1_raw,
        second=second,
        p2=p2,
        impossible=impossible,
        true_class=true_class,
    )


CLEAN = _trial()
DOUBLE_TOP = _trial(impossible=frozenset({CAT, SHIP}))
DOUBLE_SECOND = _trial(impossible=frozenset({DOG}))
ZERO = _trial(p1=100.0, p1_raw=0.0, second=None, p2=None)
WRONG = _trial(top=SHIP, second=None, p2=None)


# --- the rules (pure) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trials", "expected"),
    [
        # nothing flagged
        ([CLEAN, CLEAN, WRONG], (0, 0, 0, 2 / 3, False, ())),
        # one double select (a ticked top class), accuracy exactly 0.75: kept
        ([DOUBLE_TOP, CLEAN, CLEAN, WRONG], (1, 0, 0, 0.75, False, ())),
        # one double select (a ticked second class) with accuracy 0.5: excluded
        ([DOUBLE_SECOND, WRONG], (1, 0, 0, 0.5, True, ("flagged-with-low-accuracy",))),
        # two double selects: excluded whatever the accuracy
        ([DOUBLE_TOP, DOUBLE_SECOND, CLEAN], (2, 0, 0, 1.0, True, ("double-select",))),
        # one zero probability, accurate: kept
        ([ZERO, CLEAN], (0, 1, 0, 1.0, False, ())),
        # two zero probabilities and inaccurate: both reasons
        (
            [ZERO, ZERO, WRONG, WRONG],
            (0, 2, 0, 0.5, True, ("zero-probability", "flagged-with-low-accuracy")),
        ),
        # one of each with accuracy 0.5: flagged once each, then low accuracy
        ([DOUBLE_TOP, ZERO], (1, 1, 0, 1.0, False, ())),
        (
            [DOUBLE_TOP, ZERO, WRONG, WRONG],
            (1, 1, 0, 0.5, True, ("flagged-with-low-accuracy",)),
        ),
        # any probability outside 0..100, alone: excluded
        ([_trial(p1=2550.0), CLEAN], (0, 0, 1, 1.0, True, ("probability-out-of-range",))),
        ([_trial(p2=101.0)], (0, 0, 1, 1.0, True, ("probability-out-of-range",))),
    ],
)
def test_cifar10s_exclusions_apply_the_published_rules(
    trials: list[QualityTrial], expected: tuple[Any, ...]
) -> None:
    # when
    (report,) = quality.cifar10s_exclusions(trials)
    # then
    assert (
        report.double_select,
        report.zero_probability,
        report.out_of_range,
        report.accuracy,
        report.excluded,
        report.reasons,
    ) == expected
    assert (report.n_trials, report.n_scored) == (len(trials), len(trials))


def test_trials_without_ground_truth_do_not_count_towards_accuracy() -> None:
    # given mixed images (no true class): a flagged trial cannot be weighed against accuracy
    trials = [
        _trial(participant=7, impossible=frozenset({CAT}), true_class=None),
        _trial(participant=7, true_class=None),
    ]
    # when
    reports = quality.cifar10s_exclusions(trials)
    # then
    assert reports == [
        ParticipantQuality(
            participant=7,
            n_trials=2,
            double_select=1,
            zero_probability=0,
            out_of_range=0,
            n_scored=0,
            accuracy=None,
            excluded=False,
            reasons=(),
        )
    ]


def test_reports_are_per_participant_in_participant_order() -> None:
    # given
    trials = [
        _trial(participant=9),
        _trial(participant=3, p1=300.0),
        _trial(participant=9, top=DOG),
    ]
    # when
    reports = quality.cifar10s_exclusions(trials)
    # then
    assert [(r.participant, r.n_trials, r.accuracy, r.excluded) for r in reports] == [
        (3, 1, 1.0, True),
        (9, 2, 0.5, False),
    ]
    assert quality.excluded_participants(reports) == {3}
    assert quality.cifar10s_exclusions([]) == []


# --- on an imported CIFAR-10S study (DB) ----------------------------------------------------------


def _run(*args: Any, **options: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


@pytest.fixture
def imported() -> Study:
    owner = UserFactory(username="admin", is_superuser=True)
    return legacy_import(
        study_slug="c10s", fmt="cifar10s", source=fx.lines(fx.cifar10s_csv()), owner=owner
    ).study


@pytest.mark.django_db
def test_quality_report_lists_who_would_be_excluded_and_why(imported: Study) -> None:
    # when
    out = _run("quality_report", study="c10s", fmt="json")
    table = _run("quality_report", study="c10s")
    # then
    body = json.loads(out)
    ids = {p.external_id: p.id for p in imported.participants.all()}
    assert (body["study"], body["rule_set"], body["participants"], body["excluded"]) == (
        "c10s",
        "cifar10s-exclusions",
        3,
        2,
    )
    assert body["report"] == [
        {
            # every answer on its image's true class
            "participant": "subj-alpha-01",
            "participant_id": ids["subj-alpha-01"],
            "n_trials": 3,
            "double_select": 0,
            "zero_probability": 0,
            "out_of_range": 0,
            "n_scored": 3,
            "accuracy": 1.0,
            "excluded": False,
            "reasons": [],
        },
        {
            # a typed 0 (stored as 100), and no answer on the true class
            "participant": "subj-bravo-02",
            "participant_id": ids["subj-bravo-02"],
            "n_trials": 3,
            "double_select": 0,
            "zero_probability": 1,
            "out_of_range": 0,
            "n_scored": 3,
            "accuracy": 0.0,
            "excluded": True,
            "reasons": ["flagged-with-low-accuracy"],
        },
        {
            # "2550" with every class (Truck too) ticked impossible
            "participant": "subj-charlie-03",
            "participant_id": ids["subj-charlie-03"],
            "n_trials": 3,
            "double_select": 1,
            "zero_probability": 0,
            "out_of_range": 1,
            "n_scored": 3,
            "accuracy": 0.0,
            "excluded": True,
            "reasons": ["flagged-with-low-accuracy", "probability-out-of-range"],
        },
    ]
    lines = [line.split() for line in table.splitlines()]
    assert lines[0] == [
        "participant",
        "trials",
        "double",
        "zero",
        "out",
        "accuracy",
        "excluded",
        "why",
    ]
    assert lines[1] == ["subj-alpha-01", "3", "0", "0", "0", "1.000", "no"]
    assert lines[2] == [
        "subj-bravo-02",
        "3",
        "0",
        "1",
        "0",
        "0.000",
        "yes",
        "flagged-with-low-accuracy",
    ]
    assert lines[-1] == [
        "2",
        "of",
        "3",
        "participants",
        "would",
        "be",
        "excluded",
        "(cifar10s-exclusions).",
    ]


@pytest.mark.django_db
def test_quality_report_can_list_only_the_excluded(imported: Study) -> None:
    # when
    body = json.loads(_run("quality_report", study="c10s", fmt="json", excluded_only=True))
    # then
    assert [r["participant"] for r in body["report"]] == ["subj-bravo-02", "subj-charlie-03"]
    assert body["excluded"] == 2


@pytest.mark.django_db
def test_aggregate_exclude_flagged_leaves_the_flagged_participants_out(
    imported: Study, tmp_path: Path
) -> None:
    # when
    out = json.loads(_run("aggregate", study="c10s", exclude_flagged=True))
    export = tmp_path / "labels.json"
    _run("export", study="c10s", what="soft-labels", format="json", out=export)
    # then: only subj-alpha-01 is left (answers A and C on the cat, B on the truck)
    labels = json.loads(export.read_text())["labels"]
    assert out == {
        "study": "c10s",
        "method": "cifar10s-top2-clamp",
        "params": {"gamma": 0.1, "smoothing": 0.0, "include_repeats": True},
        "labels": 2,
        "excluded_participants": 2,
    }
    assert sorted(labels) == ["cifar10_train_17_Cat.png", "cifar10_train_42_Truck.png"]
    a, c, _ = fx.CIFAR10S_LABELS["cifar10_train_17_Cat.png"]
    b = fx.CIFAR10S_LABELS["cifar10_train_42_Truck.png"][0]
    cat = labels["cifar10_train_17_Cat.png"]
    assert (cat["n_annotations"], cat["n_annotators"]) == (2, 1)
    assert cat["probs"] == pytest.approx(
        [(x + y) / 2 for x, y in zip(a, c, strict=True)], rel=0, abs=1e-12
    )
    assert labels["cifar10_train_42_Truck.png"]["probs"] == pytest.approx(b, rel=0, abs=1e-12)


@pytest.mark.django_db
def test_aggregate_without_the_flag_keeps_everyone_and_restores_the_labels(imported: Study) -> None:
    # given labels computed without the flagged participants
    _run("aggregate", study="c10s", exclude_flagged=True)
    # when
    out = json.loads(_run("aggregate", study="c10s"))
    # then
    assert out["labels"] == 4
    assert "excluded_participants" not in out
    assert SoftLabel.objects.filter(study=imported).count() == 4


@pytest.mark.django_db
def test_study_aggregate_takes_the_participants_to_leave_out(imported: Study) -> None:
    # given
    charlie = imported.participants.get(external_id="subj-charlie-03")
    # when
    n = services.study_aggregate(study=imported, exclude_participant_ids=[charlie.id])
    # then: the ship image was answered by charlie only
    assert n == 3
    assert sorted(SoftLabel.objects.values_list("stimulus__key", flat=True)) == [
        "cifar10_train_17_Cat.png",
        "cifar10_train_42_Truck.png",
        "cifar10_train_5_Airplane.png",
    ]
    assert SoftLabel.objects.get(stimulus__key="cifar10_train_5_Airplane.png").n_annotations == 1


@pytest.mark.django_db
def test_exclusion_rules_run_on_live_categorical_studies(
    make_study: Callable[..., Study],
) -> None:
    # given a live study whose participant's stored answers give the top class 0% on both trials
    # (the live answer checks refuse that, and a chosen class ticked impossible, so the rows are
    # changed after recording: only the count rules can fire on such a study, and this one does)
    study = make_study(n_stimuli=2, batch_size=2, repeats=0)
    participant = advance_to_trials(
        elicitation_services.participant_start(
            study=study, platform=Participant.Platform.PROLIFIC, external_id="LIVE1"
        )[0]
    )
    for trial in participant.trials.order_by("position"):
        elicitation_services.response_record(
            participant=participant,
            trial_id=trial.id,
            client_key=uuid.uuid4(),
            rt_ms=100,
            answer=categorical_answer(p1=60, second_class=None, p2=None),
        )
    Response.objects.filter(participant=participant).update(p1_pct=0.0)
    # when
    (report,) = quality_selectors.study_quality_report(study=study)
    # then: mixed images have no true class, so only the count rules can exclude
    assert (report.participant, report.n_trials, report.zero_probability) == (participant.id, 2, 2)
    assert (report.double_select, report.n_scored, report.accuracy) == (0, 0, None)
    assert (report.excluded, report.reasons) == (True, ("zero-probability",))


@pytest.mark.django_db
def test_quality_commands_refuse_what_they_cannot_judge(imported: Study) -> None:
    # given
    owner = imported.owner
    legacy_import(
        study_slug="mix", fmt="hmix-mixing-factor", source=fx.lines(fx.mixing_csv()), owner=owner
    )
    # when / then
    with pytest.raises(CommandError, match="categorical studies only"):
        _run("quality_report", study="mix")
    with pytest.raises(CommandError, match="--exclude-flagged applies to categorical studies only"):
        _run("aggregate", study="mix", exclude_flagged=True)
    with pytest.raises(CommandError, match="No study with slug 'nope'"):
        _run("quality_report", study="nope")
    assert SoftLabel.objects.exists() is False


@pytest.mark.django_db
def test_a_blank_p2_second_class_ticked_impossible_counts_as_a_double_select() -> None:
    # given the file whose second session of subj-bravo-02 names Dog second (p2 left blank)
    # and ticks Dog impossible
    owner = UserFactory(username="admin", is_superuser=True)
    study = legacy_import(
        study_slug="c10s-twice",
        fmt="cifar10s",
        source=fx.lines(fx.cifar10s_two_sessions_csv()),
        owner=owner,
    ).study
    # when
    report = json.loads(_run("quality_report", study="c10s-twice", fmt="json"))
    # then that session is its own participant, with the double select counted
    rows = {r["participant"]: r for r in report["report"]}
    assert sorted(rows) == ["subj-alpha-01", "subj-bravo-02", "subj-bravo-02#2", "subj-charlie-03"]
    assert (rows["subj-bravo-02#2"]["n_trials"], rows["subj-bravo-02#2"]["double_select"]) == (3, 1)
    assert rows["subj-bravo-02#2"]["excluded"] is False
    assert rows["subj-bravo-02"]["double_select"] == 0
    assert study.participants.count() == 4
