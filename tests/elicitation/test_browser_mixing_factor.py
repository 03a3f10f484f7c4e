"""Interface B (infer the mixing factor, with confidence) in a real headless Chromium.

The whole participant journey runs twice, once with the mouse only and once with the keyboard
only, and every stored response is checked against what was set on the page. Sliders have no
default: an answer without both sliders set is refused by the page and by the server.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import Locator, Page, expect
from rest_framework.test import APIClient

from elicitation import imaging, services, stimulus_services
from elicitation.defaults import study_texts
from elicitation.models import ImageSet, Participant, Response, Study, Trial
from tests.browser import (
    COUNT_INPUT_SCRIPT,
    consent_by_keyboard,
    current_trial_id,
    debrief_by_keyboard,
    docs_screenshot,
    entry_url,
    expect_progress,
    input_count,
    pick_radio_by_keys,
    session_url,
    shown_position,
    tab_to,
    wait_for_stimulus,
)
from tests.conftest import start_in_trials

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COMPLETION_CODE = "MIXCODE"
NOT_SET = "Set both sliders before submitting."


@dataclass(frozen=True)
class Entered:
    mixing: int
    confidence: int
    class1: str
    class2: str


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A 1280 x 900 page in a fresh context, counting the pointer and key presses."""
    return new_page(init_script=COUNT_INPUT_SCRIPT)


@pytest.fixture
def mixing_study(researcher: Any) -> Study:
    """A live mixing-factor study with the default texts, on generated demo shapes:
    2 image pairs x λ in {0.25, 0.75} = 4 mixed images in one batch, plus 2 repeats."""
    study = services.study_create(
        slug="blend-study",
        title="Blend study",
        trial_type=Study.TrialType.MIXING_FACTOR,
        owner_id=researcher.id,
        classes=list(imaging.DEMO_CLASSES),
        participants_per_batch=3,
        repeats=2,
        completion_code=COMPLETION_CODE,
        **study_texts(Study.TrialType.MIXING_FACTOR),
    )
    image_set = stimulus_services.image_set_create(
        name="blend-shapes",
        source=ImageSet.Source.DEMO,
        images=imaging.generate_demo_images(per_class=2, seed=3),
    )
    stimuli = stimulus_services.stimuli_generate_mixup(
        study=study, image_set=image_set, lambdas=[0.25, 0.75], n_pairs=2
    )
    services.batches_build(study=study, stimuli=stimuli, batch_size=4)
    return services.study_set_status(study=study, status=Study.Status.LIVE)


@pytest.fixture
def participant_in_trials(mixing_study: Study) -> Participant:
    return start_in_trials(mixing_study, "PID-UNSET")


# --- helpers -------------------------------------------------------------------------------


def _article(name: str) -> str:
    return "an" if name[:1].upper() in "AEIOU" else "a"


def _mixing(page: Page) -> Locator:
    return page.get_by_role("slider", name="1. How much of each is in the blend?")


def _confidence(page: Page) -> Locator:
    return page.get_by_role("slider", name="2. How confident are you?")


def _read_trial(page: Page) -> tuple[str, str]:
    """The class pair the page states, after checking the page shows it consistently and
    starts with both sliders unset."""
    class1 = page.locator("#class1-name").inner_text()
    class2 = page.locator("#class2-name").inner_text()
    expect(page.locator("#blend-statement")).to_have_text(
        f"This image is a blend of {_article(class1)} {class1} and {_article(class2)} {class2}."
    )
    expect(page.locator("#mixing-ends .end-left")).to_have_text(f"100% {class1}")
    expect(page.locator("#mixing-ends .end-mid")).to_have_text("50/50")
    expect(page.locator("#mixing-ends .end-right")).to_have_text(f"100% {class2}")
    expect(page.locator("#confidence-ends .end-left")).to_have_text("0% Confident")
    expect(page.locator("#confidence-ends .end-right")).to_have_text("100% Confident")
    for slider in (_mixing(page), _confidence(page)):
        expect(slider.locator(".hslider-thumb")).to_be_hidden()
        expect(slider).to_have_attribute("aria-valuetext", "Not set")
        assert slider.get_attribute("aria-valuenow") is None
    expect(page.locator(".hslider-readout")).to_have_text(
        ["Not set yet: click or tap on the line, or type a number"] * 2
    )
    expect(page.locator("#submit-trial")).to_be_disabled()
    expect(page.locator("#slider-hint")).to_have_text("Set both sliders to continue.")
    return class1, class2


