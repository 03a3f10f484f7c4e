import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from elicitation import imaging, services, stimulus_services
from elicitation.models import ImageSet, Participant, Study
from tests.factories import StimulusFactory, StudyFactory, UserFactory

# Playwright's sync API runs an event loop in the test thread; Django refuses ORM calls from a
# thread with a running loop unless told the caller knows what it is doing (tests only).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def researcher() -> Any:
    return UserFactory(username="owner")


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def make_study(researcher: Any) -> Callable[..., Study]:
    """A live categorical study with `n_stimuli` stimuli (no image files) in batches."""

    def make(*, n_stimuli: int = 4, batch_size: int = 2, **fields: Any) -> Study:
        study = StudyFactory(owner=researcher, **fields)
        stimuli = [StimulusFactory(study=study) for _ in range(n_stimuli)]
        services.batches_build(study=study, stimuli=stimuli, batch_size=batch_size)
        services.study_set_status(study=study, status=Study.Status.LIVE)
        return study

    return make


@pytest.fixture
def make_image_study(researcher: Any) -> Callable[..., Study]:
    """A live categorical study on generated demo shapes, with real image files."""

    def make(*, n_pairs: int = 2, batch_size: int = 3, **fields: Any) -> Study:
        study = StudyFactory(owner=researcher, classes=list(imaging.DEMO_CLASSES), **fields)
        image_set = ImageSet.objects.filter(name="test-shapes").first()
        if image_set is None:
            image_set = stimulus_services.image_set_create(
                name="test-shapes",
                source=ImageSet.Source.DEMO,
                images=imaging.generate_demo_images(per_class=2, seed=1),
            )
        stimuli = stimulus_services.stimuli_generate_mixup(
            study=study, image_set=image_set, lambdas=[0.25, 0.75], n_pairs=n_pairs
        )
        services.batches_build(study=study, stimuli=stimuli, batch_size=batch_size)
        services.study_set_status(study=study, status=Study.Status.LIVE)
        return study

    return make


def advance_to_trials(participant: Participant) -> Participant:
    """Consent, instructions and a correct comprehension check, through the services."""
    services.participant_consent(participant=participant, agreed=True)
    services.participant_instructions_complete(participant=participant)
    participant.refresh_from_db()
    if participant.stage == Participant.Stage.COMPREHENSION:
        answers = [q["answer"] for q in participant.study.comprehension]
        services.comprehension_submit(participant=participant, answers=answers)
    participant.refresh_from_db()
    return participant


@pytest.fixture
def participant_in_trials(make_study: Callable[..., Study]) -> Participant:
    study = make_study()
    participant, _ = services.participant_start(
        study=study, platform=Participant.Platform.PROLIFIC, external_id="PID1"
    )
    return advance_to_trials(participant)


def categorical_answer(**overrides: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "top_class": "Cat",
        "p1": 60,
        "second_class": "Dog",
        "p2": 20,
        "impossible": ["Airplane", "Ship"],
    }
    answer.update(overrides)
    return answer
