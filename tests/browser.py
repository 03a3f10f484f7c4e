"""Helpers shared by the browser tests (Playwright's sync API against `live_server`).

The `browser`, `new_page` and `page` fixtures are in tests/conftest.py. What is here does not
depend on the interface under test: how Chromium is launched, the participant URLs, reading the
trial page, moving focus with Tab, and the walks through consent, instructions, the comprehension
check and the debrief with the default study texts (one instructions page, one question).
"""

import json
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
# Logs every Content-Security-Policy violation of the document to the console, where new_page
# collects it (Chromium logs its own "Refused to ..." line as well, but not for every kind).
CSP_REPORT_SCRIPT = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP ${e.effectiveDirective} refused ${e.blockedURI || "inline"} `
    + `at ${e.sourceFile || document.location.href}:${e.lineNumber}`);
});
"""
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


def shown_position(page: Page, name: str, value: int) -> int:
    """Where option `value` of radio group `name` is on the page (the check shuffles them)."""
    values = page.locator(f'input[name="{name}"]').evaluate_all("(els) => els.map((e) => e.value)")
    return [int(v) for v in values].index(value)


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
    pick_radio_by_keys(page, shown_position(page, "q0", study.comprehension[0]["answer"]))
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


# --- layout, tap targets and contrast (issue 9, acceptance 6) ------------------------------------
# Measured in the browser from computed geometry and computed colours, never judged by eye.

PHONE = (390, 844)  # CSS px: a common phone in portrait (iPhone 12 to 15)
DESKTOP = (1280, 900)
VIEWPORTS = {"phone": PHONE, "desktop": DESKTOP}
# WCAG 2.2 success criterion 2.5.5 (target size, enhanced): 44 × 44 CSS px.
MIN_TARGET_PX = 44
# WCAG 2.2 success criterion 1.4.3 (contrast, minimum) for normal text; applied to all text.
MIN_CONTRAST = 4.5

# Shared by the checks below: a description of an element for messages, its rectangle, whether
# it lies wholly inside the viewport, and whether a tap at its centre reaches it (not a sticky
# header or anything else drawn over it).
_GEOMETRY_JS = """
const describe = (el) => {
  const id = el.id ? "#" + el.id : "";
  const cls = typeof el.className === "string" && el.className
    ? "." + el.className.trim().split(/\\s+/).join(".") : "";
  const text = (el.innerText || el.getAttribute("aria-label") || el.alt || "").trim()
    .replace(/\\s+/g, " ").slice(0, 40);
  return `${el.tagName.toLowerCase()}${id}${cls}${text ? ` "${text}"` : ""}`;
};
const box = (el) => {
  const r = el.getBoundingClientRect();
  return { left: r.left, top: r.top, right: r.right, bottom: r.bottom,
           width: r.width, height: r.height };
};
const inView = (r) => r.width > 0 && r.height > 0 && r.left >= -0.5 && r.top >= -0.5
  && r.right <= innerWidth + 0.5 && r.bottom <= innerHeight + 0.5;
const reachable = (el) => {
  const r = el.getBoundingClientRect();
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return hit !== null && (hit === el || el.contains(hit) || hit.contains(el)
    || (hit.closest("label") !== null && hit.closest("label") === el.closest("label")));
};
"""


def _all(selectors: list[str]) -> str:
    """A JS expression for the elements matching `selectors`, in document order."""
    return f"Array.from(document.querySelectorAll({json.dumps(', '.join(selectors))}))"


def out_of_view(page: Page, selectors: list[str]) -> list[str]:
    """What of `selectors` (every match) is not wholly on screen right now, or cannot be tapped
    at its centre because something is drawn over it; [] when all of it is. A selector that
    matches nothing is reported too."""
    return page.evaluate(
        f"""(selectors) => {{
        {_GEOMETRY_JS}
        const problems = [];
        for (const s of selectors) {{
          const found = Array.from(document.querySelectorAll(s));
          if (!found.length) problems.push(`${{s}}: matches nothing`);
          for (const el of found) {{
            const r = box(el);
            if (!inView(r)) problems.push(`${{describe(el)}} at ${{JSON.stringify(r)}}`
              + ` outside ${{innerWidth}}×${{innerHeight}} (scrollY ${{scrollY}})`);
            else if (!reachable(el)) problems.push(`${{describe(el)}} is covered`);
          }}
        }}
        return problems;
        }}""",
        selectors,
    )


def assert_in_view_together(page: Page, selectors: list[str]) -> None:
    """Everything `selectors` match is on screen at once, at the current scroll position."""
    problems = out_of_view(page, selectors)
    assert problems == [], "\n".join(problems)


def assert_answerable_with_stimulus_in_view(
    page: Page, *, stimulus: list[str], controls: list[str]
) -> None:
    """Walk the controls in page order as a participant filling the form in: scroll down only
    when the next control is not wholly visible (until its bottom meets the screen's), then
    check that it can be tapped and the stimulus is still wholly on screen. So nobody has to
    scroll past the stimulus to answer. Leaves the page scrolled to the top."""
    page.evaluate("() => window.scrollTo(0, 0)")
    count = page.evaluate(f"() => {_all(controls)}.length")
    assert count > 0, f"no control matches {controls}"
    for i in range(count):
        page.evaluate(
            f"""(i) => {{
            {_GEOMETRY_JS}
            const el = {_all(controls)}[i];
            if (!inView(box(el)) || !reachable(el)) el.scrollIntoView({{ block: "end" }});
            }}""",
            i,
        )
        problems = page.evaluate(
            f"""(i) => {{
            {_GEOMETRY_JS}
            const el = {_all(controls)}[i];
            return !inView(box(el)) ? [`${{describe(el)}} at ${{JSON.stringify(box(el))}}`]
              : reachable(el) ? [] : [`${{describe(el)}} is covered`];
            }}""",
            i,
        )
        problems += [f"stimulus: {p}" for p in out_of_view(page, stimulus)]
        assert problems == [], f"answering control {i} of {controls}:\n" + "\n".join(problems)
    page.evaluate("() => window.scrollTo(0, 0)")


def assert_no_sideways_scrolling(page: Page) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px screen"


def small_tap_targets(page: Page, min_px: int = MIN_TARGET_PX) -> list[str]:
    """Every visible control whose tap target is smaller than min_px × min_px: the control's
    own box, or its label's when the control sits in a label (tapping the label works it)."""
    return page.evaluate(
        f"""(min) => {{
        {_GEOMETRY_JS}
        const controls = document.querySelectorAll(
          "a[href], button, input:not([type=hidden]), select, textarea, [role=slider],"
          + " [role=radio], [role=button], [tabindex]:not([tabindex='-1'])");
        const seen = new Set();
        const small = [];
        for (const control of controls) {{
          const target = control.closest("label") || control;
          if (seen.has(target)) continue;
          seen.add(target);
          if (!target.checkVisibility({{ visibilityProperty: true }})) continue;
          const r = box(target);
          if (r.width < min - 0.01 || r.height < min - 0.01) {{
            small.push(`${{describe(target)}}: ${{r.width.toFixed(1)}} × ${{r.height.toFixed(1)}}`);
          }}
        }}
        return small;
        }}""",
        min_px,
    )


# Contrast of every visible piece of text. The text colour is composited over the background
# actually painted under it: at points along each line of text, document.elementsFromPoint
# gives every box under the text in paint order (the ancestors, and positioned siblings such as
# a progress bar behind a label), and their background colours are composited from the page
# canvas (white) upwards; where something covers the text, or the text's element is not hit
# (pointer-events), the background is found by walking the ancestors instead. Text of disabled
# controls is left out (WCAG 1.4.3 exempts inactive components); a background image under text
# is reported rather than guessed at. Colours are WCAG 2.x relative luminance of sRGB.
_CONTRAST_JS = """(minRatio) => {
  const parse = (c) => {
    const m = /^rgba?\\(([^)]+)\\)$/.exec(c.trim());
    if (!m) throw new Error("cannot read the colour " + c);
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3]))
    .concat([1]);
  const channel = (v) => {
    v /= 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const luminance = (c) => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
  const ratio = (a, b) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const problems = [];
  const composite = (layers) => {
    // layers: top first. Returns the opaque colour they paint, over the white canvas.
    let colour = [255, 255, 255, 1];
    for (const el of layers.slice().reverse()) {
      const style = getComputedStyle(el);
      if (style.backgroundImage !== "none") {
        problems.push("background image under text in " + el.tagName);
      }
      colour = over(parse(style.backgroundColor), colour);
    }
    return colour;
  };
  const ancestors = (el) => {
    const out = [];
    for (let e = el; e; e = e.parentElement) out.push(e);
    return out;
  };
  const inactive = (el) => el.closest("button:disabled, fieldset:disabled, .disabled")
    || el.closest("label")?.querySelector("input:disabled, select:disabled, textarea:disabled");
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const scrollY0 = scrollY;
  const checked = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.data.trim() || !el || ["SCRIPT", "STYLE"].includes(el.tagName)) continue;
    if (!el.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
    if (inactive(el)) continue;
    el.scrollIntoView({ block: "center" });
    const range = document.createRange();
    range.selectNodeContents(node);
    const lines = Array.from(range.getClientRects()).filter((r) => r.width >= 2 && r.height >= 2);
    if (!lines.length) continue;
    let opacity = 1;
    for (const e of ancestors(el)) opacity *= Number(getComputedStyle(e).opacity);
    const text = parse(getComputedStyle(el).color);
    text[3] *= opacity;
    let worst = Infinity;
    let worstBg = null;
    for (const line of lines) {
      for (const f of [0.1, 0.5, 0.9]) {
        const x = line.left + f * line.width;
        const y = line.top + line.height / 2;
        if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) continue;
        const stack = document.elementsFromPoint(x, y);
        const at = stack.indexOf(el);
        const covered = at < 0 || stack.slice(0, at).some((e) => !el.contains(e));
        const bg = composite(covered ? ancestors(el) : stack.slice(at));
        const r = ratio(over(text, bg), bg);
        if (r < worst) { worst = r; worstBg = bg; }
      }
    }
    if (worst === Infinity) {
      const bg = composite(ancestors(el));
      worst = ratio(over(text, bg), bg);
      worstBg = bg;
    }
    checked.push(node.data.trim());
    if (worst < minRatio) {
      problems.push(`"${node.data.trim().slice(0, 40)}" in ${el.tagName.toLowerCase()}`
        + `${el.className ? "." + String(el.className).split(" ").join(".") : ""}: `
        + `${worst.toFixed(2)}:1 (text ${getComputedStyle(el).color}, `
        + `background rgb(${worstBg.slice(0, 3).map(Math.round).join(", ")}))`);
    }
  }
  window.scrollTo(0, scrollY0);
  return { problems, checked: checked.length };
}"""


def low_contrast_text(page: Page, min_ratio: float = MIN_CONTRAST) -> list[str]:
    """Every visible text on the page whose contrast with what is painted under it is below
    min_ratio:1, described with its ratio and colours; [] when all text passes."""
    result = page.evaluate(_CONTRAST_JS, min_ratio)
    assert result["checked"] > 0, "no visible text was found to check"
    return result["problems"]
