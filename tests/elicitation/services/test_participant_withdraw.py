"""Withdrawing a participant: one service behind the dashboard, the REST API and the command,
with the same permission check; responses deleted or excluded, labels recomputed, logged."""

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from analysis import exports, quality_selectors
from analysis.models import AnalysisResult, SoftLabel
from elicitation import privacy_services
from elicitation.models import (
    ComprehensionAttempt,
    Participant,
    ParticipantWithdrawal,
    Response,
    Study,
    Trial,
)
from hmix_site.common.exceptions import ApplicationError
from tests.conftest import answer_all_trials, categorical_answer, start_in_trials, token_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(make_study: Callable[..., Study], django_capture_on_commit_callbacks: Any) -> Study:
    """Two stimuli, answered by "keep" (Cat) and "leave" (Truck); labels kept fresh by the
    eager sweep each commit runs."""
    study = make_study(n_stimuli=2, batch_size=2, repeats=0, participants_per_batch=2)
    with django_capture_on_commit_callbacks(execute=True):
        answer_all_trials(study, "keep", lambda _t: categorical_answer(impossible=[]))
        answer_all_trials(
            study,
            "leave",
            lambda _t: categorical_answer(top_class="Truck", second_class=None, p2=None),
        )
    return study


def _labels(study: Study) -> dict[str, tuple[int, list[float]]]:
    return {
        label.stimulus.key: (label.n_annotations, label.probs)
        for label in SoftLabel.objects.filter(study=study).select_related("stimulus")
    }


def _state(study: Study) -> tuple[Any, ...]:
    """Everything a withdrawal could change."""
    return (
        list(Response.objects.filter(study=study).order_by("id").values_list("id", flat=True)),
        Trial.objects.filter(participant__study=study).count(),
        list(
            Participant.objects.filter(study=study)
            .order_by("id")
            .values_list("stage", "withdrawn_at", "debrief")
        ),
        ParticipantWithdrawal.objects.count(),
        _labels(study),
    )


def _leaver(study: Study) -> Participant:
    return Participant.objects.get(study=study, external_id="leave")


# --- the service ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["delete", "exclude"])
def test_withdrawal_recomputes_the_labels_without_the_participant(
    study: Study, mode: str, django_capture_on_commit_callbacks: Any
) -> None:
    # given the labels with both participants
    before = _labels(study)
    assert {n for n, _ in before.values()} == {2}
    leaver = _leaver(study)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        withdrawal = privacy_services.participant_withdraw(
            participant=leaver, user_id=study.owner_id, mode=mode, reason="asked by email"
        )
    # then each label is the remaining participant's answer alone: Cat 60, Dog 20, and the
    # 20 left over spread over the 8 other classes (Truck among them)
    after = _labels(study)
    assert sorted(after) == sorted(before)
    for n, probs in after.values():
        assert n == 1
        assert probs == pytest.approx([0.025, 0.025, 0.025, 0.6, 0.025, 0.2, *[0.025] * 4])
    assert after != before
    # and the withdrawal is logged
    assert (
        withdrawal.study,
        withdrawal.participant,
        withdrawal.pseudonym,
        withdrawal.by_id,
        withdrawal.mode,
        withdrawal.n_responses,
        withdrawal.reason,
    ) == (study, leaver, leaver.pseudonym, study.owner_id, mode, 2, "asked by email")
    leaver.refresh_from_db()
    assert leaver.withdrawn_at is not None
    assert abs((leaver.withdrawn_at - withdrawal.created_at).total_seconds()) < 60


