"""Interfaces C (construct the 50/50 point) and D (select it) in a real headless Chromium.

Each interface is walked end to end twice: once with the mouse only and once with the keyboard
only (consent, instructions, check, trials and debrief), and the test asserts what was stored.
"""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from elicitation import imaging, services, stimulus_services
from elicitation.defaults import study_texts
from elicitation.models import ImageSet, Participant, Response, StimulusImage, Study, Trial
from tests.browser import (
    COUNT_INPUT_SCRIPT,
    current_trial_id,
    debrief_by_keyboard,
    docs_screenshot,
    entry_url,
    expect_progress,
    input_count,
    session_url,
    start_by_keyboard,
    start_by_mouse,
    tab_to,
)
from tests.conftest import start_in_trials

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc=CODE123"
LAST_STEP = 10


@pytest.fixture
def new_page(new_page: Callable[..., Page]) -> Callable[..., Page]:
    """new_page(width=1280, height=900): the shared pages, counting the pointer and key presses,
    with Prolific's completion page answered locally."""

    def make(width: int = 1280, height: int = 900) -> Page:
        page = new_page(width, height, init_script=COUNT_INPUT_SCRIPT)
        page.route(
            "https://app.prolific.com/**",
            lambda route: route.fulfill(status=200, content_type="text/html", body="<p>done</p>"),
        )
        return page

    return make


@pytest.fixture
def make_series_study(researcher: Any) -> Callable[..., Study]:
    """A live study of interface C or D on midpoint series of generated demo shapes."""

    def make(*, trial_type: str, n_pairs: int = 2, batch_size: int = 2, repeats: int = 1) -> Study:
        study = services.study_create(
            slug=f"series-{uuid.uuid4().hex[:12]}",
            title="Find the 50/50 blend",
            trial_type=trial_type,
            owner_id=researcher.id,
            classes=list(imaging.DEMO_CLASSES),
            participants_per_batch=3,
            repeats=repeats,
            completion_code="CODE123",
            prolific_completion_url="https://app.prolific.com/submissions/complete?cc={code}",
            **study_texts(trial_type),
        )
        image_set = ImageSet.objects.filter(name="series-shapes").first()
        if image_set is None:
            image_set = stimulus_services.image_set_create(
                name="series-shapes",
                source=ImageSet.Source.DEMO,
                images=imaging.generate_demo_images(per_class=1, seed=3),
            )
        stimuli = stimulus_services.stimuli_generate_series(
            study=study, image_set=image_set, n_pairs=n_pairs, seed=1
        )
        services.batches_build(study=study, stimuli=stimuli, batch_size=batch_size)
        services.study_set_status(study=study, status=Study.Status.LIVE)
        return study

    return make


# --- helpers ---------------------------------------------------------------------------------


def _trial(page: Page) -> Trial:
    return Trial.objects.select_related("stimulus").get(id=current_trial_id(page))


def _step_urls(trial: Trial) -> list[str]:
    """The frame URLs of the trial's series, step 0..10, read from the database."""
    frames = StimulusImage.objects.filter(stimulus=trial.stimulus, role="step").order_by("index")
    return [reverse("elicitation:frame-image", kwargs={"public_id": f.public_id}) for f in frames]


def _start(page: Page, study: Study, *, keyboard: bool) -> None:
    """Consent, instructions and the check, by keyboard only or by mouse only."""
    if keyboard:
        start_by_keyboard(page, study, expect_answer=True)
    else:
        start_by_mouse(page, study)
    expect(page.locator("#trial-form")).to_be_visible()


def _finish(page: Page, *, keyboard: bool) -> dict[str, int]:
    """Debrief and the completion page; returns the tab's pointer and key press counts."""
    expect(page.locator("#debrief-form")).to_be_visible()
    page.clock.install()  # the completion page redirects after a timer: skip the wait
    if keyboard:
        debrief_by_keyboard(page, "Clear.")
    else:
        page.get_by_role("button", name="Finish").click()
    expect(page.locator("#completion-code")).to_have_text("CODE123")
    counts = {"pointer": input_count(page, "pointerdown"), "key": input_count(page, "keydown")}
    page.wait_for_load_state()
    page.clock.run_for(5000)
    page.wait_for_url(COMPLETION_URL)
    return counts


