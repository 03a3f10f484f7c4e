"""Interfaces E (IRI 2AFC) and F (IRI clustering) in a real headless Chromium, end to end.

Each journey runs twice: with the mouse only, and with the keyboard only (no mouse at all, from
consent to debrief). The expected stored values are worked out from what the page showed (the
image URLs on screen) and what was pressed, never from the server's own plan.
"""

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from elicitation.models import Participant, Response, Stimulus, Study, Trial
from elicitation.presenters import frame_url
from tests.browser import (
    current_trial_id,
    debrief_by_keyboard,
    docs_screenshot,
    entry_url,
    expect_progress,
    pick_radio_by_keys,
    start_by_keyboard,
    start_by_mouse,
    tab_to,
)
from tests.iri_fixtures import iri_study_live

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CODE = "IRICODE"
MOUSE, KEYBOARD = "mouse", "keyboard"


def _study(researcher: Any, trial_type: str, n_stimuli: int, catch_rate: float) -> Study:
    return iri_study_live(
        owner=researcher,
        trial_type=trial_type,
        slug=f"iri-{trial_type.replace('_', '-')}",
        n_stimuli=n_stimuli,
        settings={"catch_rate": catch_rate},
        completion_code=CODE,
    )


def _through_to_trials(page: Page, study: Study, how: str) -> None:
    """Consent, instructions and the comprehension check (default texts: one page, one question)."""
    if how == MOUSE:
        start_by_mouse(page, study)
    else:
        # Enter in the last checkbox submits with the default button, which must be "I agree".
        start_by_keyboard(page, study, enter_in_last_box=True)


def _debrief_and_finish(page: Page, how: str) -> None:
    expect(page.locator("#debrief-form")).to_be_visible()
    if how == MOUSE:
        page.get_by_role("button", name="Finish").click()
    else:
        debrief_by_keyboard(page, "Clear task.")
    expect(page.locator("#completion-code")).to_have_text(CODE)


def _expect_trial(page: Page, answered: int, total: int) -> int:
    expect_progress(page, answered, total)
    # Answer only once every image is painted: the response clock starts then.
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('img[data-stimulus]'))"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    return current_trial_id(page)


def _src(page: Page, selector: str) -> str:
    return page.locator(selector).get_attribute("src") or ""


def _urls_by_role(stimulus: Stimulus) -> dict[str, tuple[str, int]]:
    return {frame_url(f): (f.role, f.index) for f in stimulus.frames.all()}


# --- E: IRI two-alternative forced choice -------------------------------------------------


def _choose_side(page: Page, side: str, i: int, how: str) -> None:
    """Select `side` and submit; the first trial changes its mind once before submitting."""
    other = "right" if side == "left" else "left"
    if how == MOUSE:
        if i == 0:
            page.locator(f"#option-{other} img").click()
            expect(page.locator(f'input[value="{other}"]')).to_be_checked()
        page.locator(f"#option-{side} img").click()
        page.get_by_role("button", name="Next").click()
        return
    arrow = {"left": "ArrowLeft", "right": "ArrowRight"}
    digit = {"left": "1", "right": "2"}
    if i == 0:
        # Enter before any choice sends nothing and says what is missing.
        page.keyboard.press("Enter")
        expect(page.locator("#trial-error")).to_have_text(
            "Please choose one of the two images first."
        )
        assert Response.objects.exists() is False
        page.keyboard.press(arrow[other])
        expect(page.locator("#trial-error")).to_be_hidden()
        expect(page.locator(f'input[value="{other}"]')).to_be_checked()
    page.keyboard.press(arrow[side] if i % 2 == 0 else digit[side])
    expect(page.locator(f'input[value="{side}"]')).to_be_checked()
    expect(page.locator(f'input[value="{other}"]')).not_to_be_checked()
    if i % 2 == 0:
        page.keyboard.press("Enter")
    else:
        tab_to(page, "#submit-trial")
        page.keyboard.press("Space")


