"""Every trial page on a phone (390 × 844) and on a desktop (1280 × 900), measured in Chromium.

For each of the six interfaces: everything needed to answer can be reached without scrolling
the stimulus away (C, D and E: all of it on screen at once, with nothing scrolled), no sideways
scrolling, every tap target at least 44 × 44 px, and every text at a contrast of at least 4.5:1
against what is painted under it. The page is opened half-way through the session, so the
progress bar runs under its label. The checks are the helpers of tests/browser.py; the last
tests show on pages made for the purpose that each of them fails when it should.
"""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from elicitation import imaging, selectors, services, stimulus_services
from elicitation.defaults import study_texts
from elicitation.models import ImageSet, Participant, Study, Trial
from tests.browser import (
    PHONE,
    VIEWPORTS,
    assert_answerable_with_stimulus_in_view,
    assert_in_view_together,
    assert_no_sideways_scrolling,
    low_contrast_text,
    out_of_view,
    session_url,
    small_tap_targets,
)
from tests.conftest import start_in_trials
from tests.factories import StudyFactory
from tests.iri_fixtures import iri_study_live

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

T = Study.TrialType
# Ten classes, as in CIFAR-10, with some long names: the longest list interface A shows.
TEN_CLASSES = [*imaging.DEMO_CLASSES, "Automobile", "Airplane"]


def _image_study(owner: Any, trial_type: str) -> Study:
    """A live study of A, B, C or D on generated demo shapes, in one batch."""
    study = StudyFactory(
        owner=owner,
        trial_type=trial_type,
        classes=TEN_CLASSES if trial_type == T.CATEGORICAL else list(imaging.DEMO_CLASSES),
        repeats=2,
        **study_texts(trial_type),
    )
    image_set = ImageSet.objects.filter(name="layout-shapes").first()
    if image_set is None:
        image_set = stimulus_services.image_set_create(
            name="layout-shapes",
            source=ImageSet.Source.DEMO,
            images=imaging.generate_demo_images(per_class=2, seed=5),
        )
    if trial_type in (T.CONSTRUCT_MIDPOINT, T.SELECT_MIDPOINT):
        stimuli = stimulus_services.stimuli_generate_series(
            study=study, image_set=image_set, n_pairs=2, seed=1
        )
    else:
        stimuli = stimulus_services.stimuli_generate_mixup(
            study=study, image_set=image_set, lambdas=[0.25, 0.75], n_pairs=2
        )
    services.batches_build(study=study, stimuli=stimuli, batch_size=len(stimuli))
    return services.study_set_status(study=study, status=Study.Status.LIVE)


def _study(owner: Any, trial_type: str) -> Study:
    if trial_type in (T.IRI_2AFC, T.IRI_CLUSTER):
        return iri_study_live(
            owner=owner,
            trial_type=trial_type,
            slug=f"layout-{uuid.uuid4().hex[:8]}",
            n_stimuli=4 if trial_type == T.IRI_2AFC else 2,
            settings={"catch_rate": 0.0},
        )
    return _image_study(owner, trial_type)


def _answer(trial: Trial) -> dict[str, Any]:
    """A valid answer of the trial's interface (given through the services)."""
    study = trial.participant.study
    ttype = study.trial_type
    if ttype == T.CATEGORICAL:
        names = study.classes
        return {"top_class": names[0], "p1": 60, "second_class": names[1], "p2": 30}
    if ttype == T.MIXING_FACTOR:
        return {"mixing": 30, "confidence": 70, "moved_mixing": True, "moved_confidence": True}
    if ttype == T.CONSTRUCT_MIDPOINT:
        start = trial.display["start_step"]
        walk = [{"step": start, "t_ms": 0}, {"step": start + 1, "t_ms": 400}]
        return {"final_step": start + 1, "visits": walk}
    if ttype == T.SELECT_MIDPOINT:
        return {"chosen_position": 3}
    if ttype == T.IRI_2AFC:
        return {"choice": "left"}
    return {"assignments": [0] * len(trial.display["rows"])}


