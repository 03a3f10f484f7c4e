"""The participant journey for interface A in a real headless Chromium, against a live server.

Every test asserts what ended up in the database, not only what the page shows: the browser holds
nothing that matters, so the stored rows are the outcome.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from analysis.models import SoftLabel
from elicitation.models import ComprehensionAttempt, Participant, Response, Study, Trial
from tests.browser import (
    consent_by_mouse,
    current_trial_id,
    docs_screenshot,
    entry_url,
    expect_progress,
    session_url,
    wait_for_stimulus,
)
from tests.conftest import advance_to_trials, start_in_trials

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc=CODE123"
TWO_INSTRUCTION_PAGES = [
    {"title": "The task", "html": "<p>Imagine 100 crowdworkers labelling each image.</p>"},
    {"title": "Your answer", "html": "<p>Give the two most probable categories.</p>"},
]


@dataclass(frozen=True)
class Answer:
    top: str
    p1: int
    second: str | None
    p2: int | None
    impossible: tuple[str, ...]


def _shown_classes(page: Page) -> list[str]:
    return [t.strip() for t in page.locator("#top-group label.choice").all_inner_texts()]


def _fill_answer(page: Page, answer: Answer) -> None:
    # Labels are clickable: choose by the visible text, as a person would.
    page.locator("#top-group").get_by_text(answer.top, exact=True).click()
    page.locator("#p1").fill(str(answer.p1))
    if answer.second is not None:
        page.locator("#second-group").get_by_text(answer.second, exact=True).click()
        page.locator("#p2").fill(str(answer.p2))
    for name in answer.impossible:
        page.locator("#impossible-group").get_by_text(name, exact=True).click()


def _plan(shown: list[str], i: int) -> Answer:
    """A different, valid answer for trial i (one trial has no alternative)."""
    n = len(shown)
    no_second = i == 2
    return Answer(
        top=shown[i % n],
        p1=50 + i,
        second=None if no_second else shown[(i + 1) % n],
        p2=None if no_second else 20 + i,
        impossible=(shown[(i + 3) % n], shown[(i + 5) % n]),
    )


def test_full_journey_stores_every_answer_once_and_redirects_to_prolific(
    live_server: Any, make_image_study: Callable[..., Study], page: Page
) -> None:
    # given
    study = make_image_study(n_pairs=2, batch_size=4, instructions=TWO_INSTRUCTION_PAGES)
    page.route(
        "https://app.prolific.com/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<p>Prolific</p>"),
    )

    # when: consent
    page.goto(entry_url(live_server, study, "PID-JOURNEY"))
    consent_by_mouse(page)
    # when: instructions, paging back and forth
    expect(page.get_by_role("heading", name="The task")).to_be_visible()
    expect(page.get_by_role("button", name="Previous")).to_be_disabled()
    expect(page.get_by_role("button", name="Continue to a short check")).to_be_hidden()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name="Your answer")).to_be_visible()
    expect(page.get_by_role("heading", name="The task")).to_be_hidden()
    page.get_by_role("button", name="Previous").click()
    expect(page.get_by_role("heading", name="The task")).to_be_visible()
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Continue to a short check").click()
    # when: a wrong comprehension answer sends the participant back to the instructions
    page.get_by_label("Mine").check()
    page.get_by_role("button", name="Submit answers").click()

    # then
    expect(page.locator(".notice")).to_have_text(
        "Some answers to the check were not right. Please read the instructions again; "
        "the check follows."
    )
    participant = Participant.objects.get(study=study)
    assert participant.stage == Participant.Stage.INSTRUCTIONS
    assert participant.comprehension_failures == 1
    assert list(
        ComprehensionAttempt.objects.filter(participant=participant).values_list(
            "number", "answers", "passed"
        )
    ) == [(1, [0], False)]

    # when: instructions again, then the right answer
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Continue to a short check").click()
    page.get_by_label("100 workers'").check()
    page.get_by_role("button", name="Submit answers").click()
    expect(page.locator("#trial-form")).to_be_visible()
    total = Trial.objects.filter(participant=participant).count()
    shown = _shown_classes(page)
    entered: dict[int, Answer] = {}
    for i in range(total):
        expect_progress(page, i, total)
        wait_for_stimulus(page)
        if i == total // 2:
            # A refresh mid-study shows the same trial again, with progress unchanged.
            before = current_trial_id(page)
            page.reload()
            wait_for_stimulus(page)
            assert current_trial_id(page) == before
            expect_progress(page, i, total)
        assert _shown_classes(page) == shown
        if i == 0:
            docs_screenshot(page, "trial-categorical")
        answer = _plan(shown, i)
        _fill_answer(page, answer)
        expect(page.locator(f'#impossible-group input[value="{answer.top}"]')).to_be_disabled()
        if answer.second is not None:
            expect(
                page.locator(f'#impossible-group input[value="{answer.second}"]')
            ).to_be_disabled()
        entered[current_trial_id(page)] = answer
        page.get_by_role("button", name="Next").click()
        expect_progress(page, i + 1, total)
    # when: debrief, then completion
    page.get_by_label("Comments?").fill("Clear task.")
    page.clock.install()  # the completion page redirects after a timer: skip the wait
    page.get_by_role("button", name="Finish").click()
    expect(page.locator("#completion-code")).to_have_text("CODE123")
    expect(page.locator("#completion-link")).to_have_attribute("href", COMPLETION_URL)
    page.wait_for_load_state()  # the redirect timer is set by the page's last script
    page.clock.run_for(5000)
    page.wait_for_url(COMPLETION_URL)

    # then
    participant.refresh_from_db()
    classes = study.classes
    trials = list(Trial.objects.filter(participant=participant).order_by("position"))
    responses = {r.trial_id: r for r in Response.objects.filter(participant=participant)}
    assert participant.stage == Participant.Stage.COMPLETED
    assert participant.debrief == {"Comments?": "Clear task."}
    assert [a.passed for a in participant.comprehension_attempts.order_by("number")] == [
        False,
        True,
    ]
    assert total == 4 + study.repeats
    assert Response.objects.filter(participant=participant).count() == total
    assert sorted(responses) == sorted(t.id for t in trials) == sorted(entered)
    assert shown == [classes[i] for i in participant.class_order]
    for trial in trials:
        response, answer = responses[trial.id], entered[trial.id]
        assert response.display == {"class_order": shown}
        assert response.position == trial.position
        assert response.kind == trial.kind
        assert response.rt_ms > 0
        assert response.top_class == classes.index(answer.top)
        assert response.p1_pct == float(answer.p1)
        assert response.second_class == (
            None if answer.second is None else classes.index(answer.second)
        )
        assert response.p2_pct == (None if answer.p2 is None else float(answer.p2))
        assert response.impossible == sorted(classes.index(n) for n in answer.impossible)
    answered_stimuli = {t.stimulus_id for t in trials}
    assert set(SoftLabel.objects.filter(study=study).values_list("stimulus_id", flat=True)) == (
        answered_stimuli
    )
    assert SoftLabel.objects.filter(study=study).count() == len(answered_stimuli)


def test_double_submit_stores_one_response_and_moves_on(
    live_server: Any, make_image_study: Callable[..., Study], page: Page
) -> None:
    # given
    study = make_image_study(n_pairs=2, batch_size=4)
    participant = start_in_trials(study, "PID-DOUBLE")
    trials = list(Trial.objects.filter(participant=participant).order_by("position"))
    page.goto(session_url(live_server, participant))
    wait_for_stimulus(page)
    shown = _shown_classes(page)

    # when: a double click on Next
    _fill_answer(page, _plan(shown, 0))
    page.locator("#submit-trial").dblclick()

    # then
    expect_progress(page, 1, len(trials))
    expect(page.locator("#trial-form")).to_have_attribute("data-trial-id", str(trials[1].id))
    assert Response.objects.filter(trial=trials[0]).count() == 1
    assert Response.objects.count() == 1

    # when: two submits dispatched back to back by script
    wait_for_stimulus(page)
    _fill_answer(page, _plan(shown, 1))
    page.evaluate(
        "() => { const form = document.getElementById('trial-form');"
        " form.requestSubmit(); form.requestSubmit(); }"
    )

    # then
    expect_progress(page, 2, len(trials))
    expect(page.locator("#trial-form")).to_have_attribute("data-trial-id", str(trials[2].id))
    assert Response.objects.filter(trial=trials[1]).count() == 1
    assert Response.objects.count() == 2


def test_invalid_answers_are_refused_and_nothing_is_stored(
    live_server: Any, make_image_study: Callable[..., Study], page: Page
) -> None:
    # given
    study = make_image_study(n_pairs=2, batch_size=4)
    participant = start_in_trials(study, "PID-INVALID")
    page.goto(session_url(live_server, participant))
    wait_for_stimulus(page)
    trial_id = current_trial_id(page)
    shown = _shown_classes(page)
    top, other = shown[0], shown[1]
    error = page.locator("#trial-error")

    # when: no class chosen
    page.get_by_role("button", name="Next").click()
    # then
    expect(error).to_have_text("Please choose the most probable category.")
    assert Response.objects.exists() is False

    # when: a share of 150%
    page.locator("#top-group").get_by_text(top, exact=True).click()
    page.locator("#p1").fill("150")
    page.get_by_role("button", name="Next").click()
    # then
    expect(error).to_have_text("The first share must be between 0 and 100.")
    assert Response.objects.exists() is False

    # when: the same answer reaches the server without the page's checks
    page.evaluate(
        "([top]) => HMixTrial.submit("
        "{top_class: top, p1: 150, second_class: null, p2: null, impossible: []},"
        " document.getElementById('submit-trial'))",
        [top],
    )
    # then
    expect(error).to_have_text("p1 must be between 0 and 100, got 150.")
    expect(page.get_by_role("button", name="Next")).to_be_enabled()
    assert Response.objects.exists() is False

    # when: the top class cannot also be the second
    second_same = page.locator(f'#second-group input[value="{top}"]')
    # then
    expect(second_same).to_be_disabled()
    # A disabled control fails Playwright's actionability check: click it the way a person could.
    page.locator("#second-group").get_by_text(top, exact=True).click(force=True)
    expect(second_same).not_to_be_checked()
    expect(page.get_by_label("No alternative")).to_be_checked()

    # when: a class chosen as second is then made the top class
    page.locator("#second-group").get_by_text(other, exact=True).click()
    page.locator("#p2").fill("10")
    page.locator("#top-group").get_by_text(other, exact=True).click()
    # then: the second choice falls back to "no alternative"
    expect(page.get_by_label("No alternative")).to_be_checked()
    expect(page.locator("#p2")).to_be_disabled()
    expect(page.locator("#p2")).to_have_value("")
    expect(page.locator("#trial-form")).to_have_attribute("data-trial-id", str(trial_id))
    assert Response.objects.exists() is False


def test_shares_that_cannot_add_up_are_refused_by_the_page_and_by_the_server(
    live_server: Any, make_image_study: Callable[..., Study], page: Page
) -> None:
    # given
    study = make_image_study(n_pairs=2, batch_size=4)
    participant = start_in_trials(study, "PID-MASS")
    page.goto(session_url(live_server, participant))
    wait_for_stimulus(page)
    shown = _shown_classes(page)
    error = page.locator("#trial-error")

    # when: 5% + 5% with every other class ticked impossible
    _fill_answer(page, Answer(shown[0], p1=5, second=shown[1], p2=5, impossible=tuple(shown[2:])))
    page.get_by_role("button", name="Next").click()
    # then
    expect(error).to_have_text(
        "The shares add up to 10% and every other category is ticked as impossible: "
        "they must add up to 100%."
    )
    assert Response.objects.exists() is False

    # when: the same answer reaches the server without the page's checks
    page.evaluate(
        "([top, second, rest]) => HMixTrial.submit("
        "{top_class: top, p1: 5, second_class: second, p2: 5, impossible: rest},"
        " document.getElementById('submit-trial'))",
        [shown[0], shown[1], shown[2:]],
    )
    # then
    expect(error).to_have_text(
        "impossible: The shares add up to 10% and every other class is ruled impossible: "
        "with no class left open they must add up to 100%."
    )
    assert Response.objects.exists() is False

    # when: a top class at 0%
    page.reload()
    wait_for_stimulus(page)
    _fill_answer(page, Answer(top=shown[0], p1=0, second=None, p2=None, impossible=()))
    page.get_by_role("button", name="Next").click()
    # then
    expect(error).to_have_text("The most probable category needs a share above 0%.")
    assert Response.objects.exists() is False


def test_declining_consent_ends_the_session_without_trials(
    live_server: Any, make_image_study: Callable[..., Study], page: Page
) -> None:
    # given
    study = make_image_study(n_pairs=2, batch_size=4)
    page.goto(entry_url(live_server, study, "PID-DECLINE"))

    # when
    page.get_by_role("button", name="I do not wish to take part").click()

    # then
    expect(page.locator("#ended")).to_have_attribute("data-stage", "declined")
    expect(page.locator("#ended")).to_contain_text("You chose not to take part.")
    participant = Participant.objects.get(study=study)
    assert participant.stage == Participant.Stage.DECLINED
    assert participant.external_id == "PID-DECLINE"
    assert participant.batch is None
    assert Trial.objects.exists() is False
    assert Response.objects.exists() is False

    # when: the same worker follows the link again
    page.goto(entry_url(live_server, study, "PID-DECLINE"))
    # then
    expect(page.locator("#ended")).to_have_attribute("data-stage", "declined")
    assert Participant.objects.count() == 1
    assert Trial.objects.exists() is False


def test_returning_prolific_worker_resumes_the_same_session_at_the_same_trial(
    live_server: Any,
    make_image_study: Callable[..., Study],
    page: Page,
    new_page: Callable[[], Page],
) -> None:
    # given: a worker who answered one trial in one browser
    study = make_image_study(n_pairs=2, batch_size=4)
    page.goto(entry_url(live_server, study, "PID-BACK"))
    consent_by_mouse(page)
    participant = advance_to_trials(Participant.objects.get(study=study))
    page.reload()
    wait_for_stimulus(page)
    total = Trial.objects.filter(participant=participant).count()
    _fill_answer(page, _plan(_shown_classes(page), 0))
    page.get_by_role("button", name="Next").click()
    expect_progress(page, 1, total)
    trial_id = current_trial_id(page)

    # when: the same PROLIFIC_PID arrives in a fresh browser context (no cookies, no storage)
    other = new_page()
    other.goto(entry_url(live_server, study, "PID-BACK"))

    # then
    expect(other).to_have_url(session_url(live_server, participant))
    expect_progress(other, 1, total)
    assert current_trial_id(other) == trial_id
    assert Participant.objects.count() == 1
    participant.refresh_from_db()
    assert participant.stage == Participant.Stage.TRIALS
    assert Response.objects.filter(participant=participant).count() == 1
