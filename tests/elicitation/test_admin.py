"""Researchers see and change only their own studies' data in the Django admin."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from elicitation import imaging, selectors, services, stimulus_services
from elicitation.models import ImageSet, Participant, Study
from jobs.models import Job
from tests.admin_helpers import admin_form_data
from tests.conftest import answer_all_trials, categorical_answer
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _staff_researcher(username: str) -> Any:
    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["elicitation", "analysis"])
    )
    return user


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "model", ["study", "stimulus", "participant", "response", "batch", "trial"]
)
def test_changelists_show_only_the_researchers_own_rows(
    make_study: Callable[..., Study], model: str
) -> None:
    # given two researchers, each with a study that has data
    alice, bob = _staff_researcher("alice"), _staff_researcher("bob")
    a_study = make_study()
    a_study.owner = alice
    a_study.save(update_fields=["owner"])
    b_study = make_study()
    b_study.owner = bob
    b_study.save(update_fields=["owner"])
    answer_all_trials(a_study, "pa", lambda _t: categorical_answer())
    answer_all_trials(b_study, "pb", lambda _t: categorical_answer())
    # when
    res = _client(alice).get(reverse(f"admin:elicitation_{model}_changelist"))
    # then
    assert res.status_code == 200
    shown = {str(obj.pk) for obj in res.context["cl"].result_list}
    own = {str(pk) for pk in res.context["cl"].queryset.values_list("pk", flat=True)}
    assert shown == own
    assert res.context["cl"].result_count > 0
    for obj in res.context["cl"].result_list:
        study = (
            obj if model == "study" else (obj.participant.study if model == "trial" else obj.study)
        )
        assert study.pk == a_study.pk


def test_another_researchers_study_cannot_be_opened_or_changed(
    make_study: Callable[..., Study],
) -> None:
    # given
    alice, bob = _staff_researcher("alice"), _staff_researcher("bob")
    study = make_study()
    study.owner = alice
    study.save(update_fields=["owner"])
    url = reverse("admin:elicitation_study_change", args=[study.pk])
    # when bob opens and posts to alice's study
    opened = _client(bob).get(url)
    posted = _client(bob).post(url, {"title": "hijacked"})
    # then he is sent away and nothing changed
    study.refresh_from_db()
    assert opened.status_code == 302
    assert posted.status_code == 302
    assert study.title != "hijacked"
    assert Participant.objects.filter(study=study).exists() is False


# --- issue 10: the admin goes through the same services and scoping as the dashboard -------------


def _image_set(name: str, owner: Any | None) -> ImageSet:
    return stimulus_services.image_set_create(
        name=name,
        source=ImageSet.Source.DEMO,
        images=imaging.generate_demo_images(per_class=1, seed=3),
        owner_id=owner.pk if owner is not None else None,
    )


def _owned_by(make_study: Callable[..., Study], user: Any) -> Study:
    study = make_study()
    study.owner = user
    study.save(update_fields=["owner"])
    return study


def test_a_collaborator_cannot_take_ownership_of_a_study(
    make_study: Callable[..., Study],
) -> None:
    # given bob collaborates on alice's study
    alice, bob = _staff_researcher("alice"), _staff_researcher("bob")
    study = _owned_by(make_study, alice)
    study.researchers.add(bob)
    client = _client(bob)
    url = reverse("admin:elicitation_study_change", args=[study.pk])
    data = admin_form_data(client, study, title="Renamed by bob")
    data["owner"] = str(bob.pk)
    # when
    page = client.get(url)
    res = client.post(url, data)
    # then the other fields change through the service, the owner never
    study.refresh_from_db()
    assert "owner" not in page.context["adminform"].form.fields
    assert res.status_code == 302
    assert (study.owner_id, study.title) == (alice.pk, "Renamed by bob")
    assert (
        _client(alice).get(reverse("dashboard:study", kwargs={"slug": study.slug})).status_code
        == 200
    )


def test_the_study_forms_list_no_usernames_and_studies_start_in_the_builder(
    make_study: Callable[..., Study],
) -> None:
    # given
    alice = _staff_researcher("alice")
    UserFactory(username="unrelated-person")
    study = _owned_by(make_study, alice)
    client = _client(alice)
    # when
    add = client.get(reverse("admin:elicitation_study_add"))
    change = client.get(reverse("admin:elicitation_study_change", args=[study.pk]))
    # then
    assert add.status_code == 403
    assert change.status_code == 200
    assert "unrelated-person" not in change.content.decode()
    assert {"owner", "researchers"}.isdisjoint(change.context["adminform"].form.fields)


def test_a_javascript_completion_url_is_refused_in_the_admin(
    make_study: Callable[..., Study],
) -> None:
    # given
    alice = _staff_researcher("alice")
    study = _owned_by(make_study, alice)
    client = _client(alice)
    data = admin_form_data(
        client, study, completion_url="javascript:alert(document.domain)//{code}"
    )
    # when
    res = client.post(reverse("admin:elicitation_study_change", args=[study.pk]), data)
    # then
    study.refresh_from_db()
    assert res.status_code == 400
    assert "The completion URL must be a web address (https://…)" in res.content.decode()
    assert study.completion_url == "https://app.prolific.com/submissions/complete?cc={code}"


def test_the_completion_page_never_links_or_redirects_to_a_stored_javascript_url(
    make_study: Callable[..., Study],
) -> None:
    # given a completed participant of a study whose stored URL went around the validators
    study = make_study()
    Study.objects.filter(pk=study.pk).update(
        completion_url="javascript:alert(document.domain)//{code}"
    )
    participant = answer_all_trials(study, "P1", lambda _t: categorical_answer())
    services.participant_debrief_submit(participant=participant, answers={})
    # when
    page = Client().get(reverse("elicitation:session", args=[participant.token]))
    # then
    content = page.content.decode()
    assert page.status_code == 200
    assert '<strong id="completion-code" class="code">CODE123</strong>' in content
    assert "javascript:" not in content
    assert 'id="completion-url"' not in content


@pytest.mark.parametrize("model", ["imageset", "sourceimage"])
def test_another_researchers_private_image_set_is_invisible_and_untouchable(model: str) -> None:
    # given alice's private set, bob's own set and a shared one
    alice, bob = _staff_researcher("alice"), _staff_researcher("bob")
    private, own, shared = (
        _image_set("alice-set", alice),
        _image_set("bob-set", bob),
        _image_set("shared-set", None),
    )
    client = _client(bob)
    target = private if model == "imageset" else private.images.first()
    assert target is not None
    n_images = private.images.count()
    # when
    listed = client.get(reverse(f"admin:elicitation_{model}_changelist"))
    opened = client.get(reverse(f"admin:elicitation_{model}_change", args=[target.pk]))
    deleted = client.post(
        reverse(f"admin:elicitation_{model}_delete", args=[target.pk]), {"post": "yes"}
    )
    # then
    sets = {
        (obj if model == "imageset" else obj.image_set).name
        for obj in listed.context["cl"].queryset
    }
    assert sets == {own.name, shared.name}
    assert "alice-set" not in listed.content.decode()  # nor in the list filter
    assert (opened.status_code, deleted.status_code) == (302, 403)
    assert ImageSet.objects.filter(pk=private.pk, owner=alice).exists() is True
    assert private.images.count() == n_images


def test_an_image_set_owner_cannot_be_cleared_to_publish_it() -> None:
    # given
    alice, bob = _staff_researcher("alice"), _staff_researcher("bob")
    private = _image_set("alice-set", alice)
    # when alice posts an empty owner
    res = _client(alice).post(
        reverse("admin:elicitation_imageset_change", args=[private.pk]),
        {"name": private.name, "source": private.source, "classes": "[]", "owner": ""},
    )
    # then
    private.refresh_from_db()
    assert res.status_code == 403
    assert private.owner_id == alice.pk
    assert selectors.image_set_list_for_user(user_id=bob.pk).filter(pk=private.pk).exists() is False


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:elicitation_stimulus_changelist",
        "admin:elicitation_participant_changelist",
        "admin:elicitation_response_changelist",
        "admin:elicitation_batch_changelist",
        "admin:elicitation_studytransition_changelist",
        "admin:analysis_softlabel_changelist",
    ],
)
def test_list_filters_offer_only_the_users_own_studies(
    make_study: Callable[..., Study], url_name: str
) -> None:
    # given
    alice, bob = _staff_researcher("alice"), _staff_researcher("bob")
    a_study, b_study = _owned_by(make_study, alice), _owned_by(make_study, bob)
    # when
    res = _client(bob).get(reverse(url_name))
    # then
    content = res.content.decode()
    assert res.status_code == 200
    assert b_study.slug in content
    assert a_study.slug not in content


def test_a_superuser_sees_every_study_and_image_set(make_study: Callable[..., Study]) -> None:
    # given
    alice = _staff_researcher("alice")
    a_study, other = _owned_by(make_study, alice), make_study()
    private = _image_set("alice-set", alice)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    # when
    studies = _client(root).get(reverse("admin:elicitation_study_changelist"))
    sets = _client(root).get(reverse("admin:elicitation_imageset_changelist"))
    # then
    assert {a_study.pk, other.pk} <= {s.pk for s in studies.context["cl"].queryset}
    assert private.pk in {s.pk for s in sets.context["cl"].queryset}


def test_jobs_are_scoped_in_the_admin(make_study: Callable[..., Study]) -> None:
    # given a job of alice's and one of bob's
    alice, bob = _staff_researcher("alice"), _staff_researcher("bob")
    bob.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs"))
    a_job = Job.objects.create(owner=alice, kind=Job.Kind.BUNDLE)
    b_job = Job.objects.create(owner=bob, kind=Job.Kind.BUNDLE)
    # when
    res = _client(bob).get(reverse("admin:jobs_job_changelist"))
    opened = _client(bob).get(reverse("admin:jobs_job_change", args=[a_job.pk]))
    # then
    assert {j.pk for j in res.context["cl"].queryset} == {b_job.pk}
    assert opened.status_code == 302


@pytest.mark.parametrize("model", ["participant", "response", "trial"])
def test_not_even_a_superuser_deletes_participant_data_around_the_withdrawal_service(
    make_study: Callable[..., Study], model: str
) -> None:
    # given a participant with stored answers, and a superuser in the admin
    study = make_study(n_stimuli=2, batch_size=2)
    participant = answer_all_trials(study, "PID-ADMIN", lambda _: categorical_answer())
    target = {
        "participant": participant,
        "response": participant.responses.first(),
        "trial": participant.trials.first(),
    }[model]
    assert target is not None
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = _client(root)
    n_responses = participant.responses.count()
    # when the superuser opens the row and tries to delete it, one by one and in bulk
    opened = client.get(reverse(f"admin:elicitation_{model}_change", args=[target.pk]))
    deleted = client.post(
        reverse(f"admin:elicitation_{model}_delete", args=[target.pk]), {"post": "yes"}
    )
    bulk = client.post(
        reverse(f"admin:elicitation_{model}_changelist"),
        {"action": "delete_selected", "_selected_action": [target.pk], "post": "yes"},
    )
    # then the row is shown but stays: removing data is a withdrawal, which logs and recomputes
    assert opened.status_code == 200
    assert deleted.status_code == 403
    assert bulk.status_code in (200, 302)
    assert type(target).objects.filter(pk=target.pk).exists()
    assert participant.responses.count() == n_responses
