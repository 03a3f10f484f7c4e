"""The lifecycle's rules hold through every way in: the REST API, the dashboard and the Django
admin each get a 4xx naming the problem for every forbidden transition and edit, and nothing
changes."""

import html
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from elicitation import services
from elicitation.models import Batch, Stimulus, Study, StudyTransition
from tests.admin_helpers import admin_form_data
from tests.conftest import start_in_trials, token_client
from tests.factories import StimulusFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db

LIVE, PAUSED, CLOSED, DRAFT = (
    Study.Status.LIVE,
    Study.Status.PAUSED,
    Study.Status.CLOSED,
    Study.Status.DRAFT,
)
BACK_TO_DRAFT = "A launched study cannot go back to draft"
REOPEN = "The study is closed, and a closed study cannot be reopened."


def _staff(username: str) -> Any:
    """A staff researcher (not a superuser) with every permission of the study apps."""
    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["elicitation", "analysis", "jobs"])
    )
    return user


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _study_in(owner: Any, status: str) -> Study:
    study = StudyFactory(owner=owner)
    stimuli = [StimulusFactory(study=study) for _ in range(4)]
    services.batches_build(study=study, stimuli=stimuli, batch_size=2)
    paths: dict[str, list[str]] = {
        DRAFT: [],
        LIVE: [LIVE],
        PAUSED: [LIVE, PAUSED],
        CLOSED: [LIVE, CLOSED],
    }
    path = paths[status]
    for step in path:
        services.study_set_status(study=study, status=step)
    return study


def _admin_post(user: Any, study: Study, **overrides: Any) -> Any:
    client = _client(user)
    data = admin_form_data(client, study, **overrides)
    return client.post(reverse("admin:elicitation_study_change", args=[study.pk]), data)


def _text(res: Any) -> str:
    return html.unescape(res.content.decode())


# --- transitions ------------------------------------------------------------------------------

FORBIDDEN = [
    (DRAFT, PAUSED, "A draft study cannot be paused: launch it first."),
    (DRAFT, CLOSED, "A draft study cannot be closed: launch it first."),
    (LIVE, DRAFT, BACK_TO_DRAFT),
    (PAUSED, DRAFT, BACK_TO_DRAFT),
    (CLOSED, DRAFT, BACK_TO_DRAFT),
    (CLOSED, LIVE, REOPEN),
    (CLOSED, PAUSED, REOPEN),
]


@pytest.mark.parametrize(("start", "target", "message"), FORBIDDEN)
def test_forbidden_transition_through_the_api(start: str, target: str, message: str) -> None:
    # given
    owner = _staff("owner")
    study = _study_in(owner, start)
    n_before = StudyTransition.objects.count()
    # when
    res = token_client(owner).post(
        reverse("api:status", kwargs={"slug": study.slug}), {"status": target}, format="json"
    )
    # then
    assert res.status_code == 409
    assert message in res.json()["message"]
    study.refresh_from_db()
    assert (study.status, StudyTransition.objects.count()) == (start, n_before)


@pytest.mark.parametrize(("start", "target", "message"), FORBIDDEN)
def test_forbidden_transition_through_the_dashboard(start: str, target: str, message: str) -> None:
    # given
    owner = _staff("owner")
    study = _study_in(owner, start)
    n_before = StudyTransition.objects.count()
    # when (confirmed, as the confirmation page posts it)
    res = _client(owner).post(
        reverse("dashboard:status", kwargs={"slug": study.slug}),
        {"status": target, "confirm": "yes"},
    )
    # then
    assert res.status_code == 409
    assert message in _text(res)
    study.refresh_from_db()
    assert (study.status, StudyTransition.objects.count()) == (start, n_before)


