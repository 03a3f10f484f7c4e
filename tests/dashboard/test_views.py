import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from analysis import selectors as analysis_selectors
from analysis import services as analysis_services
from elicitation import services as elicitation_services
from elicitation.models import Study
from tests.conftest import answer_all_trials, categorical_answer
from tests.factories import StudyFactory, UserFactory

pytestmark = pytest.mark.django_db


def _logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_pages_need_a_login(make_study: Callable[..., Study]) -> None:
    # given
    study = make_study()
    # when
    res = Client().get(reverse("dashboard:study", kwargs={"slug": study.slug}))
    # then
    assert res.status_code == 302
    assert res["Location"].startswith("/accounts/login/?next=")


def test_study_list_shows_only_the_researchers_studies(make_study: Callable[..., Study]) -> None:
    # given
    mine = make_study(title="Mine")
    other = StudyFactory(owner=UserFactory(username="other"), title="Theirs")
    # when
    html = _logged_in(mine.owner).get(reverse("dashboard:studies")).content.decode()
    # then
    assert mine.slug in html
    assert other.slug not in html


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("dashboard:study", "get"),
        ("dashboard:monitor", "get"),
        ("dashboard:status", "post"),
        ("dashboard:collaborators", "post"),
    ],
)
def test_another_researcher_cannot_see_or_change_the_study(
    make_study: Callable[..., Study], name: str, method: str
) -> None:
    # given
    study = make_study()
    stranger = _logged_in(UserFactory(username="stranger"))
    # when
    res = getattr(stranger, method)(
        reverse(name, kwargs={"slug": study.slug}), {"status": "closed", "username": "stranger"}
    )
    # then
    study.refresh_from_db()
    assert res.status_code == 403
    assert study.status == Study.Status.LIVE
    assert study.researchers.exists() is False


def test_monitor_counts_participants_batches_and_times(make_study: Callable[..., Study]) -> None:
    # given one batch of two stimuli, two repeats; one participant done (4 answers at 800 ms)
    study = make_study(n_stimuli=2, batch_size=2)
    answer_all_trials(study, "done", lambda _t: categorical_answer(), rt_ms=800)
    # when
    monitor = (
        _logged_in(study.owner)
        .get(reverse("dashboard:monitor", kwargs={"slug": study.slug}))
        .json()
    )
    # then
    assert monitor["stages"] == {"debrief": 1}
    assert monitor["responses"] == 4
    assert monitor["median_rt_s"] == 0.8
    assert monitor["stimuli_answered"] == monitor["stimuli_total"] == 2
    assert monitor["answers_histogram"] == [{"answers": 1, "stimuli": 2}]
    assert monitor["batches"] == [
        {"number": 1, "target": 3, "completed": 0, "in_progress": 1, "percent": 0}
    ]
    # 800 ms is under the default minimum of 1000 ms: flagged, kept
    assert monitor["too_fast_responses"] == 4
    assert monitor["straight_lining_participants"] == 0  # assessed at completion
    assert monitor["flagged"] == [
        {"participant": "done", "fast_answers": 4, "straight_lining": False}
    ]


def test_study_page_shows_the_arrival_settings_and_quality_flags(
    make_study: Callable[..., Study],
) -> None:
    # given: a completed participant who gave the same answer throughout
    study = make_study(n_stimuli=2, batch_size=2, full_code="FULL-1", excluded_code="EX-1")
    participant = answer_all_trials(study, "same", lambda _t: categorical_answer(), rt_ms=5000)
    elicitation_services.participant_debrief_submit(participant=participant, answers={})
    # when
    page = (
        _logged_in(study.owner)
        .get(reverse("dashboard:study", kwargs={"slug": study.slug}))
        .content.decode()
    )
    # then
    assert '<code id="link-full-code">FULL-1</code>' in page
    assert '<code id="link-excluded-code">EX-1</code>' in page
    assert (
        '<dd id="session-length">expected 15 min; a place is freed 15 min after a '
        "participant's last answer</dd>"
    ) in page
    assert '<strong id="m-straight">1</strong>' in page
    assert "<li>same: 0 too fast, same answer throughout</li>" in page


def test_pause_and_relaunch(make_study: Callable[..., Study]) -> None:
    # given
    study = make_study()
    client = _logged_in(study.owner)
    url = reverse("dashboard:status", kwargs={"slug": study.slug})
    # when
    client.post(url, {"status": "paused", "confirm": "yes"})
    study.refresh_from_db()
    paused = study.status
    client.post(url, {"status": "live"})
    study.refresh_from_db()
    # then
    assert (paused, study.status) == (Study.Status.PAUSED, Study.Status.LIVE)


def test_owner_adds_a_collaborator_who_then_sees_the_study(
    make_study: Callable[..., Study],
) -> None:
    # given
    study = make_study()
    colleague = UserFactory(username="colleague")
    # when
    _logged_in(study.owner).post(
        reverse("dashboard:collaborators", kwargs={"slug": study.slug}), {"username": "colleague"}
    )
    unknown = _logged_in(study.owner).post(
        reverse("dashboard:collaborators", kwargs={"slug": study.slug}),
        {"username": "ghost"},
        follow=True,
    )
    # then
    assert list(study.researchers.all()) == [colleague]
    assert (
        _logged_in(colleague)
        .get(reverse("dashboard:study", kwargs={"slug": study.slug}))
        .status_code
        == 200
    )
    assert "No account named &#x27;ghost&#x27;." in unknown.content.decode()


