"""The dashboard's side of the study lifecycle: Pause and Close ask for confirmation on a page
of their own (no script needed), and the builder shows the launch checklist."""

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from elicitation import services
from elicitation.models import Study, StudyTransition
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


def _logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("status", "question", "warning"),
    [
        ("paused", "Pause this study?", "New participants cannot start while the study is paused"),
        ("closed", "Close this study?", "Closing is final"),
    ],
)
def test_pause_and_close_ask_for_confirmation_first(
    make_study: Callable[..., Study], status: str, question: str, warning: str
) -> None:
    # given
    study = make_study()
    client = _logged_in(study.owner)
    url = reverse("dashboard:status", kwargs={"slug": study.slug})
    n_before = StudyTransition.objects.count()
    # when the button is pressed
    asked = client.post(url, {"status": status})
    study.refresh_from_db()
    status_after_asking = study.status
    # and the confirmation page's form is sent
    confirmed = client.post(url, {"status": status, "confirm": "yes"})
    # then
    page = html.unescape(asked.content.decode())
    assert asked.status_code == 200
    assert question in page
    assert warning in page
    assert '<input type="hidden" name="confirm" value="yes">' in page
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None  # no inline script
    assert status_after_asking == Study.Status.LIVE
    assert confirmed.status_code == 302
    study.refresh_from_db()
    assert study.status == status
    assert StudyTransition.objects.count() == n_before + 1


def test_confirming_a_forbidden_change_shows_why_at_once(make_study: Callable[..., Study]) -> None:
    # given a closed study
    study = make_study()
    services.study_set_status(study=study, status=Study.Status.CLOSED)
    # when
    res = _logged_in(study.owner).post(
        reverse("dashboard:status", kwargs={"slug": study.slug}), {"status": "paused"}
    )
    # then
    assert res.status_code == 409
    assert "The study is closed, and a closed study cannot be reopened." in res.content.decode()
    study.refresh_from_db()
    assert study.status == Study.Status.CLOSED


def test_the_study_page_offers_only_the_next_steps_and_shows_the_history(
    make_study: Callable[..., Study],
) -> None:
    # given a live study the owner paused
    study = make_study()
    services.study_set_status(study=study, status=Study.Status.PAUSED, actor_id=study.owner.pk)
    # when
    page = _logged_in(study.owner).get(reverse("dashboard:study", kwargs={"slug": study.slug}))
    # then
    content = page.content.decode()
    assert 'id="status-live">Resume</button>' in content
    assert 'id="status-closed">Close…</button>' in content
    assert 'id="status-paused"' not in content
    assert 'value="draft"' not in content
    assert "<td>Live</td><td>Paused</td><td>owner</td><td>Management command or script</td>" in (
        content
    )


def test_the_builder_shows_the_launch_checklist(researcher: Any) -> None:
    # given a draft with texts but no code, batches or stimuli
    study = StudyFactory(owner=researcher, completion_code="")
    # when
    page = _logged_in(researcher).get(reverse("dashboard:build", kwargs={"slug": study.slug}))
    # then
    content = html.unescape(page.content.decode())
    items = re.findall(r'<li data-check="(\w+)" class="(ok|problem)">', content)
    assert items == [
        ("completion", "problem"),
        ("batches", "problem"),
        ("texts", "ok"),
        ("batch_stimuli", "problem"),
        ("image_files", "ok"),
    ]
    assert "Set a completion code, or tick “no code: I pay another way”" in content
    assert 'id="build-status-live">Launch</button>' in content


def test_no_code_i_pay_another_way_lets_a_study_launch(researcher: Any) -> None:
    # given a draft with batches but no completion code
    study = StudyFactory(owner=researcher, completion_code="")
    client = _logged_in(researcher)
    texts = client.get(reverse("dashboard:build-texts", kwargs={"slug": study.slug}))
    data = {
        name: ("" if value is None else value)
        for name, value in texts.context["form"].initial.items()
    }
    data.update(
        {
            "debrief_questions": "Comments?",
            "pays_without_code": "on",
            "pages-TOTAL_FORMS": "0",
            "pages-INITIAL_FORMS": "0",
            "questions-TOTAL_FORMS": "0",
            "questions-INITIAL_FORMS": "0",
        }
    )
    # when
    saved = client.post(reverse("dashboard:build-texts", kwargs={"slug": study.slug}), data)
    # then
    study.refresh_from_db()
    assert saved.status_code == 302
    assert study.pays_without_code is True
    assert study.completion_code == ""