@pytest.mark.parametrize(("start", "target", "message"), FORBIDDEN)
def test_forbidden_transition_through_the_admin(start: str, target: str, message: str) -> None:
    # given
    owner = _staff("owner")
    study = _study_in(owner, start)
    n_before = StudyTransition.objects.count()
    # when
    res = _admin_post(owner, study, status=target)
    # then
    assert res.status_code == 400
    assert message in _text(res)
    study.refresh_from_db()
    assert (study.status, StudyTransition.objects.count()) == (start, n_before)


def test_launch_with_a_blank_code_is_refused_through_every_door() -> None:
    # given
    owner = _staff("owner")
    study = _study_in(owner, DRAFT)
    Study.objects.filter(pk=study.pk).update(completion_code="")
    study.refresh_from_db()
    reason = "Set a completion code, or tick “no code: I pay another way”"
    # when
    api = token_client(owner).post(
        reverse("api:status", kwargs={"slug": study.slug}), {"status": LIVE}, format="json"
    )
    dashboard = _client(owner).post(
        reverse("dashboard:status", kwargs={"slug": study.slug}), {"status": LIVE}
    )
    admin = _admin_post(owner, study, status=LIVE)
    # then
    assert (api.status_code, dashboard.status_code, admin.status_code) == (409, 409, 400)
    assert reason in api.json()["message"]
    assert api.json()["extra"]["checklist"]["completion"].startswith(reason)
    assert reason in _text(dashboard)
    assert reason in _text(admin)
    study.refresh_from_db()
    assert study.status == DRAFT
    assert StudyTransition.objects.exists() is False


def test_allowed_transitions_through_each_door_are_recorded_with_the_door() -> None:
    # given
    owner = _staff("owner")
    study = _study_in(owner, DRAFT)
    # when: launch in the admin, pause on the dashboard, close through the API
    launched = _admin_post(owner, study, status=LIVE)
    paused = _client(owner).post(
        reverse("dashboard:status", kwargs={"slug": study.slug}),
        {"status": PAUSED, "confirm": "yes"},
    )
    closed = token_client(owner).post(
        reverse("api:status", kwargs={"slug": study.slug}), {"status": CLOSED}, format="json"
    )
    # then
    assert (launched.status_code, paused.status_code, closed.status_code) == (302, 302, 200)
    rows = list(
        StudyTransition.objects.filter(study=study)
        .order_by("id")
        .values_list("from_status", "to_status", "actor_id", "via")
    )
    assert rows == [
        (DRAFT, LIVE, owner.pk, "admin"),
        (LIVE, PAUSED, owner.pk, "dashboard"),
        (PAUSED, CLOSED, owner.pk, "api"),
    ]
    page = _text(_client(owner).get(reverse("dashboard:study", kwargs={"slug": study.slug})))
    assert page.count("<td>owner</td>") == 3
    assert "<td>Paused</td><td>Closed</td><td>owner</td><td>REST API</td>" in page


# --- edits once someone has consented ---------------------------------------------------------

LOCKED_EDITS = [
    (
        "classes",
        ["Truck", "Ship", "Horse", "Frog", "Dog", "Deer", "Cat", "Bird", "Automobile", "Airplane"],
    ),
    ("repeats", 5),
    ("trial_type", Study.TrialType.MIXING_FACTOR),
    ("participants_per_batch", 9),
]


@pytest.fixture
def consented(make_study: Callable[..., Study]) -> Study:
    """A live study with a participant in the trials."""
    study = make_study()
    start_in_trials(study, "P1")
    return study


def _snapshot(study: Study) -> tuple[Any, ...]:
    fresh = Study.objects.get(pk=study.pk)
    return (
        fresh.classes,
        fresh.repeats,
        fresh.trial_type,
        fresh.participants_per_batch,
        sorted(Batch.objects.filter(study=study).values_list("id", "target")),
        sorted(Stimulus.objects.filter(study=study).values_list("id", flat=True)),
    )