def test_api_token_create_replace_and_revoke(researcher: Any) -> None:
    # given
    client = _logged_in(researcher)
    url = reverse("dashboard:tokens")
    # when
    first = client.post(url, {"action": "create"}).context["new_key"]
    second = client.post(url, {"action": "create"}).context["new_key"]
    after_replace = list(Token.objects.filter(user=researcher).values_list("key", flat=True))
    client.post(url, {"action": "revoke"})
    # then
    assert first != second
    assert after_replace == [second]
    assert Token.objects.filter(user=researcher).exists() is False


def test_results_page_draws_the_interface_plots_from_stored_results(
    make_study: Callable[..., Study],
) -> None:
    # given a mixing-factor study with analysed answers
    study = make_study(
        n_stimuli=2, batch_size=2, repeats=0, trial_type=Study.TrialType.MIXING_FACTOR
    )
    answer_all_trials(
        study,
        "a",
        lambda _t: {"mixing": 30, "confidence": 80, "moved_mixing": True, "moved_confidence": True},
    )
    analysis_services.study_analysis_recompute(study=study)
    client = _logged_in(study.owner)
    # when
    page = client.get(reverse("dashboard:results", kwargs={"slug": study.slug})).content.decode()
    svg = client.get(
        reverse(
            "dashboard:plot",
            kwargs={"slug": study.slug, "name": "lambda-hat-vs-lambda", "fmt": "svg"},
        )
    )
    png = client.get(
        reverse(
            "dashboard:plot",
            kwargs={"slug": study.slug, "name": "confidence-by-lambda", "fmt": "png"},
        )
    )
    missing = client.get(
        reverse(
            "dashboard:plot", kwargs={"slug": study.slug, "name": "iri-alignment", "fmt": "svg"}
        )
    )
    # then
    assert page.count("<svg") == 2
    assert "No data yet" not in page
    assert svg["Content-Type"] == "image/svg+xml"
    assert b"<svg" in svg.content
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert missing.status_code == 404


def test_results_of_an_unanswered_study_say_no_data_yet(make_study: Callable[..., Study]) -> None:
    # given
    study = make_study()
    # when
    page = (
        _logged_in(study.owner)
        .get(reverse("dashboard:results", kwargs={"slug": study.slug}))
        .content.decode()
    )
    # then
    assert page.count("No data yet") == 2


def _midpoint_answer(trial: Any) -> dict[str, Any]:
    if trial.stimulus.study.trial_type == Study.TrialType.SELECT_MIDPOINT:
        return {"chosen_position": 4}
    start = trial.display["start_step"]
    # One step out and back: an answer needs at least one step (payloads.parse_construct_midpoint).
    visits = [{"step": start, "t_ms": 0}, {"step": start + 1, "t_ms": 100}]
    return {"final_step": start, "visits": [*visits, {"step": start, "t_ms": 200}]}


@pytest.mark.parametrize(
    ("trial_type", "histograms", "consistency"),
    [
        (Study.TrialType.SELECT_MIDPOINT, ["Select (D)"], ["Select (D)"]),
        (
            Study.TrialType.CONSTRUCT_MIDPOINT,
            ["Construct (C)", "Construct (C), start step 1"],
            ["Construct (C)"],
        ),
    ],
)
def test_midpoint_plots_name_the_interfaces_in_words(
    make_study: Callable[..., Study],
    trial_type: str,
    histograms: list[str],
    consistency: list[str],
) -> None:
    # given: one participant who answered two series and one repeat
    study = make_study(n_stimuli=2, batch_size=2, repeats=1, trial_type=trial_type)
    answer_all_trials(study, "a", _midpoint_answer)
    analysis_services.study_analysis_recompute(study=study)
    # when
    groups = analysis_selectors.plot_midpoint_groups(study=study)
    rows = analysis_selectors.plot_consistency_rows(study=study)
    page = (
        _logged_in(study.owner)
        .get(reverse("dashboard:results", kwargs={"slug": study.slug}))
        .content.decode()
    )
    # then: the stored pooled key "__all__" is never shown, and with one interface the pooled
    # consistency bar (the same numbers again) is left out
    assert [g.label for g in groups] == histograms
    assert [(r.interface, r.n_pairs) for r in rows] == [(consistency[0], 1)]
    assert "__all__" not in page
    for label in [*histograms, *consistency]:
        assert label in page


@pytest.mark.parametrize(
    ("trial_type", "whats"),
    [
        (Study.TrialType.CATEGORICAL, ["responses", "annotation-soft-labels", "soft-labels"]),
        (Study.TrialType.MIXING_FACTOR, ["responses", "mixing-factor"]),
        (Study.TrialType.CONSTRUCT_MIDPOINT, ["responses", "midpoints"]),
        (Study.TrialType.SELECT_MIDPOINT, ["responses", "midpoints"]),
        (Study.TrialType.IRI_2AFC, ["responses", "iri-alignment"]),
        (Study.TrialType.IRI_CLUSTER, ["responses", "iri-alignment"]),
    ],
)
def test_study_page_links_only_the_exports_its_interface_has(
    make_study: Callable[..., Study], trial_type: str, whats: list[str]
) -> None:
    # given
    study = make_study(trial_type=trial_type)
    # when
    page = (
        _logged_in(study.owner)
        .get(reverse("dashboard:study", kwargs={"slug": study.slug}))
        .content.decode()
    )
    # then
    exports = page[page.index('id="exports"') : page.index("Dataset bundle")]
    linked = list(dict.fromkeys(re.findall(r"\?what=([a-z-]+)&", exports)))
    assert linked == whats
    npy = set(re.findall(r"\?what=([a-z-]+)&format=npy\"", exports))
    assert npy == ({"annotation-soft-labels", "soft-labels"} & set(whats))
