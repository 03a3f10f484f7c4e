"""The study link in a browser: nothing is stored until consent is posted, a full study turns
the worker away with its code, and an MTurk worker's finished HIT is posted to externalSubmit."""

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import Page, Request, Route, expect

from elicitation import services
from elicitation.models import Participant, Study
from tests.browser import consent_by_mouse, entry_url, session_url
from tests.conftest import (
    advance_to_trials,
    answer_remaining_trials,
    categorical_answer,
    start_in_trials,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_nothing_is_stored_until_the_consent_form_is_posted(
    live_server: Any, make_study: Callable[..., Study], page: Page
) -> None:
    # given
    study = make_study()
    # when
    page.goto(entry_url(live_server, study, "PID-LOOK"))
    page.reload()
    # then
    expect(page.locator("#consent-form")).to_be_visible()
    assert Participant.objects.exists() is False
    # when
    consent_by_mouse(page)
    # then
    expect(page.locator("#instructions-done")).to_be_attached()
    participant = Participant.objects.get()
    assert (participant.external_id, participant.stage) == ("PID-LOOK", "instructions")
    assert page.url == session_url(live_server, participant)


def test_a_full_study_turns_the_worker_away_before_consent_with_its_code(
    live_server: Any, make_study: Callable[..., Study], page: Page
) -> None:
    # given: the only place taken
    study = make_study(n_stimuli=2, batch_size=2, participants_per_batch=1, full_code="FULL-8")
    start_in_trials(study, "HOLDER")
    sent_to: list[str] = []
    page.route("https://app.prolific.com/**", lambda route: _record(route, sent_to))
    # when
    page.goto(entry_url(live_server, study, "PID-LATE"))
    # then: the code at once, then back to Prolific with it
    expect(page.locator("#study-full")).to_contain_text("all places in this study are taken")
    expect(page.locator("#exit-code")).to_have_text("FULL-8")
    expect(page.locator("#consent-form")).to_have_count(0)
    page.wait_for_url("https://app.prolific.com/**")
    assert sent_to == ["https://app.prolific.com/submissions/complete?cc=FULL-8"]
    assert list(Participant.objects.values_list("external_id", flat=True)) == ["HOLDER"]


def test_a_finished_mturk_hit_is_posted_to_the_sandbox_with_its_assignment(
    live_server: Any, make_study: Callable[..., Study], page: Page
) -> None:
    # given: an MTurk worker from the sandbox, through consent in the browser
    study = make_study()
    page.goto(
        f"{live_server.url}/s/{study.slug}/?workerId=W-7&hitId=H-7&assignmentId=A-7"
        "&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com"
    )
    consent_by_mouse(page)
    expect(page.locator("#instructions-done")).to_be_attached()
    participant = answer_remaining_trials(
        advance_to_trials(Participant.objects.get()), lambda _: categorical_answer()
    )
    services.participant_debrief_submit(participant=participant, answers={})
    posts: list[Request] = []

    def sandbox(route: Route) -> None:
        posts.append(route.request)
        route.fulfill(status=200, content_type="text/html", body="<p>submitted</p>")

    page.route("https://workersandbox.mturk.com/**", sandbox)
    # when: the completion page submits itself after a few seconds
    page.goto(session_url(live_server, participant))
    expect(page.locator("#completion-code")).to_have_text("CODE123")
    page.wait_for_url("https://workersandbox.mturk.com/mturk/externalSubmit")
    # then
    assert [(r.method, r.url) for r in posts] == [
        ("POST", "https://workersandbox.mturk.com/mturk/externalSubmit")
    ]
    assert parse_qs(posts[0].post_data or "") == {
        "assignmentId": ["A-7"],
        "completion_code": ["CODE123"],
    }


def _record(route: Route, sent_to: list[str]) -> None:
    sent_to.append(route.request.url)
    route.fulfill(status=200, content_type="text/html", body="<p>Prolific</p>")