def _expect_set(page: Page, class1: str, class2: str, mixing: int, confidence: int) -> None:
    mixing_text = f"{100 - mixing}% {class1}, {mixing}% {class2}"
    expect(_mixing(page)).to_have_attribute("aria-valuenow", str(mixing))
    expect(_mixing(page)).to_have_attribute("aria-valuetext", mixing_text)
    expect(page.locator("#mixing-readout")).to_have_text(mixing_text)
    expect(_confidence(page)).to_have_attribute("aria-valuenow", str(confidence))
    expect(page.locator("#confidence-readout")).to_have_text(f"{confidence}% confident")
    for slider in (_mixing(page), _confidence(page)):
        expect(slider.locator(".hslider-thumb")).to_be_visible()
    expect(page.locator("#submit-trial")).to_be_enabled()
    expect(page.locator("#slider-hint")).to_be_hidden()


def _track_x(page: Page, slider: Locator, fraction: float) -> tuple[float, float]:
    """Viewport coordinates of `fraction` of the slider's visible track (may lie past its ends)."""
    slider.scroll_into_view_if_needed()
    box = slider.locator(".hslider-track").bounding_box()
    assert box is not None
    return box["x"] + fraction * box["width"], box["y"] + box["height"] / 2


def _value_now(slider: Locator) -> int:
    return int(slider.get_attribute("aria-valuenow") or "-1")


def _press_all(page: Page, keys: list[str]) -> None:
    for key in keys:
        page.keyboard.press(key)


def _assert_stored(participant: Participant, entered: dict[int, Entered], set_by: str) -> None:
    participant.refresh_from_db()
    trials = list(Trial.objects.filter(participant=participant).select_related("stimulus"))
    responses = {r.trial_id: r for r in Response.objects.filter(participant=participant)}
    assert participant.stage == Participant.Stage.COMPLETED
    assert len(trials) == 4 + 2
    assert sorted(responses) == sorted(t.id for t in trials) == sorted(entered)
    for trial in trials:
        response, shown = responses[trial.id], entered[trial.id]
        assert response.raw == {
            "mixing": shown.mixing,
            "confidence": shown.confidence,
            "moved_mixing": True,
            "moved_confidence": True,
            "set_by": {"mixing": set_by, "confidence": set_by},
        }
        assert response.value == {
            "mixing_raw": shown.mixing,
            "confidence_raw": shown.confidence,
            "lam_hat": 1 - shown.mixing / 100,
            "confidence": shown.confidence / 100,
            "moved_mixing": True,
            "moved_confidence": True,
            "set_by": {"mixing": set_by, "confidence": set_by},
        }
        assert response.rt_ms > 0
        assert response.display == trial.display == {"class1": shown.class1, "class2": shown.class2}
        assert (trial.stimulus.class1, trial.stimulus.class2) == (shown.class1, shown.class2)
        assert response.position == trial.position
        assert response.kind == trial.kind
    assert sorted(t.kind for t in trials) == ["main"] * 4 + ["repeat"] * 2


# --- the journeys --------------------------------------------------------------------------

# Where the mouse clicks on each trial, as a fraction of the visible track. Beyond the ends the
# value clamps to 0 or 100; ("drag", a, b) presses at a and releases at b.
MOUSE_PLAN: list[tuple[Any, float, int, int]] = [
    (0.25, 0.80, 25, 80),
    (("drag", 0.10, 0.60), 0.35, 60, 35),
    (-0.02, 1.02, 0, 100),
    (0.90, 0.50, 90, 50),
    (0.50, 0.10, 50, 10),
    (0.75, 0.66, 75, 66),
]


