from collections.abc import Callable

import pytest
from django.test import Client

from elicitation import services
from elicitation.models import Study
from elicitation.presenters import session_state
from hmix_site.common.html import clean_html

pytestmark = pytest.mark.django_db

EVIL = (
    '<p onclick="steal()">Hi <b>there</b></p><script>steal()</script><a href="javascript:x()">x</a>'
)


def test_clean_html_keeps_formatting_and_drops_scripts() -> None:
    # when
    cleaned = clean_html(EVIL)
    # then
    assert "<b>there</b>" in cleaned
    assert "script" not in cleaned
    assert "onclick" not in cleaned
    assert "javascript:" not in cleaned


def test_participant_pages_and_api_never_carry_researcher_scripts(
    make_study: Callable[..., Study],
) -> None:
    # given a study whose consent and instructions hold a script
    study = make_study(consent_html=EVIL, instructions=[{"title": "T", "html": EVIL}])
    participant, _ = services.participant_start(study=study, platform="direct")
    client = Client()
    # when
    consent_page = client.get(f"/p/{participant.token}/").content.decode()
    services.participant_consent(participant=participant, agreed=True)
    instructions_page = client.get(f"/p/{participant.token}/").content.decode()
    state = session_state(participant=participant)
    # then
    for html in (
        consent_page,
        instructions_page,
        state["consent_html"],
        state["instructions"][0]["html"],
    ):
        assert "steal()" not in html
        assert "<b>there</b>" in html
