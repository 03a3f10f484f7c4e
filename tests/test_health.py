import pytest
from django.db import DatabaseError
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_health_answers_ok_without_authentication(client: Client) -> None:
    # given: an anonymous client
    # when
    res = client.get(reverse("health"))
    # then
    assert res.status_code == 200
    assert res.content == b"ok"
    assert res["Content-Type"] == "text/plain"
    assert "no-cache" in res["Cache-Control"]


def test_health_refuses_writes(client: Client) -> None:
    # when
    res = client.post(reverse("health"))
    # then
    assert res.status_code == 405


def test_health_fails_when_the_database_does_not_answer(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    def broken_execute(*args: object, **kwargs: object) -> None:
        raise DatabaseError("connection refused")

    monkeypatch.setattr("django.db.backends.utils.CursorWrapper.execute", broken_execute)
    client.raise_request_exception = False
    # when
    res = client.get(reverse("health"))
    # then
    assert res.status_code == 500