# --- C: construct the 50/50 point --------------------------------------------------------------


def _walk_targets(trial_number: int) -> list[int]:
    """Where trial `trial_number` walks to, in order: the first visits both ends."""
    return [[LAST_STEP, 0, 5], [3], [2, 1]][trial_number % 3]


def _construct_walk(page: Page, trial: Trial, *, keyboard: bool) -> list[int]:
    """Walk the series to each target step; returns every step shown, in order."""
    urls = _step_urls(trial)
    image = page.locator("#stimulus")
    more1 = page.get_by_role("button", name=f"More {trial.display['class1']}")
    more2 = page.get_by_role("button", name=f"More {trial.display['class2']}")
    step = trial.display["start_step"]
    expect(image).to_have_attribute("src", urls[step])
    expect(page.locator("#submit-trial")).to_be_enabled()  # the clock runs: moves count now
    assert page.evaluate("() => HMixTrial.config.view.step_urls") == urls
    shown = [step]
    if trial.position % 3 == 2:
        # The start step alone is no answer: the page says so and nothing is stored.
        if keyboard:
            page.keyboard.press("Enter")
        else:
            page.get_by_role("button", name="Continue").click()
        expect(page.locator("#trial-error")).to_have_text(
            "Take at least one step through the series before submitting."
        )
        assert Response.objects.filter(trial=trial).exists() is False
    for target in _walk_targets(trial.position):
        while step != target:
            delta = 1 if target > step else -1
            if keyboard:
                page.keyboard.press("ArrowLeft" if delta == 1 else "ArrowRight")
            else:
                (more1 if delta == 1 else more2).click()
            step += delta
            shown.append(step)
            # Every frame was preloaded, so the new image is there at once.
            expect(image).to_have_attribute("src", urls[step])
        if step in (0, LAST_STEP):
            # At an end the button towards it is disabled and its key does nothing.
            expect(more1 if step == LAST_STEP else more2).to_be_disabled()
            expect(more2 if step == LAST_STEP else more1).to_be_enabled()
            if keyboard:
                page.keyboard.press("ArrowLeft" if step == LAST_STEP else "ArrowRight")
            expect(image).to_have_attribute("src", urls[step])
    if keyboard:
        page.keyboard.press("Enter")
    else:
        page.get_by_role("button", name="Continue").click()
    return shown


