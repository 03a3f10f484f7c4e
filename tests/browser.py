"""Helpers shared by the browser tests (Playwright's sync API against `live_server`).

The `browser`, `new_page` and `page` fixtures are in tests/conftest.py. What is here does not
depend on the interface under test: how Chromium is launched, the participant URLs, reading the
trial page, moving focus with Tab, and the walks through consent, instructions, the comprehension
check and the debrief with the default study texts (one instructions page, one question).
"""

import os
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from elicitation.models import Participant, Study

CHROMIUM = os.environ.get("HMIX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000
# Counts every pointer press and key press in the tab (sessionStorage survives navigation), so a
# journey can prove it used only one kind of input: new_page(init_script=COUNT_INPUT_SCRIPT).
COUNT_INPUT_SCRIPT = """
for (const type of ["pointerdown", "keydown"]) {
  window.addEventListener(type, () => {
    const key = "hmix-input-" + type;
    sessionStorage.setItem(key, String(Number(sessionStorage.getItem(key) || 0) + 1));
  }, true);
}
"""

expect.set_options(timeout=TIMEOUT_MS)

# The user guide's screenshots (docs/user-guide/interfaces.md, dashboard.md) are taken by the
# browser tests on the project's own demo shapes and test drawings. They are written only when
# asked (`make screenshots`): an ordinary test run must not rewrite tracked files, and shuffled
# class orders would change the PNGs from run to run.
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
SCREENSHOTS_ENV = "HMIX_DOCS_SCREENSHOTS"


def docs_screenshot(page: Page, name: str) -> Path | None:
    """Save what `page` shows as docs/img/<name>.png when HMIX_DOCS_SCREENSHOTS=1; the path
    written, or None when screenshots were not asked for."""
    if os.environ.get(SCREENSHOTS_ENV) != "1":
        return None
    page.wait_for_function(
        "() => Array.from(document.images).every((img) => img.complete && img.naturalWidth > 0)"
    )
    path = DOCS_IMG / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=True, animations="disabled", caret="hide")
    assert path.read_bytes().startswith(b"\x89PNG"), path
    return path


def input_count(page: Page, event: str) -> int:
    """How many `event`s ("pointerdown" or "keydown") COUNT_INPUT_SCRIPT has seen in this tab."""
    return int(page.evaluate(f"() => sessionStorage.getItem('hmix-input-{event}') || '0'"))


def entry_url(live_server: Any, study: Study, pid: str, *, study_id: str = "STUDY-1") -> str:
    """The study link a Prolific worker follows."""
    return (
        f"{live_server.url}/s/{study.slug}/"
        f"?PROLIFIC_PID={pid}&STUDY_ID={study_id}&SESSION_ID=SESSION-{pid}"
    )


def session_url(live_server: Any, participant: Participant) -> str:
    return f"{live_server.url}/p/{participant.token}/"


def current_trial_id(page: Page) -> int:
    return int(page.locator("#trial-form").get_attribute("data-trial-id") or "0")


def expect_progress(page: Page, answered: int, total: int) -> None:
    expect(page.locator(".progress-text")).to_have_text(f"{answered} / {total}")


def wait_for_stimulus(page: Page) -> None:
    # The response clock starts at the first paint of the image, so answer only once it is shown.
    page.wait_for_function(
        "() => { const img = document.getElementById('stimulus');"
        " return img.complete && img.naturalWidth > 0; }"
    )


def tab_to(page: Page, selector: str, *, limit: int = 40) -> None:
    """Press Tab until the focused element matches `selector`, as a keyboard user would (no key
    is pressed if it has the focus already: reading the focus is not input)."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def pick_radio_by_keys(page: Page, option: int) -> None:
    """Choose option `option` of the radio group that has the focus."""
    # Tab lands on the first radio of an unanswered group without choosing it.
    if option == 0:
        page.keyboard.press("Space")
    for _ in range(option):
        page.keyboard.press("ArrowDown")


def right_comprehension_option(study: Study) -> str:
    question = study.comprehension[0]
    return question["options"][question["answer"]]


def consent_by_mouse(page: Page) -> None:
    page.get_by_label("I am 18 years of age or older.").check()
    page.get_by_label("I have read and understood the information above.").check()
    page.get_by_label("I want to take part in this study.").check()
    page.get_by_role("button", name="I agree, continue").click()


def consent_by_keyboard(page: Page, *, enter_in_last_box: bool = False) -> None:
    """Tick the three boxes with Tab and Space, then agree: by Tab to the button and Enter, or
    with `enter_in_last_box` by Enter in the last box (the form's default button must agree)."""
    for name in ("adult", "understood", "agree"):
        tab_to(page, f'input[name="{name}"]')
        page.keyboard.press("Space")
    if not enter_in_last_box:
        tab_to(page, "#consent-submit")
    page.keyboard.press("Enter")


def start_by_mouse(page: Page, study: Study) -> None:
    """Consent, instructions and the right answer to the check, by clicking."""
    consent_by_mouse(page)
    page.get_by_role("button", name="Continue to a short check").click()
    page.get_by_label(right_comprehension_option(study)).check()
    page.get_by_role("button", name="Submit answers").click()


def start_by_keyboard(
    page: Page, study: Study, *, enter_in_last_box: bool = False, expect_answer: bool = False
) -> None:
    """Consent, instructions and the right answer to the check, by keyboard only (see
    consent_by_keyboard); with `expect_answer`, check the right option is chosen before sending."""
    consent_by_keyboard(page, enter_in_last_box=enter_in_last_box)
    expect(page.locator("#instructions-done")).to_be_visible()
    tab_to(page, "#instructions-done")
    page.keyboard.press("Enter")
    expect(page.locator("#comprehension-form")).to_be_visible()
    tab_to(page, 'input[name="q0"]')
    pick_radio_by_keys(page, study.comprehension[0]["answer"])
    if expect_answer:
        expect(page.get_by_label(right_comprehension_option(study))).to_be_checked()
    tab_to(page, "#comprehension-submit")
    page.keyboard.press("Enter")


def debrief_by_keyboard(page: Page, text: str, *, box: str = "textarea") -> None:
    """Type `text` in the debrief's `box`, then send the form, by keyboard only."""
    tab_to(page, box)
    page.keyboard.type(text)
    tab_to(page, "#debrief-submit")
    page.keyboard.press("Enter")