def test_exclude_keeps_the_answers_stored_but_out_of_exports_and_reports(
    study: Study,
) -> None:
    # given
    keeper = Participant.objects.get(study=study, external_id="keep")
    leaver = _leaver(study)
    kept_responses = list(Response.objects.filter(participant=keeper).values_list("id", flat=True))
    # when
    privacy_services.participant_withdraw(
        participant=leaver, user_id=study.owner_id, mode="exclude"
    )
    # then the excluded answers stay stored but leave the exports and the quality report
    assert Response.objects.filter(participant=leaver).count() == 2
    body = b"".join(
        c.encode() if isinstance(c, str) else c
        for c in exports.export_stream(study=study, what="responses", fmt="jsonl")
    )
    assert sorted(json.loads(line)["id"] for line in body.splitlines()) == sorted(kept_responses)
    annotations = b"".join(
        c.encode() if isinstance(c, str) else c
        for c in exports.export_stream(study=study, what="annotation-soft-labels", fmt="jsonl")
    )
    assert {json.loads(line)["participant"] for line in annotations.splitlines()} == {
        keeper.pseudonym
    }
    assert [r.participant for r in quality_selectors.study_quality_report(study=study)] == [
        keeper.id
    ]


def test_delete_removes_responses_trials_and_answers_about_the_participant(study: Study) -> None:
    # given
    leaver = _leaver(study)
    assert ComprehensionAttempt.objects.filter(participant=leaver).exists()
    # when
    privacy_services.participant_withdraw(participant=leaver, user_id=study.owner_id, mode="delete")
    # then
    assert Response.objects.filter(participant=leaver).exists() is False
    assert Trial.objects.filter(participant=leaver).exists() is False
    assert ComprehensionAttempt.objects.filter(participant=leaver).exists() is False
    leaver.refresh_from_db()
    assert (leaver.debrief, leaver.user_agent, leaver.withdrawn_at is not None) == ({}, "", True)
    # the other participant is untouched
    assert Response.objects.filter(study=study).count() == 2


def test_a_running_session_is_ended_and_its_slot_freed(make_study: Callable[..., Study]) -> None:
    # given a participant in the middle of the trials
    study = make_study(n_stimuli=2, batch_size=2)
    participant = start_in_trials(study, "busy")
    assert participant.stage == Participant.Stage.TRIALS
    # when
    privacy_services.participant_withdraw(
        participant=participant, user_id=study.owner_id, mode="delete"
    )
    # then
    participant.refresh_from_db()
    assert (participant.stage, participant.lease_expires_at) == (Participant.Stage.RETURNED, None)


def test_interface_analyses_are_recomputed_without_the_participant(
    make_study: Callable[..., Study], django_capture_on_commit_callbacks: Any
) -> None:
    # given a mixing-factor study answered by two participants, its analyses stored
    study = make_study(
        n_stimuli=2, batch_size=2, repeats=0, participants_per_batch=2, trial_type="mixing_factor"
    )
    # (each commit refreshes the analyses eagerly, as a worker would)
    with django_capture_on_commit_callbacks(execute=True):
        for pid, slider in (("keep", 30), ("leave", 90)):
            answer = {
                "mixing": slider,
                "confidence": 50,
                "moved_mixing": True,
                "moved_confidence": True,
            }
            answer_all_trials(study, pid, lambda _t, a=answer: a)
    results = AnalysisResult.objects.filter(
        study=study, kind="mixing-stimulus", params_key='{"include_repeats": true}'
    )
    before = {r.key: r.n for r in results}
    # when (the debounced study refresh runs eagerly at commit)
    with django_capture_on_commit_callbacks(execute=True):
        privacy_services.participant_withdraw(
            participant=_leaver(study), user_id=study.owner_id, mode="exclude"
        )
    # then
    after = list(results.all())
    assert set(before.values()) == {2}
    assert {r.key: r.n for r in after} == dict.fromkeys(before, 1)
    assert {round(r.data["mean_lam_hat"], 6) for r in after} == {0.7}


def test_a_collaborator_may_withdraw_but_another_researcher_may_not(study: Study) -> None:
    # given
    collaborator, stranger = UserFactory(username="collab"), UserFactory(username="stranger")
    study.researchers.add(collaborator)
    before = _state(study)
    # when / then a stranger is refused and nothing changes
    with pytest.raises(PermissionDenied, match=r"You are not a researcher of this study\."):
        privacy_services.participant_withdraw(
            participant=_leaver(study), user_id=stranger.pk, mode="delete"
        )
    assert _state(study) == before
    # and a collaborator may
    withdrawal = privacy_services.participant_withdraw(
        participant=_leaver(study), user_id=collaborator.pk, mode="exclude"
    )
    assert withdrawal.by == collaborator