@pytest.mark.parametrize("keyboard", [False, True], ids=["mouse", "keyboard"])
def test_construct_midpoint_journey_stores_each_walk(
    live_server: Any,
    make_series_study: Callable[..., Study],
    new_page: Callable[..., Page],
    keyboard: bool,
) -> None:
    # given
    study = make_series_study(trial_type=Study.TrialType.CONSTRUCT_MIDPOINT)
    page = new_page()
    page.goto(entry_url(live_server, study, "PID-C"))

    # when
    _start(page, study, keyboard=keyboard)
    participant = Participant.objects.get(study=study)
    total = Trial.objects.filter(participant=participant).count()
    walked: dict[int, list[int]] = {}
    for i in range(total):
        expect_progress(page, i, total)
        trial = _trial(page)
        if i == 0:
            # About 450 px tall (14 screen pixels per image pixel), upscaled without blurring.
            box = page.locator("#stimulus").bounding_box()
            assert box is not None
            assert (round(box["width"]), round(box["height"])) == (448, 448)
            rendering = page.locator("#stimulus").evaluate(
                "(img) => getComputedStyle(img).imageRendering"
            )
            assert rendering == "pixelated"
            if not keyboard:
                docs_screenshot(page, "trial-construct-midpoint")
        walked[trial.id] = _construct_walk(page, trial, keyboard=keyboard)
        expect_progress(page, i + 1, total)
    counts = _finish(page, keyboard=keyboard)

    # then
    participant.refresh_from_db()
    trials = list(Trial.objects.filter(participant=participant).order_by("position"))
    responses = {r.trial_id: r for r in Response.objects.filter(participant=participant)}
    assert participant.stage == Participant.Stage.COMPLETED
    assert participant.debrief == {
        study.debrief_questions[0]: "Clear." if keyboard else "",
    }
    assert (counts["pointer"] == 0) is keyboard
    assert (counts["key"] == 0) is not keyboard
    assert total == 2 + study.repeats == 3
    assert sorted(responses) == sorted(walked) == sorted(t.id for t in trials)
    assert walked[trials[0].id] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, *range(9, -1, -1), 1, 2, 3, 4, 5]
    for trial in trials:
        response, steps = responses[trial.id], walked[trial.id]
        visits = response.value["visits"]
        times = [v["t_ms"] for v in visits]
        assert trial.display["start_step"] == 1  # the first participant of the batch
        assert response.display == trial.display
        assert response.kind == trial.kind
        assert response.position == trial.position
        assert response.value["start_step"] == trial.display["start_step"]
        assert response.value["final_step"] == steps[-1]
        assert response.value["lam"] == steps[-1] / 10
        assert [v["step"] for v in visits] == steps
        assert times[0] == 0.0
        assert times == sorted(times)
        assert times[-1] <= response.rt_ms + 0.5
        assert response.rt_ms > 0
        assert response.raw == {"final_step": steps[-1], "visits": visits}
    assert [t.kind for t in trials] == [Trial.Kind.MAIN, Trial.Kind.MAIN, Trial.Kind.REPEAT]


def test_construct_midpoint_counterbalances_the_start_step_within_a_batch(
    live_server: Any, make_series_study: Callable[..., Study], new_page: Callable[..., Page]
) -> None:
    # given: two participants in the one batch
    study = make_series_study(trial_type=Study.TrialType.CONSTRUCT_MIDPOINT, batch_size=2)
    # Each answers at the start step, which this study allows.
    services.study_update(study=study, allow_no_steps=True)
    participants = []
    for pid in ("PID-FIRST", "PID-SECOND"):
        participants.append(start_in_trials(study, pid))

    # when: each submits their first trial as shown
    shown_src: list[str | None] = []
    first_trials: list[Trial] = []
    for participant in participants:
        page = new_page()
        page.goto(session_url(live_server, participant))
        trial = _trial(page)
        expect(page.get_by_role("button", name="Continue")).to_be_enabled()
        shown_src.append(page.locator("#stimulus").get_attribute("src"))
        first_trials.append(trial)
        page.get_by_role("button", name="Continue").click()
        expect_progress(page, 1, 3)

    # then
    assert participants[0].batch_id == participants[1].batch_id
    starts = [t.display["start_step"] for t in first_trials]
    assert starts == [1, 9]
    assert shown_src == [_step_urls(t)[s] for t, s in zip(first_trials, starts, strict=True)]
    for participant, start in zip(participants, starts, strict=True):
        trials = Trial.objects.filter(participant=participant)
        assert {t.display["start_step"] for t in trials} == {start}
        response = Response.objects.get(participant=participant)
        assert response.value["start_step"] == start
        assert response.value["final_step"] == start
        assert response.value["visits"] == [{"step": start, "t_ms": 0.0}]


# --- D: select the 50/50 point ----------------------------------------------------------------


def _shown_order(page: Page, trial: Trial) -> list[int]:
    """The steps of the images on the page, left to right, found by their frame URLs."""
    step_of = {url: step for step, url in enumerate(_step_urls(trial))}
    srcs = page.locator("#options img").evaluate_all(
        "(imgs) => imgs.map((i) => i.getAttribute('src'))"
    )
    return [step_of[src] for src in srcs]