def test_mouse_only_journey_stores_what_was_clicked(
    live_server: Any, mixing_study: Study, page: Page
) -> None:
    # given
    page.goto(entry_url(live_server, mixing_study, "PID-MOUSE", study_id="STUDY-B"))

    # when: consent, instructions and the check, by clicking
    page.get_by_label("I am 18 years of age or older.").click()
    page.get_by_label("I have read and understood the information above.").click()
    page.get_by_label("I want to take part in this study.").click()
    page.get_by_role("button", name="I agree, continue").click()
    expect(page.get_by_role("heading", name="Blended images")).to_be_visible()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name="Your answer")).to_be_visible()
    page.get_by_role("button", name="Continue to a short check").click()
    page.get_by_label("How much of each category is in the blend").click()
    page.get_by_label("Fully left").click()
    page.get_by_role("button", name="Submit answers").click()
    expect(page.locator("#trial-form")).to_be_visible()
    participant = Participant.objects.get(study=mixing_study)
    total = Trial.objects.filter(participant=participant).count()

    # when: every trial, clicking on the tracks
    entered: dict[int, Entered] = {}
    for i, (mix_at, conf_at, mixing, confidence) in enumerate(MOUSE_PLAN):
        expect_progress(page, i, total)
        wait_for_stimulus(page)
        if i == 0:
            docs_screenshot(page, "trial-mixing-factor")
        class1, class2 = _read_trial(page)
        if isinstance(mix_at, tuple):
            _, start, end = mix_at
            page.mouse.move(*_track_x(page, _mixing(page), start))
            page.mouse.down()
            page.mouse.move(*_track_x(page, _mixing(page), end), steps=8)
            page.mouse.up()
        else:
            page.mouse.click(*_track_x(page, _mixing(page), mix_at))
        # One slider set is not enough.
        expect(page.locator("#submit-trial")).to_be_disabled()
        expect(page.locator("#slider-hint")).to_have_text(
            "Now set the confidence slider to continue."
        )
        page.mouse.click(*_track_x(page, _confidence(page), conf_at))
        shown_mixing, shown_confidence = _value_now(_mixing(page)), _value_now(_confidence(page))
        assert abs(shown_mixing - mixing) <= 2
        assert abs(shown_confidence - confidence) <= 2
        _expect_set(page, class1, class2, shown_mixing, shown_confidence)
        entered[current_trial_id(page)] = Entered(shown_mixing, shown_confidence, class1, class2)
        page.get_by_role("button", name="Next").click()
        expect_progress(page, i + 1, total)
    # when: debrief (optional text left empty), then completion
    page.get_by_role("button", name="Finish").click()

    # then
    expect(page.locator("#completion-code")).to_have_text(COMPLETION_CODE)
    assert input_count(page, "keydown") == 0
    assert input_count(page, "pointerdown") > 0
    assert total == len(MOUSE_PLAN)
    _assert_stored(participant, entered, "pointer")
    # The clamped ends are exact, whatever the rounding elsewhere.
    assert [e.mixing for e in entered.values()].count(0) == 1
    assert [e.confidence for e in entered.values()].count(100) == 1


# Keys pressed on the mixing and the confidence slider on each trial, and the values they set.
# There is no starting value: a slider is set by typing a number or by Home / End, and only then
# do the arrow and Page keys move it (an arrow pressed first sets nothing).
KEYBOARD_PLAN: list[tuple[list[str], list[str], int, int]] = [
    (["Home"], ["End"], 0, 100),
    (["End"], ["Home"], 100, 0),
    (["ArrowRight", "3", "7"], ["ArrowLeft", "8", "0", "ArrowLeft", "ArrowLeft"], 37, 78),
    (["PageUp", "6", "PageUp"], ["1", "0", "0", "PageDown"], 16, 90),
    (["Home", "ArrowRight", "ArrowRight"], ["End", "PageDown", "ArrowDown"], 2, 89),
    (["5", "ArrowDown", "ArrowUp", "ArrowUp"], ["9", "9", "5", "PageUp", "ArrowRight"], 6, 16),
]


