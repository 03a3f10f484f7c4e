"""The whole researcher journey in a real headless Chromium: from a zip of drawings to a
launched study (the upload and the stimulus generation run as jobs, eager Celery tasks here;
a preview trial on the way stores nothing), then simulated participants, the live monitor, a
plot, and a downloaded export."""

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from elicitation.models import (
    ComprehensionAttempt,
    ImageSet,
    Participant,
    Response,
    Stimulus,
    Study,
    Trial,
)
from elicitation.simulation import simulate
from tests.browser import consent_by_mouse, docs_screenshot, wait_for_stimulus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _shapes_zip(path: Path) -> Path:
    """Two drawings of each of three classes, as Circle/0.png, Square/0.png, ..."""
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("Circle", "Square", "Triangle"):
            for i in range(2):
                image = Image.new("RGB", (32, 32), (250, 250 - 60 * i, 240))
                draw = ImageDraw.Draw(image)
                if name == "Circle":
                    draw.ellipse((6, 6, 25, 25), fill=(200, 40, 40))
                elif name == "Square":
                    draw.rectangle((7, 7, 24, 24), fill=(40, 40, 200))
                else:
                    draw.polygon([(16, 4), (28, 27), (4, 27)], fill=(40, 150, 40))
                out = io.BytesIO()
                image.save(out, format="PNG")
                archive.writestr(f"{name}/{i}.png", out.getvalue())
    return path


def test_researcher_builds_previews_launches_watches_and_exports_a_study(
    live_server: Any, page: Page, researcher: Any, tmp_path: Path
) -> None:
    # given a zip of images drawn by the test
    zip_path = _shapes_zip(tmp_path / "shapes.zip")

    # when the researcher logs in and creates a categorical study
    page.goto(f"{live_server.url}/dashboard/")
    page.fill("input[name=username]", researcher.username)
    page.fill("input[name=password]", "pw")
    page.click("#login-form button[type=submit]")
    page.click("#new-study")
    page.fill("#id_title", "Blended shapes")
    page.fill("#id_slug", "blended-shapes")
    page.select_option("#id_trial_type", "categorical")
    page.fill("#id_participants_per_batch", "2")
    page.fill("#id_repeats", "1")
    page.click("#create-study")
    # then it is a draft
    expect(page.locator(".flash")).to_have_text("Created the draft study 'Blended shapes'.")
    study = Study.objects.get(slug="blended-shapes")
    assert (study.status, study.owner_id) == (Study.Status.DRAFT, researcher.id)

    # when the zip is uploaded into an image set
    page.click("#step-images")
    page.fill("#id_name", "browser-shapes")
    page.set_input_files("#id_zip_file", str(zip_path))
    page.click("#upload-images")
    # then the request returns with the upload's job, whose page follows it until it is done
    expect(page.locator("#job-status")).to_have_attribute("data-status", "done")
    expect(page.locator("#job-message")).to_contain_text("Imported 6 images of 3 classes")
    assert ImageSet.objects.get(name="browser-shapes").images.count() == 6
    # and the stimuli page offers the image set
    page.click("#job-next")
    expect(page.locator("#id_image_set")).to_have_value("browser-shapes")

    # when mixup stimuli are generated on a λ grid
    page.fill("#id_lambdas", "0.25, 0.75")
    page.fill("#id_n_pairs", "3")
    page.click("#generate-stimuli")
    # then the generation's job page shows its progress until it is done
    expect(page.locator("#job-status")).to_have_attribute("data-status", "done")
    expect(page.locator("#job-percent")).to_have_text("100%")
    expect(page.locator("#job-message")).to_have_text("Generated 6 new stimuli (6 in total).")
    # and the stimuli page shows their count and thumbnails
    page.click("#job-next")
    expect(page.locator("#stimuli-count")).to_have_text("6")
    expect(page.locator("#stimuli-thumbnails img")).to_have_count(6)
    assert (
        list(Stimulus.objects.order_by("lam").values_list("lam", flat=True))
        == [0.25] * 3 + [0.75] * 3
    )

    # when batches are built
    page.click("#step-batches")
    page.fill("#id_batch_size", "3")
    page.fill("#id_participants_per_batch", "2")
    page.click("#build-batches")
    # then
    expect(page.locator("#batch-list tbody tr")).to_have_count(2)
    assert list(study.batches.values_list("target", flat=True)) == [2, 2]

    # when the completion code is edited
    page.click("#step-texts")
    page.fill("#id_completion_code", "BROWSER42")
    page.click("#save-texts")
    # then
    expect(page.locator(".flash")).to_have_text("Saved the texts and settings.")
    study.refresh_from_db()
    assert study.completion_code == "BROWSER42"

    # when the researcher previews the study and answers one trial
    with page.context.expect_page() as opened:
        page.click("#step-preview")
    preview = opened.value
    expect(preview.locator("#preview-banner")).to_contain_text("Preview — nothing is recorded.")
    consent_by_mouse(preview)
    preview.click("#next-page")
    preview.click("#next-page")
    preview.click("#instructions-done")
    preview.get_by_label("The likely categories and the share of 100 workers choosing each").check()
    preview.get_by_label("100 crowdworkers'").check()
    preview.click("#comprehension-submit")
    wait_for_stimulus(preview)
    expect(preview.locator(".progress-text")).to_have_text("0 / 3")
    preview.locator("input[name=top_class]").first.check()
    preview.fill("#p1", "70")
    preview.click("#submit-trial")
    # then the next preview trial is shown, and nothing was stored
    expect(preview.locator(".progress-text")).to_have_text("1 / 3")
    expect(preview.locator("#preview-banner")).to_be_visible()
    assert Participant.objects.exists() is False
    assert Trial.objects.exists() is False
    assert Response.objects.exists() is False
    assert ComprehensionAttempt.objects.exists() is False
    preview.close()

    # when the study is launched
    page.click("#step-launch")
    page.click("#status-live")
    # then it is live
    expect(page.locator(".flash")).to_have_text("The study is now live.")
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE

    # when simulated participants complete it over HTTP while the study page is open
    page.goto(f"{live_server.url}/dashboard/studies/{study.slug}/")
    expect(page.locator("#m-responses")).to_have_text("0")
    result = simulate(study=study, participants=3, concurrency=3, base_url=live_server.url)
    # then the live monitor shows them without a reload (it polls every 5 s)
    assert (result["errors"], result["completed"]) == (0, 3)
    stored = Response.objects.filter(study=study).count()
    assert stored == result["responses"] > 0
    expect(page.locator("#m-responses")).to_have_text(str(stored), timeout=15_000)
    expect(page.locator("#m-stages li[data-stage=completed] strong")).to_have_text("3")
    docs_screenshot(page, "dashboard-study")

    # when the results page is opened, then a plot renders as a non-empty SVG
    page.click("#results-link")
    svg = page.locator("#plot-entropy-by-lambda svg")
    expect(svg).to_be_visible()
    assert svg.locator("path, use").count() > 0
    assert "No data yet" not in svg.inner_html()

    # when the responses are downloaded as CSV, then the file holds every stored response
    page.go_back()
    with page.expect_download() as download:
        page.click("#exports a[href$='what=responses&format=csv']")
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert len(rows) == stored
    assert {r["stimulus"] for r in rows} <= set(study.stimuli.values_list("key", flat=True))
    assert {int(r["id"]) for r in rows} == set(
        Response.objects.filter(study=study).values_list("id", flat=True)
    )