def _choose(page: Page, position: int, *, keyboard: bool) -> None:
    options = page.locator('#options [role="radio"]')
    next_button = page.get_by_role("button", name="Next")
    expect(next_button).to_be_disabled()
    # Choices count once every image is on screen and the response clock runs.
    expect(page.locator("#trial-form")).to_have_attribute("data-ready", "true")
    if keyboard:
        tab_to(page, '#options [role="radio"]')
        page.keyboard.press("End")
        page.keyboard.press("Home")
        for _ in range(position):
            page.keyboard.press("ArrowRight")
        expect(options.nth(position)).to_be_focused()
        page.keyboard.press("Space" if position % 2 else "Enter")
        expect(options.nth(position)).to_have_attribute("aria-checked", "true")
        tab_to(page, "#submit-trial")
        page.keyboard.press("Enter")
    else:
        # A change of mind: only the last click counts, and only it is outlined.
        options.nth((position + 1) % 11).click()
        options.nth(position).click()
        expect(page.locator('#options [aria-checked="true"]')).to_have_count(1)
        expect(options.nth(position)).to_have_attribute("aria-checked", "true")
        next_button.click()


@pytest.mark.parametrize("keyboard", [False, True], ids=["mouse", "keyboard"])
def test_select_midpoint_journey_stores_the_chosen_step_and_the_order_shown(
    live_server: Any,
    make_series_study: Callable[..., Study],
    new_page: Callable[..., Page],
    keyboard: bool,
) -> None:
    # given
    study = make_series_study(trial_type=Study.TrialType.SELECT_MIDPOINT, repeats=2)
    page = new_page(1680, 1050)
    page.goto(entry_url(live_server, study, "PID-D"))

    # when
    _start(page, study, keyboard=keyboard)
    participant = Participant.objects.get(study=study)
    total = Trial.objects.filter(participant=participant).count()
    chosen: dict[int, int] = {}
    orders: dict[int, list[int]] = {}
    for i in range(total):
        expect_progress(page, i, total)
        trial = _trial(page)
        expect(page.locator("#options img")).to_have_count(11)
        if i == 0:
            # About 250 px wide each on a wide screen, upscaled without blurring.
            widths = page.locator("#options img").evaluate_all(
                "(imgs) => imgs.map((i) => i.getBoundingClientRect().width)"
            )
            assert all(240 <= w <= 260 for w in widths), widths
            if not keyboard:
                docs_screenshot(page, "trial-select-midpoint")
        orders[trial.id] = _shown_order(page, trial)
        chosen[trial.id] = (3 + 4 * i) % 11
        _choose(page, chosen[trial.id], keyboard=keyboard)
        expect_progress(page, i + 1, total)
    counts = _finish(page, keyboard=keyboard)

    # then
    participant.refresh_from_db()
    trials = list(Trial.objects.filter(participant=participant).order_by("position"))
    responses = {r.trial_id: r for r in Response.objects.filter(participant=participant)}
    assert participant.stage == Participant.Stage.COMPLETED
    assert (counts["pointer"] == 0) is keyboard
    assert (counts["key"] == 0) is not keyboard
    assert total == 2 + study.repeats == 4
    assert sorted(responses) == sorted(chosen) == sorted(t.id for t in trials)
    for trial in trials:
        response, order = responses[trial.id], orders[trial.id]
        position = chosen[trial.id]
        assert sorted(order) == list(range(11))
        assert trial.display["order"] == order
        assert response.display == trial.display
        assert response.value == {
            "chosen_position": position,
            "chosen_step": order[position],
            "lam": order[position] / 10,
            "order": order,
        }
        assert response.raw == {"chosen_position": position}
        assert response.kind == trial.kind
        assert response.rt_ms > 0
    # Repeats show the same series again in an order shuffled afresh, stored with that trial.
    repeats = [t for t in trials if t.kind == Trial.Kind.REPEAT]
    assert len(repeats) == 2
    for repeat in repeats:
        main = next(
            t for t in trials if t.kind == Trial.Kind.MAIN and t.stimulus_id == repeat.stimulus_id
        )
        assert orders[repeat.id] != orders[main.id]
        assert responses[repeat.id].value["order"] == orders[repeat.id]