@pytest.mark.parametrize(("field", "value"), LOCKED_EDITS)
def test_locked_edit_through_the_api(consented: Study, field: str, value: Any) -> None:
    # given
    before = _snapshot(consented)
    # when
    res = token_client(consented.owner).patch(
        reverse("api:study-detail", kwargs={"slug": consented.slug}),
        {field: value},
        format="json",
    )
    # then
    assert res.status_code in (400, 409)
    assert field in res.json()["message"] or field in res.json()["extra"].get("fields", {})
    assert _snapshot(consented) == before


@pytest.mark.parametrize(("field", "value"), LOCKED_EDITS)
def test_locked_edit_through_the_admin_is_refused_and_shown_read_only(
    consented: Study, field: str, value: Any
) -> None:
    # given
    owner = consented.owner
    owner.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["elicitation"])
    )
    before = _snapshot(consented)
    client = _client(owner)
    page = client.get(reverse("admin:elicitation_study_change", args=[consented.pk]))
    # when
    res = _admin_post(owner, consented, **{field: value})
    # then
    assert field not in page.context["adminform"].form.fields  # shown read-only
    assert res.status_code == 400
    assert f"{field} can no longer change: participants have consented to the study." in _text(res)
    assert _snapshot(consented) == before


def test_batch_rebuild_and_targets_through_the_api_and_dashboard(consented: Study) -> None:
    # given
    before = _snapshot(consented)
    url = reverse("api:batches", kwargs={"slug": consented.slug})
    # when
    api = token_client(consented.owner).post(url, {"batch_size": 4}, format="json")
    api_target = token_client(consented.owner).post(
        url, {"batch_size": 2, "participants_per_batch": 9}, format="json"
    )
    dashboard = _client(consented.owner).post(
        reverse("dashboard:build-batches", kwargs={"slug": consented.slug}),
        {"batch_size": 4, "participants_per_batch": consented.participants_per_batch, "seed": 0},
    )
    # then
    assert (api.status_code, api_target.status_code, dashboard.status_code) == (409, 409, 400)
    assert api.json()["message"] == (
        "Batches cannot be rebuilt once participants have consented to the study."
    )
    assert api_target.json()["message"] == (
        "participants_per_batch can no longer change: participants have consented to the study."
    )
    assert "Batches cannot be rebuilt once participants have consented to the study." in _text(
        dashboard
    )
    assert _snapshot(consented) == before


@pytest.mark.parametrize("model", ["stimulus", "batch"])
def test_stimuli_and_batches_of_a_launched_study_cannot_be_deleted_in_the_admin(
    consented: Study, model: str
) -> None:
    # given a superuser (the only one who may delete rows there at all)
    admin_user = UserFactory(username="root", is_staff=True, is_superuser=True)
    obj = (Stimulus if model == "stimulus" else Batch).objects.filter(study=consented).first()
    assert obj is not None
    before = _snapshot(consented)
    client = _client(admin_user)
    # when
    res = client.post(reverse(f"admin:elicitation_{model}_delete", args=[obj.pk]), {"post": "yes"})
    changelist = client.get(reverse(f"admin:elicitation_{model}_changelist"))
    # then
    assert res.status_code == 403
    assert changelist.context["action_form"] is None  # no bulk "delete selected"
    assert _snapshot(consented) == before


def test_no_code_i_pay_another_way_through_the_api_lets_the_study_launch() -> None:
    # given a ready draft without a completion code
    owner = _staff("owner")
    study = _study_in(owner, DRAFT)
    Study.objects.filter(pk=study.pk).update(completion_code="")
    client = token_client(owner)
    # when
    patched = client.patch(
        reverse("api:study-detail", kwargs={"slug": study.slug}),
        {"pays_without_code": True},
        format="json",
    )
    launched = client.post(
        reverse("api:status", kwargs={"slug": study.slug}), {"status": LIVE}, format="json"
    )
    # then
    assert (patched.status_code, patched.json()["pays_without_code"]) == (200, True)
    assert (launched.status_code, launched.json()["status"]) == (200, LIVE)
    assert list(study.transitions.values_list("to_status", "via")) == [(LIVE, "api")]