def _half_way(owner: Any, trial_type: str) -> Participant:
    """A participant who answered the first half of their trials through the services (the
    progress bar then runs under the middle of its label)."""
    participant = start_in_trials(_study(owner, trial_type), f"PID-{uuid.uuid4().hex[:6]}")
    for _ in range(participant.trials.count() // 2):
        trial = selectors.trial_get_next(participant=participant)
        assert trial is not None
        services.response_record(
            participant=participant,
            trial_id=trial.id,
            client_key=uuid.uuid4(),
            rt_ms=2500,
            answer=_answer(trial),
        )
        participant.refresh_from_db()
    assert participant.stage == Participant.Stage.TRIALS
    return participant


@pytest.fixture
def open_trial(
    live_server: Any, researcher: Any, new_page: Callable[..., Page]
) -> Callable[[str, tuple[int, int]], Page]:
    def open_(trial_type: str, viewport: tuple[int, int]) -> Page:
        participant = _half_way(researcher, trial_type)
        page = new_page(*viewport)
        page.goto(session_url(live_server, participant))
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('img[data-stimulus]'))"
            ".every((img) => img.complete && img.naturalWidth > 0)"
        )
        return page

    return open_


# What must be visible with the stimulus, per interface. A and B: each control in turn, while
# the image stays on screen; F: each row's image and its three choices, while the three column
# images stay on screen; C, D and E: everything at once, without scrolling at all.
WALKS: dict[str, tuple[list[str], list[str]]] = {
    T.CATEGORICAL: (
        ["#stimulus"],
        [
            "#top-group label.choice",
            "#top-group .pct",
            "#second-group label.choice",
            "#second-group .pct",
            "#impossible-group label.choice",
            "#submit-trial",
        ],
    ),
    T.MIXING_FACTOR: (
        ["#stimulus"],
        [
            "#blend-statement",
            "#mixing-slider",
            "#mixing-ends",
            "#confidence-slider",
            "#confidence-ends",
            "#submit-trial",
        ],
    ),
    T.IRI_CLUSTER: (
        [".iri-column img"],
        ["#cluster-prompt", "tr.iri-row th img, tr.iri-row .iri-cell", "#submit-trial"],
    ),
}
TOGETHER: dict[str, list[str]] = {
    T.CONSTRUCT_MIDPOINT: ["#construct-prompt", "#stimulus", ".step-button", "#submit-trial"],
    T.SELECT_MIDPOINT: ["#select-prompt", "#options .option", "#submit-trial"],
    T.IRI_2AFC: [
        "#query-image",
        "#iri-prompt",
        "#option-left",
        "#option-right",
        "#submit-trial",
    ],
}
ALL_TYPES = [T.CATEGORICAL, T.MIXING_FACTOR, *TOGETHER, T.IRI_CLUSTER]


@pytest.mark.parametrize("viewport", list(VIEWPORTS), ids=list(VIEWPORTS))
@pytest.mark.parametrize("trial_type", ALL_TYPES)
def test_a_trial_can_be_answered_with_the_stimulus_in_view_large_targets_and_clear_text(
    open_trial: Callable[[str, tuple[int, int]], Page], trial_type: str, viewport: str
) -> None:
    # given
    page = open_trial(trial_type, VIEWPORTS[viewport])

    # then: nothing to scroll sideways; the stimulus stays in view while answering
    assert_no_sideways_scrolling(page)
    if trial_type in TOGETHER:
        assert_in_view_together(page, TOGETHER[trial_type])
    else:
        stimulus, controls = WALKS[trial_type]
        assert_answerable_with_stimulus_in_view(page, stimulus=stimulus, controls=controls)
    # then: targets large enough for a finger, and readable text
    assert small_tap_targets(page) == []
    assert low_contrast_text(page) == []


# --- E: the options are named by where they are on screen ------------------------------------


