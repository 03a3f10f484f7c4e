"""The Content-Security-Policy (django-csp, settings/base.py): every page passes it with no
inline script or style, and researcher-written consent HTML cannot load third-party images.

Every browser test in the suite checks the policy too (tests/conftest.py new_page fails a test
whose pages had a violation), so the trial pages of each interface are covered by their own
journeys; this module visits the pages no journey does, the dashboard and the admin.
"""

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Page, Request, expect

from elicitation.models import Participant, Study
from tests.browser import entry_url, session_url
from tests.conftest import answer_all_trials, categorical_answer, start_in_trials

pytestmark = pytest.mark.django_db


def test_every_kind_of_page_carries_the_strict_policy(
    make_study: Callable[..., Study], researcher: Any
) -> None:
    # given: a participant page, a dashboard page and an API response
    study = make_study()
    participant = start_in_trials(study, "PID-1")
    client = Client()
    client.force_login(researcher)
    # when
    responses = [
        client.get(reverse("elicitation:session", kwargs={"token": participant.token})),
        client.get(reverse("dashboard:study", kwargs={"slug": study.slug})),
        client.get(reverse("api:study-list")),
    ]
    # then: the same policy everywhere, but for inline styles under /api/ (the browsable API's
    # and the Swagger UI's own templates need them)
    policies = []
    for response in responses:
        assert response.status_code == 200
        policies.append(
            dict(
                part.strip().split(" ", 1)
                for part in response["Content-Security-Policy"].split(";")
            )
        )
    for policy in policies:
        assert policy["script-src"] == "'self'"
        assert policy["img-src"] == "'self' data: blob:"
        assert policy["object-src"] == "'none'"
        assert policy["frame-ancestors"] == "'none'"
    assert [p["style-src"] for p in policies] == ["'self'", "'self'", "'self' 'unsafe-inline'"]


def _log_in(page: Page, live_server: Any, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw")
    page.click("#login-form button[type=submit]")
    expect(page.locator(".topnav")).to_be_visible()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_dashboard_admin_and_api_pages_run_without_a_violation(
    live_server: Any,
    page: Page,
    researcher: Any,
    make_study: Callable[..., Study],
    csp_violations: list[str],
) -> None:
    # given: a study with answers, and its owner logged in (a superuser, to see every admin page)
    type(researcher).objects.filter(pk=researcher.pk).update(is_superuser=True)
    study = make_study(n_stimuli=2, batch_size=2)
    answer_all_trials(study, "PID-1", lambda _: categorical_answer())
    participant = Participant.objects.get(study=study)
    _log_in(page, live_server, researcher.username)
    paths = [
        "/dashboard/",
        "/dashboard/tokens/",
        f"/dashboard/studies/{study.slug}/",
        f"/dashboard/studies/{study.slug}/results/",
        f"/dashboard/studies/{study.slug}/build/",
        f"/dashboard/studies/{study.slug}/build/texts/",
        "/dashboard/new/",
        "/dashboard/import/",
        f"/dashboard/preview/{study.slug}/",
        "/admin/",
        "/admin/elicitation/study/",
        f"/admin/elicitation/study/{study.pk}/change/",
        f"/admin/elicitation/participant/{participant.pk}/change/",
        "/admin/auth/user/add/",
        "/api/studies/",
        "/api/docs/",
    ]
    # when: each page is loaded and has settled
    loaded = []
    for path in paths:
        response = page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        loaded.append((path, response.status if response else None))
    # then: every page loaded, and none had a script, style or image refused
    assert loaded == [(path, 200) for path in paths]
    assert not csp_violations, "\n".join(csp_violations)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_admin_works_under_the_policy(
    live_server: Any, page: Page, researcher: Any, csp_violations: list[str]
) -> None:
    # given: a superuser in the admin's own login form
    type(researcher).objects.filter(pk=researcher.pk).update(is_superuser=True)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/auth/user/add/")
    page.fill("#id_username", researcher.username)
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    # when: a user is added through the admin's scripted form (password toggles, related
    # popups' links), then the change form's scripted widgets are used
    page.fill("#id_username", "bob")
    page.fill("#id_password1", "a-long-enough-password-91")
    page.fill("#id_password2", "a-long-enough-password-91")
    page.click("input[name=_save]")
    # then
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    expect(page.locator("#id_username")).to_have_value("bob")
    assert csp_violations == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_external_image_in_the_consent_html_is_never_requested(
    live_server: Any, page: Page, make_study: Callable[..., Study], csp_violations: list[str]
) -> None:
    # given: consent HTML whose image would tell another host each participant's address
    tracker = "http://203.0.113.7/pixel.png"
    study = make_study(consent_html=f'<p>Please read this.</p><img src="{tracker}" alt="">')
    failed: list[tuple[str, str | None]] = []
    answered: list[str] = []

    def on_failed(request: Request) -> None:
        failed.append((request.url, request.failure))

    page.on("requestfailed", on_failed)
    page.on("response", lambda response: answered.append(response.url))
    # when: a participant arrives at the consent page
    page.goto(entry_url(live_server, study, "PID-IMG"))
    expect(page.get_by_text("Please read this.")).to_be_visible()
    page.wait_for_load_state("networkidle")
    # then: the image stayed in the page (the sanitiser keeps images) but the browser refused
    # to fetch it because of the policy, and said why
    expect(page.locator(f'img[src="{tracker}"]')).to_have_count(1)
    assert failed == [(tracker, "csp")]  # Chromium's reason for a request the policy blocked
    assert tracker not in answered
    assert [v for v in csp_violations if "img-src" in v and tracker in v]
    csp_violations.clear()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_completion_page_redirects_from_its_static_script(
    live_server: Any, page: Page, make_study: Callable[..., Study], csp_violations: list[str]
) -> None:
    # given: a participant who has answered everything and finished the debrief
    study = make_study(
        n_stimuli=2, batch_size=2, prolific_completion_url="https://platform.test/done"
    )
    participant = answer_all_trials(study, "PID-DONE", lambda _: categorical_answer())
    page.route(
        "https://platform.test/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<p>Back</p>"),
    )
    page.goto(session_url(live_server, participant))
    page.get_by_role("button", name="Finish").click()
    # when: the completion page has had its few seconds
    expect(page.get_by_role("heading", name="Thank you, you are done")).to_be_visible()
    # then: it sent the participant on, with no violation
    page.wait_for_url("https://platform.test/done*", timeout=10_000)
    assert csp_violations == []


def test_participant_pages_may_post_to_the_mturk_hosts_the_exits_accept() -> None:
    # The CSP's form-action for participant pages is written out in the settings (settings
    # cannot import the app); it must name exactly the hosts a HIT may be submitted to.
    from django.conf import settings

    from elicitation.exits import MTURK_SUBMIT_HOSTS

    allowed = settings.HMIX_CSP_PATH_OVERRIDES["/p/"]["form-action"]
    assert allowed == ["'self'", *MTURK_SUBMIT_HOSTS]
