from typing import Any

import pytest
from django.core.exceptions import ValidationError

from elicitation.models import Study
from elicitation.services import study_update
from hmix_site.common.exceptions import ApplicationError
from tests.factories import StimulusFactory, StudyFactory

pytestmark = pytest.mark.django_db


def _row(study: Study) -> dict[str, Any]:
    return Study.objects.filter(id=study.id).values().get()


def test_texts_and_settings_are_saved(researcher: Any) -> None:
    # given
    study = StudyFactory(owner=researcher, settings={"kept": 1})
    # when
    study_update(
        study=study,
        title="  New title ",
        consent_html="<p>Consent</p>",
        instructions=[{"title": " One ", "html": "<p>1</p>"}, {"html": "<p>2</p>"}],
        comprehension=[{"question": "Q?", "options": ["a", "b"], "answer": 0}],
        max_comprehension_failures=None,
        debrief_questions=["Why?"],
        completion_code="ABC_1-2",
        completion_url="https://app.prolific.com/submissions/complete?cc={code}",
        settings={"catch_rate": 0.5},
        participants_per_batch=9,
        lease_minutes=30,
    )
    # then
    study.refresh_from_db()
    assert study.title == "New title"
    assert study.instructions == [
        {"title": "One", "html": "<p>1</p>"},
        {"title": "", "html": "<p>2</p>"},
    ]
    assert study.comprehension == [{"question": "Q?", "options": ["a", "b"], "answer": 0}]
    assert (study.completion_code, study.participants_per_batch, study.lease_minutes) == (
        "ABC_1-2",
        9,
        30,
    )
    assert study.settings == {"kept": 1, "catch_rate": 0.5}


def test_structural_fields_change_while_a_draft(researcher: Any) -> None:
    # given
    study = StudyFactory(owner=researcher)
    # when
    study_update(study=study, trial_type="select_midpoint", classes=["A", "B"], repeats=0)
    # then
    study.refresh_from_db()
    assert (study.trial_type, study.classes, study.repeats) == ("select_midpoint", ["A", "B"], 0)


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"title": " "}, {"title": ["The title must be non-empty text."]}),
        ({"instructions": "text"}, {"instructions": ["Instructions must be a list of pages."]}),
        (
            {"instructions": [{"title": "x", "html": "y", "js": "z"}]},
            {"instructions": ["Page 1 must have a title and html, nothing else."]},
        ),
        (
            {"comprehension": [{"question": "Q", "options": ["a"], "answer": 0}]},
            {"comprehension": ["Question 1 needs at least 2 options."]},
        ),
        (
            {"comprehension": [{"question": "Q", "options": ["a", "b"], "answer": 2}]},
            {
                "comprehension": [
                    "The right answer of question 1 must be one of its 2 options (0 to 1), got 2."
                ]
            },
        ),
        (
            {"comprehension": [{"question": "Q", "options": ["a", "b"], "answer": True}]},
            {"comprehension": ["The right answer of question 1 must be an option number."]},
        ),
        (
            {"comprehension": [{"question": "Q", "options": ["a", "b"]}]},
            {"comprehension": ["Question 1 must have a question, its options and the answer."]},
        ),
        (
            {"debrief_questions": ["a", "a"]},
            {"debrief_questions": ["The same debrief question appears twice."]},
        ),
        (
            {"completion_code": "a b"},
            {
                "completion_code": [
                    "The completion code may only hold letters, digits, '-' and '_'."
                ]
            },
        ),
        (
            {"completion_url": "javascript:alert(1)//{code}"},
            {
                "completion_url": [
                    "The completion URL must be a web address (https://…); {code} stands for "
                    "the completion code."
                ]
            },
        ),
        (
            {"settings": {"catch_rate": 1.5}},
            {"settings": ["catch_rate must be a number from 0 to 1."]},
        ),
        (
            {"settings": {"lr": 0.1}},
            {"settings": ["Unknown settings ['lr']; expected ['catch_rate', 'catch_threshold']."]},
        ),
        (
            {"participants_per_batch": 0},
            {
                "participants_per_batch": [
                    "Participants per batch must be a whole number of at least 1."
                ]
            },
        ),
        ({"repeats": 21}, {"repeats": ["Repeats must be at most 20."]}),
        ({"classes": []}, {"classes": ["Classes must be a non-empty list of non-empty names."]}),
        ({"classes": ["A", "A"]}, {"classes": ["Class names must be unique."]}),
        ({"slug": "new"}, {"slug": ["slug cannot be changed here."]}),
        ({"status": "live"}, {"status": ["status cannot be changed here."]}),
        (
            {"title": "", "repeats": -1},
            {
                "title": ["The title must be non-empty text."],
                "repeats": ["Repeats must be a whole number of at least 0."],
            },
        ),
    ],
)
def test_bad_fields_are_all_reported_and_nothing_is_saved(
    researcher: Any, fields: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    # given
    study = StudyFactory(owner=researcher)
    before = _row(study)
    # when
    with pytest.raises(ValidationError) as exc:
        study_update(study=study, **{"debrief_questions": ["Changed?"], **fields})
    # then
    assert exc.value.message_dict == errors
    assert _row(study) == before
    assert study.debrief_questions == ["Comments?"]


@pytest.mark.parametrize(
    "fields", [{"trial_type": "mixing_factor"}, {"classes": ["Cat", "Dog", "Ship"]}, {"repeats": 1}]
)
def test_structural_fields_are_refused_after_launch(
    researcher: Any, fields: dict[str, Any]
) -> None:
    # given
    study = StudyFactory(owner=researcher, status=Study.Status.LIVE)
    before = _row(study)
    # when
    with pytest.raises(ApplicationError) as exc:
        study_update(study=study, title="Also changed", **fields)
    # then
    name = next(iter(fields))
    assert exc.value.message == f"{name} can only change while the study is a draft; it is live."
    assert exc.value.status == 409
    assert _row(study) == before


def test_texts_change_after_launch_and_unchanged_structure_is_not_an_edit(researcher: Any) -> None:
    # given
    study = StudyFactory(owner=researcher, status=Study.Status.PAUSED)
    # when
    study_update(study=study, completion_code="LATE", repeats=study.repeats, classes=study.classes)
    # then
    study.refresh_from_db()
    assert study.completion_code == "LATE"


def test_the_trial_type_and_used_classes_stay_once_there_are_stimuli(researcher: Any) -> None:
    # given
    study = StudyFactory(owner=researcher)
    StimulusFactory(study=study)
    # when
    with pytest.raises(ValidationError) as exc:
        study_update(study=study, trial_type="iri_2afc", classes=["Cat", "Ship"])
    # then
    assert exc.value.message_dict == {
        "trial_type": ["The trial type cannot change once the study has stimuli."],
        "classes": ["The study's stimuli use classes ['Dog'], which must stay in the list."],
    }