@pytest.mark.parametrize(
    ("viewport", "names", "keys"),
    [
        (PHONE, ("Left", "Right"), ("ArrowLeft", "ArrowRight")),
        (VIEWPORTS["desktop"], ("Left", "Right"), ("ArrowLeft", "ArrowRight")),
        # A narrow window (a zoomed or split screen): the options are stacked.
        ((280, 640), ("Top", "Bottom"), ("ArrowUp", "ArrowDown")),
    ],
    ids=["phone", "desktop", "narrow"],
)
def test_2afc_options_are_named_by_their_place_on_the_screen(
    open_trial: Callable[[str, tuple[int, int]], Page],
    viewport: tuple[int, int],
    names: tuple[str, str],
    keys: tuple[str, str],
) -> None:
    # given
    page = open_trial(T.IRI_2AFC, viewport)
    first, second = page.locator("#option-left"), page.locator("#option-right")

    # when
    a, b = first.bounding_box(), second.bounding_box()

    # then: the names say where each option is, as measured
    assert a is not None
    assert b is not None
    stacked = b["y"] >= a["y"] + a["height"] - 1
    beside = b["x"] >= a["x"] + a["width"] - 1 and abs(b["y"] - a["y"]) < 1
    assert (stacked, beside) == ((True, False) if names[0] == "Top" else (False, True))
    # (innerText: the text shown, without the hidden word for the other layout)
    name = ".iri-option-name"
    expect(first.locator(name)).to_have_text(f"1 {names[0]}", use_inner_text=True)
    expect(second.locator(name)).to_have_text(f"2 {names[1]}", use_inner_text=True)
    expect(page.get_by_role("radio", name=f"1 {names[0]}")).to_have_value("left")
    expect(page.get_by_role("radio", name=f"2 {names[1]}")).to_have_value("right")
    assert_in_view_together(page, TOGETHER[T.IRI_2AFC])
    # then: the arrow keys that point at an option choose it
    page.keyboard.press(keys[1])
    expect(page.locator('input[value="right"]')).to_be_checked()
    page.keyboard.press(keys[0])
    expect(page.locator('input[value="left"]')).to_be_checked()
    assert page.evaluate("() => window.scrollY") == 0


# --- the checks themselves fail when they should ------------------------------------------------

CHECKS_PAGE = """<!doctype html>
<html><body style="margin:0;background:#fff;font:16px sans-serif">
  <p id="grey" style="color:#777">Grey #777 on white is 4.48:1</p>
  <p id="dark" style="color:#767676">Grey #767676 on white is 4.54:1</p>
  <div style="position:relative;height:24px;background:#e3e6ec">
    <div style="width:60%;height:100%;background:#2856c8"></div>
    <span style="position:absolute;inset:0;text-align:center;color:#1d2330">3 of 6</span>
  </div>
  <div style="opacity:0.5"><p style="color:#000">Half-transparent black</p></div>
  <button id="small" style="height:30px">Small</button>
  <label id="row" style="display:block;height:48px"><input type="radio"> A wide row</label>
  <p id="far" style="margin-top:2000px">Far below</p>
</body></html>"""


def test_the_layout_checks_measure_rather_than_pass(new_page: Callable[..., Page]) -> None:
    # given
    page = new_page(*PHONE)
    page.set_content(CHECKS_PAGE)

    # when
    contrast = low_contrast_text(page)
    small = small_tap_targets(page)
    far = out_of_view(page, ["#dark", "#far", "#missing"])

    # then: #777 on white just fails; the label over the blue bar fails (2.4:1, the bar is a
    # sibling, not an ancestor); transparency counts
    assert [p.split(":")[0] for p in contrast] == [
        '"Grey #777 on white is 4.48',
        '"3 of 6" in span',
        '"Half-transparent black" in p',
    ]
    assert "4.48:1" in contrast[0]
    assert "2.4" in contrast[1]
    # then: the 30 px button is too small, the 48 px label row around the radio is not
    assert len(small) == 1
    assert small[0].startswith('button#small "Small": ')
    assert small[0].endswith(" × 30.0")
    # then: what is below the screen or missing is reported
    assert [p.split(" ")[0] for p in far] == ["p#far", "#missing:"]


STIMULUS_PAGE = """<!doctype html>
<html><body style="margin:0">
  <img id="stimulus" style="display:block;width:300px;height:500px;background:#888;{pin}">
  <div style="height:700px"></div>
  <button id="next" style="width:80px;height:48px">Next</button>
</body></html>"""


@pytest.mark.parametrize(("pin", "passes"), [("", False), ("position:sticky;top:0", True)])
def test_the_walk_fails_when_answering_scrolls_the_stimulus_away(
    new_page: Callable[..., Page], pin: str, passes: bool
) -> None:
    # given: a control 1,200 px down a 844 px screen, below an image that is pinned or not
    page = new_page(*PHONE)
    page.set_content(STIMULUS_PAGE.format(pin=pin))

    # when
    try:
        assert_answerable_with_stimulus_in_view(page, stimulus=["#stimulus"], controls=["#next"])
    except AssertionError as exc:
        failure = str(exc)
    else:
        failure = ""

    # then
    assert (failure == "") is passes
    if not passes:
        assert "stimulus: img#stimulus at" in failure
