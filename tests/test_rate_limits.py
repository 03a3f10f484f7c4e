"""Abuse limits (hmix_site/common/ratelimits.py): participant arrivals per client address and per
study, locked-out logins (django-axes), and the researcher API per user (DRF throttling)."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from elicitation.models import Participant, Study
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _arrive_by_link(client: Client, study: Study, pid: str, ip: str = "127.0.0.1") -> Any:
    # The consent form's POST is what starts a session (a GET of the link writes nothing).
    entry = reverse("elicitation:entry", kwargs={"slug": study.slug})
    return client.post(
        f"{entry}?PROLIFIC_PID={pid}&STUDY_ID=S&SESSION_ID={pid}",
        {"adult": "on", "understood": "on", "agree": "on"},
        REMOTE_ADDR=ip,
    )


def test_following_the_link_costs_no_arrival(
    make_study: Callable[..., Study], settings: Any
) -> None:
    # given: one arrival an hour per address
    settings.HMIX_ARRIVAL_RATE_PER_IP = "1/h"
    study = make_study(n_stimuli=4, batch_size=2, participants_per_batch=30)
    client = Client()
    entry = reverse("elicitation:entry", kwargs={"slug": study.slug})
    # when: a link-preview bot opens the link three times, then a worker consents
    previews = [client.get(f"{entry}?PROLIFIC_PID=P1&STUDY_ID=S&SESSION_ID=P1") for _ in range(3)]
    consented = _arrive_by_link(client, study, "P1")
    # then: the previews were shown the consent form and did not use up the address's arrival
    assert [r.status_code for r in previews] == [200, 200, 200]
    assert consented.status_code == 302
    assert list(Participant.objects.values_list("external_id", flat=True)) == ["P1"]


def _arrive_by_api(client: APIClient, study: Study, pid: str, ip: str = "127.0.0.1") -> Any:
    return client.post(
        reverse("participant-api:session-start"),
        {"study": study.slug, "platform": "prolific", "external_id": pid},
        format="json",
        REMOTE_ADDR=ip,
    )


def test_one_address_gets_only_its_share_of_arrivals_by_link_and_api_together(
    make_study: Callable[..., Study], settings: Any
) -> None:
    # given: three arrivals an hour per address
    settings.HMIX_ARRIVAL_RATE_PER_IP = "3/h"
    study = make_study(n_stimuli=4, batch_size=2, participants_per_batch=30)
    client, api = Client(), APIClient()
    # when: one address arrives twice by link and once over the API, then tries both again
    allowed = [
        _arrive_by_link(client, study, "P1").status_code,
        _arrive_by_link(client, study, "P2").status_code,
        _arrive_by_api(api, study, "P3").status_code,
    ]
    page = _arrive_by_link(client, study, "P4")
    refused = _arrive_by_api(api, study, "P5")
    other = _arrive_by_link(client, study, "P6", ip="10.0.0.2")
    # then: the fourth and fifth are refused with 429, a reason and when to come back, and
    # wrote nothing; another address still gets in
    assert allowed == [302, 302, 201]
    assert page.status_code == 429
    assert "Too many sessions were started from your network" in page.content.decode()
    assert 0 < int(page["Retry-After"]) <= 3600
    assert refused.status_code == 429
    assert refused.json()["message"].startswith("Too many sessions were started from your network")
    assert refused.json()["extra"]["retry_after"] == int(refused["Retry-After"])
    assert other.status_code == 302
    assert sorted(Participant.objects.values_list("external_id", flat=True)) == [
        "P1",
        "P2",
        "P3",
        "P6",
    ]


def test_a_study_takes_arrivals_no_faster_than_its_limit_whatever_the_addresses(
    make_study: Callable[..., Study], settings: Any
) -> None:
    # given: two arrivals an hour per study, and two live studies
    settings.HMIX_ARRIVAL_RATE_PER_STUDY = "2/h"
    study = make_study(n_stimuli=4, batch_size=2, participants_per_batch=30)
    other = make_study(n_stimuli=4, batch_size=2, participants_per_batch=30)
    api = APIClient()
    # when: three addresses arrive at the first study, then one at the second
    codes = [_arrive_by_api(api, study, f"P{i}", ip=f"10.0.0.{i}").status_code for i in (1, 2)]
    refused = _arrive_by_api(api, study, "P3", ip="10.0.0.3")
    elsewhere = _arrive_by_api(api, other, "P4", ip="10.0.0.4")
    # then
    assert codes == [201, 201]
    assert refused.status_code == 429
    assert refused.json()["message"].startswith("This study is receiving too many participants")
    assert int(refused["Retry-After"]) > 0
    assert elsewhere.status_code == 201
    assert Participant.objects.filter(study=study).count() == 2
    assert Participant.objects.filter(study=other).count() == 1


def test_behind_a_proxy_the_address_the_proxy_saw_is_counted_not_the_one_the_client_claims(
    make_study: Callable[..., Study], settings: Any
) -> None:
    # given: a proxy that appends the address it saw to X-Forwarded-For
    settings.HMIX_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    settings.HMIX_ARRIVAL_RATE_PER_IP = "1/h"
    study = make_study(n_stimuli=4, batch_size=2, participants_per_batch=30)
    api = APIClient()

    def arrive(pid: str, forwarded: str) -> int:
        response = api.post(
            reverse("participant-api:session-start"),
            {"study": study.slug, "platform": "prolific", "external_id": pid},
            format="json",
            HTTP_X_FORWARDED_FOR=forwarded,
        )
        return int(response.status_code)

    # when: one client claims a new address each time; another client arrives
    codes = [arrive("P1", "1.1.1.1, 203.0.113.9"), arrive("P2", "2.2.2.2, 203.0.113.9")]
    second_client = arrive("P3", "203.0.113.10")
    # then
    assert codes == [201, 429]
    assert second_client == 201
    assert Participant.objects.count() == 2


def test_arrivals_are_not_limited_when_the_limits_are_switched_off(
    make_study: Callable[..., Study], settings: Any
) -> None:
    # given: limits off (as the participant simulator's own server and the benchmark run)
    settings.RATELIMIT_ENABLE = False
    settings.HMIX_ARRIVAL_RATE_PER_IP = "1/h"
    study = make_study(n_stimuli=4, batch_size=2, participants_per_batch=30)
    api = APIClient()
    # when
    codes = [_arrive_by_api(api, study, f"P{i}").status_code for i in range(5)]
    # then
    assert codes == [201] * 5


@pytest.mark.parametrize(
    ("url_name", "after_login"), [("login", "/dashboard/"), ("admin:login", "/admin/")]
)
def test_fifty_wrong_passwords_lock_the_login_even_for_the_right_one(
    url_name: str, after_login: str
) -> None:
    # given: a researcher (password "pw"), attacked from one address
    user = UserFactory(username="alice")
    url = reverse(url_name)
    attacker = Client()
    # when: 50 wrong passwords, then the right one
    wrong = [
        attacker.post(url, {"username": "alice", "password": f"guess-{i}"}).status_code
        for i in range(50)
    ]
    right = attacker.post(url, {"username": "alice", "password": "pw", "next": after_login})
    # then: the first five were ordinary failures, every later attempt (the right password
    # included) is refused with 429, a message and Retry-After, and nobody is logged in
    assert wrong[:4] == [200] * 4
    assert set(wrong[5:]) == {429}
    assert right.status_code == 429
    assert "Too many failed logins" in right.content.decode()
    assert int(right["Retry-After"]) == 15 * 60
    assert "_auth_user_id" not in attacker.session
    assert attacker.get(after_login).status_code == 302
    # the owner, from another address, still gets in (the lockout is per username and address)
    owner = Client(REMOTE_ADDR="10.0.0.7")
    ok = owner.post(url, {"username": "alice", "password": "pw", "next": after_login})
    assert ok.status_code == 302
    assert owner.session["_auth_user_id"] == str(user.pk)


def test_the_login_opens_again_after_the_cool_off() -> None:
    # given: a lockout whose last failure is older than the cool-off
    UserFactory(username="alice")
    client = Client()
    for i in range(6):
        client.post(reverse("login"), {"username": "alice", "password": f"guess-{i}"})
    assert client.post(reverse("login"), {"username": "alice", "password": "pw"}).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    # when
    response = client.post(reverse("login"), {"username": "alice", "password": "pw"})
    # then
    assert response.status_code == 302
    assert "_auth_user_id" in client.session


def test_the_researcher_api_is_throttled_per_user(settings: Any) -> None:
    # given: three requests a minute per user, two researchers with tokens
    settings.HMIX_API_RATE_PER_USER = "3/min"
    heavy, light = APIClient(), APIClient()
    for client, name in ((heavy, "heavy"), (light, "light")):
        token = Token.objects.create(user=UserFactory(username=name))
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    url = reverse("api:study-list")
    # when
    codes = [heavy.get(url).status_code for _ in range(3)]
    refused = heavy.get(url)
    other = light.get(url)
    # then
    assert codes == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json()["message"].startswith("Request was throttled.")
    assert 0 < int(refused["Retry-After"]) <= 60
    assert other.status_code == 200