def test_keyboard_only_journey_stores_what_was_keyed(
    live_server: Any, mixing_study: Study, page: Page
) -> None:
    # given
    page.goto(entry_url(live_server, mixing_study, "PID-KEYS", study_id="STUDY-B"))

    # when: consent, by Tab and Space, then Enter
    expect(page.locator("#consent-form")).to_be_visible()
    consent_by_keyboard(page)
    # when: two instruction pages
    expect(page.get_by_role("heading", name="Blended images")).to_be_visible()
    tab_to(page, "#next-page")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Your answer")).to_be_visible()
    tab_to(page, "#instructions-done")
    page.keyboard.press("Space")
    # when: the check; arrow keys move within a radio group
    expect(page.locator("#comprehension-form")).to_be_visible()
    for i, question in enumerate(mixing_study.comprehension):
        tab_to(page, f'input[name="q{i}"]')
        pick_radio_by_keys(page, shown_position(page, f"q{i}", question["answer"]))
    expect(page.get_by_label("How much of each category is in the blend")).to_be_checked()
    expect(page.get_by_label("Fully left")).to_be_checked()
    tab_to(page, "#comprehension-submit")
    page.keyboard.press("Enter")
    expect(page.locator("#trial-form")).to_be_visible()
    participant = Participant.objects.get(study=mixing_study)
    total = Trial.objects.filter(participant=participant).count()

    # when: every trial, keys only
    entered: dict[int, Entered] = {}
    for i, (mix_keys, conf_keys, mixing, confidence) in enumerate(KEYBOARD_PLAN):
        expect_progress(page, i, total)
        wait_for_stimulus(page)
        class1, class2 = _read_trial(page)
        tab_to(page, "#mixing-slider")
        # The focused slider shows it has focus.
        assert _mixing(page).evaluate("el => getComputedStyle(el).outlineStyle") == "solid"
        _press_all(page, mix_keys)
        expect(page.locator("#submit-trial")).to_be_disabled()
        page.keyboard.press("Tab")
        expect(_confidence(page)).to_be_focused()
        _press_all(page, conf_keys)
        _expect_set(page, class1, class2, mixing, confidence)
        entered[current_trial_id(page)] = Entered(mixing, confidence, class1, class2)
        page.keyboard.press("Tab")
        expect(page.locator("#submit-trial")).to_be_focused()
        page.keyboard.press("Enter" if i % 2 == 0 else "Space")
        expect_progress(page, i + 1, total)
    # when: debrief, then completion
    expect(page.locator("#debrief-form")).to_be_visible()
    debrief_by_keyboard(page, "Keyboard only.", box='textarea[name="a0"]')

    # then
    expect(page.locator("#completion-code")).to_have_text(COMPLETION_CODE)
    assert input_count(page, "pointerdown") == 0
    assert input_count(page, "keydown") > 0
    assert total == len(KEYBOARD_PLAN)
    _assert_stored(participant, entered, "keyboard")
    assert participant.debrief == {
        "Anything you would like to tell us about the task? (optional)": "Keyboard only."
    }


HOW_TO_START = (
    "Type a number from 0 to 100 to set this slider (or press Home or End to start from an "
    "end); then the arrow keys move it."
)


@pytest.mark.parametrize("key", ["ArrowRight", "ArrowLeft", "ArrowUp", "PageDown"])
def test_a_first_arrow_key_sets_nothing_and_says_how_to_start(
    live_server: Any, participant_in_trials: Participant, page: Page, key: str
) -> None:
    # given: keyboard only, the focus on the unset mixing slider
    page.goto(session_url(live_server, participant_in_trials))
    wait_for_stimulus(page)
    class1, class2 = _read_trial(page)
    tab_to(page, "#mixing-slider")

    # when
    page.keyboard.press(key)

    # then: no value, no thumb, and the page says how to set one (no anchor at 50)
    slider = _mixing(page)
    expect(page.locator("#mixing-readout")).to_have_text(HOW_TO_START)
    expect(page.locator("#slider-hint")).to_have_text(HOW_TO_START)
    expect(slider.locator(".hslider-thumb")).to_be_hidden()
    expect(slider).to_have_attribute("aria-valuetext", "Not set")
    assert slider.get_attribute("aria-valuenow") is None
    expect(page.locator("#submit-trial")).to_be_disabled()
    assert page.evaluate("() => window.scrollY") == 0  # the key did not scroll the page either

    # when: the participant types the value they mean, then adjusts it
    page.keyboard.type("64")
    # then
    expect(slider).to_have_attribute("aria-valuenow", "64")
    page.keyboard.press(key)
    moved = {"ArrowRight": 65, "ArrowLeft": 63, "ArrowUp": 65, "PageDown": 54}[key]
    expect(slider).to_have_attribute("aria-valuenow", str(moved))
    expect(page.locator("#mixing-readout")).to_have_text(
        f"{100 - moved}% {class1}, {moved}% {class2}"
    )
    expect(page.locator("#slider-hint")).to_have_text("Now set the confidence slider to continue.")
    assert input_count(page, "pointerdown") == 0


