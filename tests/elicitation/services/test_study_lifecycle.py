"""The study lifecycle (services.study_set_status, services.study_update and
lifecycle_selectors): draft → live ⇄ paused → closed, the launch checklist, the transition
record and what freezes once anyone has consented."""

from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from elicitation import lifecycle_selectors, selectors, services
from elicitation.models import Batch, BatchItem, Participant, Study, StudyTransition
from hmix_site.common.exceptions import ApplicationError
from tests.conftest import start_in_trials
from tests.factories import StimulusFactory, StudyFactory

pytestmark = pytest.mark.django_db

LIVE, PAUSED, CLOSED, DRAFT = (
    Study.Status.LIVE,
    Study.Status.PAUSED,
    Study.Status.CLOSED,
    Study.Status.DRAFT,
)


def _ready_draft(owner: Any, **fields: Any) -> Study:
    """A draft that passes the launch checklist: code, texts, batches of stored stimuli."""
    study = StudyFactory(owner=owner, **fields)
    stimuli = [StimulusFactory(study=study) for _ in range(4)]
    services.batches_build(study=study, stimuli=stimuli, batch_size=2)
    return study


def _in_status(owner: Any, status: str) -> Study:
    study = _ready_draft(owner)
    paths: dict[str, list[str]] = {
        DRAFT: [],
        LIVE: [LIVE],
        PAUSED: [LIVE, PAUSED],
        CLOSED: [LIVE, CLOSED],
    }
    path = paths[status]
    for step in path:
        services.study_set_status(study=study, status=step)
    return study


def test_each_allowed_transition_is_made_and_recorded_with_who_and_how(researcher: Any) -> None:
    # given
    study = _ready_draft(researcher)
    # when
    for status in (LIVE, PAUSED, LIVE, CLOSED):
        services.study_set_status(
            study=study, status=status, actor_id=researcher.pk, via=StudyTransition.Via.API
        )
    # then
    study.refresh_from_db()
    assert study.status == CLOSED
    rows = list(
        lifecycle_selectors.study_transition_list(study=study).values_list(
            "from_status", "to_status", "actor_id", "via"
        )
    )
    assert rows == [
        (DRAFT, LIVE, researcher.pk, "api"),
        (LIVE, PAUSED, researcher.pk, "api"),
        (PAUSED, LIVE, researcher.pk, "api"),
        (LIVE, CLOSED, researcher.pk, "api"),
    ]


def test_a_paused_study_can_be_closed(researcher: Any) -> None:
    # given
    study = _in_status(researcher, PAUSED)
    # when
    services.study_set_status(study=study, status=CLOSED)
    # then
    study.refresh_from_db()
    assert study.status == CLOSED
    assert study.transitions.last().from_status == PAUSED


FORBIDDEN = [
    (DRAFT, PAUSED, "A draft study cannot be paused: launch it first."),
    (DRAFT, CLOSED, "A draft study cannot be closed: launch it first."),
    (DRAFT, DRAFT, "The study is already draft."),
    (LIVE, LIVE, "The study is already live."),
    (
        LIVE,
        DRAFT,
        "A launched study cannot go back to draft: its answers were given under its stimuli, "
        "classes and settings.",
    ),
    (
        PAUSED,
        DRAFT,
        "A launched study cannot go back to draft: its answers were given under its stimuli, "
        "classes and settings.",
    ),
    (
        CLOSED,
        DRAFT,
        "A launched study cannot go back to draft: its answers were given under its stimuli, "
        "classes and settings.",
    ),
    (CLOSED, LIVE, "The study is closed, and a closed study cannot be reopened."),
    (CLOSED, PAUSED, "The study is closed, and a closed study cannot be reopened."),
]