def test_bad_input_and_a_second_withdrawal_are_refused_and_change_nothing(study: Study) -> None:
    # given
    leaver = _leaver(study)
    before = _state(study)
    # when / then
    with pytest.raises(Exception, match="Unknown mode 'erase'") as bad_mode:
        privacy_services.participant_withdraw(
            participant=leaver, user_id=study.owner_id, mode="erase"
        )
    assert type(bad_mode.value).__name__ == "ValidationError"
    with pytest.raises(Exception, match="longer than 500") as long_reason:
        privacy_services.participant_withdraw(
            participant=leaver, user_id=study.owner_id, mode="delete", reason="x" * 501
        )
    assert type(long_reason.value).__name__ == "ValidationError"
    assert _state(study) == before
    privacy_services.participant_withdraw(
        participant=leaver, user_id=study.owner_id, mode="exclude"
    )
    middle = _state(study)
    with pytest.raises(ApplicationError, match="already withdrawn") as again:
        privacy_services.participant_withdraw(
            participant=leaver, user_id=study.owner_id, mode="delete"
        )
    assert again.value.status == 409
    assert _state(study) == middle


# --- the REST API ---------------------------------------------------------------------------------


def _api_url(study: Study) -> str:
    return reverse("api:participant-withdraw", kwargs={"slug": study.slug})


def test_the_api_withdraws_by_pseudonym_and_lists_the_log(study: Study) -> None:
    # given
    client = token_client(study.owner)
    leaver = _leaver(study)
    # when
    res = client.post(
        _api_url(study),
        {"participant": leaver.pseudonym, "mode": "delete", "reason": "GDPR request"},
        format="json",
    )
    log = client.get(reverse("api:withdrawal-list", kwargs={"slug": study.slug}))
    # then
    assert res.status_code == 201
    body = res.json()
    assert body.pop("created_at")
    assert body == {
        "participant": leaver.pseudonym,
        "mode": "delete",
        "n_responses": 2,
        "reason": "GDPR request",
        "by": study.owner.get_username(),
    }
    assert Response.objects.filter(participant=leaver).exists() is False
    assert [(w["participant"], w["mode"]) for w in log.json()["results"]] == [
        (leaver.pseudonym, "delete")
    ]


@pytest.mark.parametrize(
    ("who", "status"),
    [("stranger", 403), ("anonymous", 401)],
)
def test_the_api_refuses_other_researchers_and_changes_nothing(
    study: Study, who: str, status: int
) -> None:
    # given
    client = token_client(UserFactory(username="stranger"))
    if who == "anonymous":
        client.credentials()
    before = _state(study)
    # when
    res = client.post(
        _api_url(study), {"participant": _leaver(study).pseudonym, "mode": "delete"}, format="json"
    )
    # then
    assert res.status_code == status
    assert _state(study) == before


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"participant": "nobody", "mode": "delete"}, 404, "No such participant in this study."),
        ({"participant": "leave", "mode": "erase"}, 400, 'mode: "erase" is not a valid choice.'),
        ({"mode": "delete"}, 400, "participant: This field is required."),
    ],
)
def test_the_api_names_bad_input_and_changes_nothing(
    study: Study, data: dict[str, str], status: int, message: str
) -> None:
    # given
    before = _state(study)
    # when
    res = token_client(study.owner).post(_api_url(study), data, format="json")
    # then
    assert (res.status_code, res.json()["message"]) == (status, message)
    assert _state(study) == before


# --- the dashboard --------------------------------------------------------------------------------