@pytest.mark.parametrize("how", [MOUSE, KEYBOARD])
def test_iri_2afc_journey_stores_the_shown_placement_and_the_choice(
    live_server: Any, researcher: Any, page: Page, how: str
) -> None:
    # given: 4 IRIs at a catch rate of 0.5 → 2 catch trials, plus 2 repeats
    study = _study(researcher, Study.TrialType.IRI_2AFC, n_stimuli=4, catch_rate=0.5)
    total = 4 + 2 + 2

    # when
    page.goto(entry_url(live_server, study, f"PID-E-{how}"))
    _through_to_trials(page, study, how)
    shown: dict[int, dict[str, str]] = {}
    for i in range(total):
        trial_id = _expect_trial(page, i, total)
        if i == 0:
            expect(
                page.get_by_text("Which of these images is closer to the query image:")
            ).to_be_visible()
            expect(page.get_by_role("button", name="Next")).to_be_disabled()
            if how == MOUSE:
                docs_screenshot(page, "trial-iri-2afc")
        side = "left" if i % 3 != 1 else "right"
        shown[trial_id] = {
            "query": _src(page, "#query-image"),
            "left": _src(page, "#option-left img"),
            "right": _src(page, "#option-right img"),
            "side": side,
        }
        _choose_side(page, side, i, how)
    _debrief_and_finish(page, how)

    # then
    participant = Participant.objects.get(study=study)
    trials = list(Trial.objects.filter(participant=participant).order_by("position"))
    responses = {r.trial_id: r for r in Response.objects.filter(participant=participant)}
    assert participant.stage == Participant.Stage.COMPLETED
    assert participant.debrief == (
        {study.debrief_questions[0]: "Clear task." if how == KEYBOARD else ""}
    )
    assert len(trials) == total
    assert sorted(responses) == sorted(shown) == sorted(t.id for t in trials)
    assert [t.kind for t in trials].count(Trial.Kind.CATCH) == 2
    for trial in trials:
        page_saw, response = shown[trial.id], responses[trial.id]
        roles = {url: role for url, (role, _) in _urls_by_role(trial.stimulus).items()}
        placement = [roles[page_saw["left"]], roles[page_saw["right"]]]
        chosen = roles[page_saw[page_saw["side"]]]
        copied = roles[page_saw["query"]]
        catch = copied != "query"
        assert placement in (["target", "start"], ["start", "target"])
        assert response.display == trial.display
        assert response.display["placement"] == placement
        assert response.kind == trial.kind
        assert (trial.kind == Trial.Kind.CATCH) is catch
        if catch:
            # The catch query is an exact copy of one of the two options shown.
            assert page_saw["query"] in (page_saw["left"], page_saw["right"])
            assert response.display["query"] == copied
        else:
            assert response.display["query"] == "iri"
        assert response.raw == {"choice": page_saw["side"]}
        assert response.rt_ms > 0
        assert response.value == {
            "side": page_saw["side"],
            "chosen": chosen,
            "placement": placement,
            "correct": chosen == "target",
            "catch": catch,
            "catch_passed": (chosen == copied) if catch else None,
        }


# --- F: IRI clustering --------------------------------------------------------------------


def _plan(i: int, p: int) -> int:
    """The column position chosen in row p of trial i (varied, so every column is used)."""
    return (p + i) % 3


def _assign_rows(page: Page, plan: list[int], i: int, how: str) -> None:
    rows = page.locator("tr.iri-row")
    for p, col in enumerate(plan):
        if i == 0 and p == len(plan) - 1:
            expect(page.get_by_role("button", name="Next")).to_be_disabled()
            expect(page.locator("#rows-status")).to_have_text(f"{p} of {len(plan)} rows done")
        if how == MOUSE:
            rows.nth(p).locator(".iri-cell").nth(col).click()
            continue
        if i == 0 and p == 0:
            # Enter before every row is answered sends nothing and points at the first gap.
            page.keyboard.press("Enter")
            expect(page.locator("#trial-error")).to_have_text("Please choose a column for row 1.")
            assert Response.objects.exists() is False
        # Tab enters the row's radio group; the row is chosen with letters, arrows or Space.
        tab_to(page, f'input[name="row-{p}"]')
        if p % 3 == 0:
            page.keyboard.press("abc"[col])
        elif p % 3 == 1:
            pick_radio_by_keys(page, col)
        else:
            page.keyboard.press("ArrowRight")  # chooses B, then moves to the planned column
            for _ in range(abs(col - 1)):
                page.keyboard.press("ArrowRight" if col > 1 else "ArrowLeft")
        expect(rows.nth(p).locator("input.iri-radio").nth(col)).to_be_checked()
    expect(page.locator("#rows-status")).to_have_text("All rows done")
    if how == MOUSE:
        page.get_by_role("button", name="Next").click()
    elif i % 2 == 0:
        page.keyboard.press("Enter")
    else:
        tab_to(page, "#submit-trial")
        page.keyboard.press("Enter")