@pytest.mark.parametrize(("start", "target", "message"), FORBIDDEN)
def test_each_forbidden_transition_is_refused_and_nothing_changes(
    researcher: Any, start: str, target: str, message: str
) -> None:
    # given
    study = _in_status(researcher, start)
    n_before = StudyTransition.objects.count()
    # when
    with pytest.raises(ApplicationError) as exc:
        services.study_set_status(study=study, status=target)
    # then
    assert (exc.value.status, exc.value.message) == (409, message)
    study.refresh_from_db()
    assert study.status == start
    assert StudyTransition.objects.count() == n_before


def test_an_unknown_status_is_refused(researcher: Any) -> None:
    # given
    study = _ready_draft(researcher)
    # when
    with pytest.raises(ValidationError) as exc:
        services.study_set_status(study=study, status="archived")
    # then
    assert exc.value.message_dict == {
        "status": [
            "Unknown status 'archived'; expected one of ['draft', 'live', 'paused', 'closed']."
        ]
    }
    assert Study.objects.get(pk=study.pk).status == DRAFT


# --- the launch checklist -------------------------------------------------------------------


def test_a_ready_study_passes_every_check(researcher: Any) -> None:
    # given
    study = _ready_draft(researcher)
    # when
    checks = lifecycle_selectors.study_launch_checklist(study=study)
    # then
    assert [(c.name, c.ok) for c in checks] == [
        ("completion", True),
        ("batches", True),
        ("texts", True),
        ("batch_stimuli", True),
        ("image_files", True),
    ]


def test_launch_without_a_completion_code_is_refused_unless_paid_another_way(
    researcher: Any,
) -> None:
    # given
    study = _ready_draft(researcher, completion_code="")
    # when
    with pytest.raises(ApplicationError) as exc:
        services.study_set_status(study=study, status=LIVE)
    refused = Study.objects.get(pk=study.pk).status
    services.study_update(study=study, pays_without_code=True)
    services.study_set_status(study=study, status=LIVE)
    # then
    assert exc.value.message == (
        "The study cannot go live yet: Set a completion code, or tick “no code: I pay another "
        "way”: otherwise workers finish without a way to be paid."
    )
    assert list(exc.value.extra["checklist"]) == ["completion"]
    assert refused == DRAFT
    assert Study.objects.get(pk=study.pk).status == LIVE


def test_launch_without_batches_or_texts_lists_every_problem(researcher: Any) -> None:
    # given
    study = StudyFactory(owner=researcher, consent_html="  ", instructions=[])
    # when
    with pytest.raises(ApplicationError) as exc:
        services.study_set_status(study=study, status=LIVE)
    # then
    assert exc.value.extra["checklist"] == {
        "batches": "Build the batches (the Batches step).",
        "texts": "Write the consent text and at least one page of instructions.",
        "batch_stimuli": "No batches yet.",
    }
    assert Study.objects.get(pk=study.pk).status == DRAFT
    assert StudyTransition.objects.exists() is False


def test_launch_with_an_empty_batch_is_refused(researcher: Any) -> None:
    # given a study whose second batch lost its stimuli
    study = _ready_draft(researcher)
    BatchItem.objects.filter(batch__study=study, batch__number=2).delete()
    # when
    with pytest.raises(ApplicationError) as exc:
        services.study_set_status(study=study, status=LIVE)
    # then
    assert exc.value.extra["checklist"] == {"batch_stimuli": "Batch 2 has no stimuli."}
    assert Study.objects.get(pk=study.pk).status == DRAFT


def test_launch_with_missing_image_files_names_the_stimuli(researcher: Any) -> None:
    # given one stimulus whose file is gone from storage and one that never had one
    study = _ready_draft(researcher)
    first, second = study.stimuli.order_by("key")[:2]
    first.image.storage.delete(first.image.name)
    second.image = ""
    second.save(update_fields=["image"])
    # when
    with pytest.raises(ApplicationError) as exc:
        services.study_set_status(study=study, status=LIVE)
    # then
    assert exc.value.extra["checklist"] == {
        "image_files": f"2 stimuli without a stored image file ({first.key}, {second.key}): "
        "generate or import them again."
    }
    assert Study.objects.get(pk=study.pk).status == DRAFT