def _dashboard(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_dashboard_withdraws_by_platform_id_after_confirmation(study: Study) -> None:
    # given
    client = _dashboard(study.owner)
    url = reverse("dashboard:withdraw", kwargs={"slug": study.slug})
    leaver = _leaver(study)
    # when
    page = client.get(url)
    unconfirmed = client.post(url, {"participant": "leave", "mode": "exclude"})
    res = client.post(url, {"participant": "leave", "mode": "exclude", "confirm": "on"})
    after = client.get(url)
    # then
    assert page.status_code == 200
    assert b"No participant has been withdrawn." in page.content
    assert unconfirmed.status_code == 400
    assert b"This field is required." in unconfirmed.content
    assert (res.status_code, res["Location"]) == (302, url)
    assert ParticipantWithdrawal.objects.get().participant == leaver
    assert leaver.pseudonym.encode() in after.content
    assert b"exclude" in after.content


def test_the_dashboard_refuses_other_researchers_and_changes_nothing(study: Study) -> None:
    # given
    client = _dashboard(UserFactory(username="stranger"))
    url = reverse("dashboard:withdraw", kwargs={"slug": study.slug})
    before = _state(study)
    # when
    res = client.post(url, {"participant": "leave", "mode": "delete", "confirm": "on"})
    # then
    assert res.status_code == 403
    assert _state(study) == before


def test_the_dashboard_names_an_unknown_participant(study: Study) -> None:
    # given
    before = _state(study)
    url = reverse("dashboard:withdraw", kwargs={"slug": study.slug})
    # when
    res = _dashboard(study.owner).post(
        url, {"participant": "nobody", "mode": "delete", "confirm": "on"}
    )
    # then
    assert res.status_code == 400
    assert b"No such participant in this study." in res.content
    assert _state(study) == before


# --- the command ----------------------------------------------------------------------------------


def test_the_command_withdraws_as_the_named_researcher(study: Study) -> None:
    # given
    leaver = _leaver(study)
    out = io.StringIO()
    # when
    call_command(
        "withdraw_participant",
        study=study.slug,
        participant=str(leaver.token),
        mode="delete",
        by=study.owner.get_username(),
        stdout=out,
    )
    # then
    assert out.getvalue() == (
        f"Withdrew participant {leaver.pseudonym} of {study.slug!r}: 2 responses deleted; labels "
        "and analyses are being recomputed.\n"
    )
    assert ParticipantWithdrawal.objects.get().by == study.owner


@pytest.mark.parametrize(
    ("by", "participant", "message"),
    [
        ("stranger", "leave", "Nothing was withdrawn: You are not a researcher of this study."),
        ("ghost", "leave", "No account named 'ghost'."),
        ("owner", "nobody", "No participant 'nobody' in"),
    ],
)
def test_the_command_refuses_and_changes_nothing(
    study: Study, by: str, participant: str, message: str
) -> None:
    # given
    UserFactory(username="stranger")
    before = _state(study)
    # when / then
    with pytest.raises(CommandError, match=message):
        call_command(
            "withdraw_participant",
            study=study.slug,
            participant=participant,
            mode="delete",
            by=by,
            stdout=io.StringIO(),
        )
    assert _state(study) == before


# --- the admin: the log, read-only ---------------------------------------------------------------


def test_the_admin_shows_the_log_to_the_studys_researchers_only_and_never_deletes_it(
    study: Study, make_study: Callable[..., Study]
) -> None:
    # given a withdrawal in the owner's study, and staff accounts for the owner and another
    privacy_services.participant_withdraw(
        participant=_leaver(study), user_id=study.owner_id, mode="exclude"
    )
    withdrawal = ParticipantWithdrawal.objects.get()
    owner, other = study.owner, UserFactory(username="other")
    for user in (owner, other):
        user.is_staff = True
        user.save()
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label__in=["elicitation", "analysis"])
        )
    url = reverse("admin:elicitation_participantwithdrawal_changelist")
    delete = reverse("admin:elicitation_participantwithdrawal_delete", args=[withdrawal.pk])
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    # when
    seen_by_owner = _dashboard(owner).get(url)
    seen_by_other = _dashboard(other).get(url)
    deleted_by_root = _dashboard(superuser).post(delete, {"post": "yes"})
    # then
    assert withdrawal.pseudonym.encode() in seen_by_owner.content
    assert withdrawal.pseudonym.encode() not in seen_by_other.content
    assert deleted_by_root.status_code == 403
    assert ParticipantWithdrawal.objects.count() == 1
