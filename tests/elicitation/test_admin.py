"""Researchers see and change only their own studies' data in the Django admin."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from elicitation.models import Participant, Study
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
