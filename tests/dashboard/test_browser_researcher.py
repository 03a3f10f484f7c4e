"""The researcher's side in a real headless Chromium: log in, open the study, launch it, watch
simulated participants arrive on the live monitor, see a plot render and download an export."""

import csv
import io
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from analysis import services as analysis_services
from elicitation.models import Response, Study
from elicitation.simulation import simulate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_researcher_launches_watches_and_exports(
    live_server: Any, page: Page, make_image_study: Any, researcher: Any
) -> None:
    # given a paused mixup study owned by the researcher (password "pw", see the factories)
    study = make_image_study(n_pairs=2, batch_size=4, participants_per_batch=4)
    study.status = Study.Status.PAUSED
    study.save(update_fields=["status"])
    # when the researcher logs in and launches it
    page.goto(f"{live_server.url}/dashboard/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/dashboard/")
    page.fill("input[name=username]", researcher.username)
    page.fill("input[name=password]", "pw")
    page.click("#login-form button[type=submit]")
    page.click(f"#study-list a[href='/dashboard/studies/{study.slug}/']")
    page.click("#status-live")
    # then the study is live and the page shows the Prolific link
    expect(page.locator(".flash")).to_have_text("The study is now live.")
    expect(page.locator("#link-prolific")).to_contain_text(
        f"/s/{study.slug}/?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"
    )
    expect(page.locator("#m-responses")).to_have_text("0")

    # when simulated participants complete it over HTTP while the page stays open
    result = simulate(study=study, participants=3, concurrency=3, base_url=live_server.url)
    # then the monitor updates without a reload (it polls every 5 s)
    assert (result["errors"], result["completed"]) == (0, 3)
    stored = Response.objects.filter(study=study).count()
    expect(page.locator("#m-responses")).to_have_text(str(stored), timeout=15_000)
    expect(page.locator("#m-stages li[data-stage=completed] strong")).to_have_text("3")

    # when the results page is opened, then a plot renders as a non-empty SVG
    analysis_services.study_aggregate(study=study)
    page.click("#results-link")
    svg = page.locator("#plot-entropy-by-lambda svg")
    expect(svg).to_be_visible()
    assert svg.locator("path, use").count() > 0
    assert "No data yet" not in svg.inner_html()

    # when a CSV export is downloaded, then it holds every stored response
    page.go_back()
    with page.expect_download() as info:
        page.click("#exports a[href$='what=responses&format=csv']")
    rows = list(csv.DictReader(io.StringIO(info.value.path().read_text())))
    assert len(rows) == stored
    assert {r["kind"] for r in rows} == {"main", "repeat"}
