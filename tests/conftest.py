import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from elicitation import imaging, selectors, services, stimulus_services
from elicitation.models import ImageSet, Participant, Study, Trial
from tests.browser import CHROMIUM, CHROMIUM_ARGS, CSP_REPORT_SCRIPT, TIMEOUT_MS
from tests.factories import StimulusFactory, StudyFactory, UserFactory

# Playwright's sync API runs an event loop in the test thread; Django refuses ORM calls from a
# thread with a running loop unless told the caller knows what it is doing (tests only).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    # Rate-limit counters live in the (in-process) cache: each test starts with none, and the
    # limits stay on at their defaults, so a test sees what production would.
    cache.clear()
    yield
    cache.clear()


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


def start_in_trials(study: Study, pid: str) -> Participant:
    """A new Prolific participant `pid`, taken to the trials through the services."""
    participant, _ = services.participant_start(
        study=study, platform=Participant.Platform.PROLIFIC, external_id=pid
    )
    return advance_to_trials(participant)


def answer_remaining_trials(
    participant: Participant, answer_for: Callable[[Trial], dict[str, Any]], *, rt_ms: int = 10
) -> Participant:
    """Answer each of the participant's unanswered trials in order, through the services, with
    answer_for(trial); returns the participant, refreshed (at the debrief, as a rule)."""
    while participant.stage == Participant.Stage.TRIALS:
        trial = selectors.trial_get_next(participant=participant)
        assert trial is not None
        services.response_record(
            participant=participant,
            trial_id=trial.id,
            client_key=uuid.uuid4(),
            rt_ms=rt_ms,
            answer=answer_for(trial),
        )
        participant.refresh_from_db()
    return participant


def answer_all_trials(
    study: Study, pid: str, answer_for: Callable[[Trial], dict[str, Any]], *, rt_ms: int = 10
) -> Participant:
    """A new Prolific participant `pid` who answers every trial with answer_for(trial)."""
    return answer_remaining_trials(start_in_trials(study, pid), answer_for, rt_ms=rt_ms)


@pytest.fixture
def participant_in_trials(make_study: Callable[..., Study]) -> Participant:
    return start_in_trials(make_study(), "PID1")


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


# --- browser tests (helpers in tests/browser.py) ----------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def csp_violations() -> list[str]:
    """What Chromium refused under the Content-Security-Policy in this test's pages (filled by
    new_page). A test that provokes a violation on purpose asserts on it and then clears it."""
    return []


@pytest.fixture
def new_page(browser: Browser, csp_violations: list[str]) -> Iterator[Callable[..., Page]]:
    """new_page(width=1280, height=900, *, init_script=None): a page in a fresh context (no
    shared cookies or storage), with `init_script` run in every document; closed after the test.

    Every browser test also checks the Content-Security-Policy: a violation anywhere in its pages
    (Chromium's "Refused to ..." console errors and the securitypolicyviolation events) fails it.
    """
    contexts: list[BrowserContext] = []

    def record(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or message.text.startswith("CSP "):
            csp_violations.append(f"{message.text} [{message.location.get('url', '')}]")

    def make(width: int = 1280, height: int = 900, *, init_script: str | None = None) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(CSP_REPORT_SCRIPT)
        context.on("console", record)
        if init_script is not None:
            context.add_init_script(init_script)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
    assert not csp_violations, "Content-Security-Policy violations:\n" + "\n".join(csp_violations)


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A 1280 x 900 page in a fresh context."""
    return new_page()


def token_client(user: Any) -> APIClient:
    """An API client authenticated with the user's REST token (created if needed)."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client