@pytest.mark.parametrize("how", [MOUSE, KEYBOARD])
def test_iri_cluster_journey_stores_the_shown_orders_and_each_rows_column(
    live_server: Any, researcher: Any, page: Page, how: str
) -> None:
    # given: 2 sets at a catch rate of 1.0 → every trial has one catch row; plus 2 repeats
    study = _study(researcher, Study.TrialType.IRI_CLUSTER, n_stimuli=2, catch_rate=1.0)
    total = 2 + 2

    # when
    page.goto(entry_url(live_server, study, f"PID-F-{how}"))
    _through_to_trials(page, study, how)
    shown: dict[int, dict[str, Any]] = {}
    for i in range(total):
        trial_id = _expect_trial(page, i, total)
        columns = [_src(page, f'img[data-column="{c}"]') for c in range(3)]
        rows = [img.get_attribute("src") or "" for img in page.locator("tr.iri-row img").all()]
        expect(page.locator("thead figcaption")).to_have_text(["A", "B", "C"])
        if i == 0 and how == MOUSE:
            docs_screenshot(page, "trial-iri-cluster")
        plan = [_plan(i, p) for p in range(len(rows))]
        shown[trial_id] = {"columns": columns, "rows": rows, "plan": plan}
        _assign_rows(page, plan, i, how)
    _debrief_and_finish(page, how)

    # then
    participant = Participant.objects.get(study=study)
    trials = list(Trial.objects.filter(participant=participant).order_by("position"))
    responses = {r.trial_id: r for r in Response.objects.filter(participant=participant)}
    assert participant.stage == Participant.Stage.COMPLETED
    assert len(trials) == total
    assert sorted(responses) == sorted(shown) == sorted(t.id for t in trials)
    for trial in trials:
        page_saw, response = shown[trial.id], responses[trial.id]
        frames = {f.role + str(f.index): f for f in trial.stimulus.frames.all()}
        place = _urls_by_role(trial.stimulus)
        column_order = [place[url][1] for url in page_saw["columns"]]
        assert [place[url][0] for url in page_saw["columns"]] == ["column"] * 3
        assert sorted(column_order) == [0, 1, 2]
        expected_rows = []
        for p, url in enumerate(page_saw["rows"]):
            role, index = place[url]
            catch = role == "column"
            if catch:
                # A catch row is an unmodified copy of one of the column images shown.
                assert url in page_saw["columns"]
                row, true = {"kind": "catch", "column": index}, index
            else:
                row, true = {"kind": "iri", "index": index}, frames[f"row{index}"].meta["target"]
            chosen = column_order[page_saw["plan"][p]]
            expected_rows.append(
                {
                    "row_position": p,
                    "row": row,
                    "chosen_column": chosen,
                    "true_column": true,
                    "correct": chosen == true,
                    "catch": catch,
                }
            )
        assert len(page_saw["rows"]) == 7
        assert [r["catch"] for r in expected_rows].count(True) == 1
        assert sorted(r["row"]["index"] for r in expected_rows if not r["catch"]) == list(range(6))
        assert response.display == trial.display
        assert response.display["columns"] == column_order
        assert response.display["rows"] == [r["row"] for r in expected_rows]
        assert response.raw == {"assignments": page_saw["plan"]}
        assert response.kind == trial.kind
        assert response.rt_ms > 0
        assert response.value == {"rows": expected_rows, "columns": column_order}