# --- refusing an unset answer --------------------------------------------------------------


def test_page_refuses_to_submit_until_both_sliders_are_set(
    live_server: Any, participant_in_trials: Participant, page: Page
) -> None:
    # given
    page.goto(session_url(live_server, participant_in_trials))
    wait_for_stimulus(page)
    trial_id = current_trial_id(page)
    class1, class2 = _read_trial(page)
    error = page.locator("#trial-error")

    # when: the form is submitted anyway (Next is disabled, so by script)
    page.locator("#submit-trial").click(force=True)
    page.evaluate("() => document.getElementById('trial-form').requestSubmit()")

    # then
    expect(error).to_have_text(NOT_SET)
    expect(_mixing(page)).to_be_focused()
    expect(page.locator("#submit-trial")).to_be_disabled()
    assert Response.objects.exists() is False

    # when: only the mixing slider is set
    page.keyboard.press("End")
    page.evaluate("() => document.getElementById('trial-form').requestSubmit()")

    # then
    expect(page.locator("#slider-hint")).to_have_text("Now set the confidence slider to continue.")
    expect(error).to_have_text(NOT_SET)
    expect(_confidence(page)).to_be_focused()
    expect(page.locator("#submit-trial")).to_be_disabled()
    assert Response.objects.exists() is False

    # when: an answer claiming untouched sliders reaches the server without the page's checks
    page.evaluate(
        "() => HMixTrial.submit({mixing: 50, confidence: 50, moved_mixing: false,"
        " moved_confidence: false}, document.getElementById('submit-trial'))"
    )

    # then
    expect(error).to_have_text(NOT_SET)
    assert current_trial_id(page) == trial_id
    assert Response.objects.exists() is False

    # when: both sliders are set, the same trial is answered normally
    page.keyboard.press("Home")
    _expect_set(page, class1, class2, 100, 0)
    expect(error).to_be_hidden()
    page.get_by_role("button", name="Next").click()

    # then
    expect_progress(page, 1, 6)
    response = Response.objects.get()
    assert response.trial_id == trial_id
    assert response.value["mixing_raw"] == 100
    assert response.value["confidence_raw"] == 0


@pytest.mark.parametrize(
    ("moved_mixing", "moved_confidence"), [(False, True), (True, False), (False, False)]
)
def test_api_refuses_an_answer_without_both_sliders_set(
    api_client: APIClient,
    participant_in_trials: Participant,
    moved_mixing: bool,
    moved_confidence: bool,
) -> None:
    # given
    trial = participant_in_trials.trials.order_by("position").first()
    assert trial is not None
    url = reverse(
        "participant-api:session-responses", kwargs={"token": participant_in_trials.token}
    )
    body = {
        "trial": trial.id,
        "client_key": str(uuid.uuid4()),
        "rt_ms": 900,
        "answer": {
            "mixing": 50,
            "confidence": 50,
            "moved_mixing": moved_mixing,
            "moved_confidence": moved_confidence,
        },
    }

    # when
    res = api_client.post(url, body, format="json")

    # then
    assert res.status_code == 400
    assert res.json()["message"] == NOT_SET
    assert Response.objects.exists() is False
    participant_in_trials.refresh_from_db()
    assert participant_in_trials.stage == Participant.Stage.TRIALS