def test_resuming_a_paused_study_runs_the_checklist_again(researcher: Any) -> None:
    # given a paused study whose completion code was removed meanwhile
    study = _in_status(researcher, PAUSED)
    services.study_update(study=study, completion_code="")
    # when
    with pytest.raises(ApplicationError) as exc:
        services.study_set_status(study=study, status=LIVE)
    # then
    assert list(exc.value.extra["checklist"]) == ["completion"]
    assert Study.objects.get(pk=study.pk).status == PAUSED


# --- what freezes -----------------------------------------------------------------------------


def test_nothing_is_locked_in_a_draft_nobody_consented_to(researcher: Any) -> None:
    assert lifecycle_selectors.study_locked_fields(study=_ready_draft(researcher)) == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("classes", list(reversed(StudyFactory.classes.function()))),
        ("repeats", 5),
        ("participants_per_batch", 9),
    ],
)
def test_structure_and_batch_targets_are_read_only_once_anyone_consented(
    make_study: Callable[..., Study], field: str, value: Any
) -> None:
    # given a live study one participant has consented to
    study = make_study()
    participant, _ = services.participant_start(
        study=study, platform=Participant.Platform.PROLIFIC, external_id="P1"
    )
    services.participant_consent(participant=participant, agreed=True)
    before = getattr(Study.objects.get(pk=study.pk), field)
    # when
    with pytest.raises(ApplicationError) as exc:
        services.study_update(study=study, **{field: value})
    # then
    assert (exc.value.status, exc.value.message) == (
        409,
        f"{field} can no longer change: participants have consented to the study.",
    )
    assert getattr(Study.objects.get(pk=study.pk), field) == before


def test_batch_targets_stay_editable_until_someone_consents(
    make_study: Callable[..., Study],
) -> None:
    # given a live study where one worker arrived but has not agreed yet
    study = make_study()
    services.participant_start(
        study=study, platform=Participant.Platform.PROLIFIC, external_id="P1"
    )
    # when
    services.study_update(study=study, participants_per_batch=7)
    # then
    assert Study.objects.get(pk=study.pk).participants_per_batch == 7


def test_batches_are_not_rebuilt_once_anyone_consented(make_study: Callable[..., Study]) -> None:
    # given
    study = make_study()
    start_in_trials(study, "P1")
    before = list(Batch.objects.filter(study=study).values_list("id", flat=True))
    # when
    with pytest.raises(ApplicationError) as exc:
        services.batches_build(study=study, stimuli=list(study.stimuli.all()), batch_size=4)
    # then
    assert exc.value.message == (
        "Batches cannot be rebuilt once participants have consented to the study."
    )
    assert list(Batch.objects.filter(study=study).values_list("id", flat=True)) == before


# --- completion URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.domain)//{code}",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "/relative/{code}",
        "ftp://example.org/{code}",
    ],
)
def test_a_completion_url_must_be_a_web_address(researcher: Any, url: str) -> None:
    # given
    study = StudyFactory(owner=researcher)
    # when
    with pytest.raises(ValidationError) as exc:
        services.study_update(study=study, completion_url=url)
    # then
    assert exc.value.message_dict == {
        "completion_url": [
            "The completion URL must be a web address (https://…); {code} stands for the "
            "completion code."
        ]
    }
    assert Study.objects.get(pk=study.pk).completion_url == StudyFactory.completion_url


@pytest.mark.parametrize(
    "stored",
    ["javascript:alert(document.domain)//{code}", " https://x.org/{code}", "//evil.org/{code}"],
)
def test_a_stored_non_web_completion_url_is_never_given_to_the_page(
    researcher: Any, stored: str
) -> None:
    # given a value written around the validators (raw SQL, an old row)
    study = StudyFactory(owner=researcher)
    Study.objects.filter(pk=study.pk).update(completion_url=stored)
    study.refresh_from_db()
    # when
    links = selectors.study_entry_links(study=study, base_url="")
    # then
    assert (links["completion_url"], links["completion_code"]) == ("", "CODE123")
