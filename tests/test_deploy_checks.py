"""Insecure defaults: production settings with the documented values pass Django's deployment
checks, refuse a public or weak secret key and DEBUG, and are what every entry point loads when
nobody names a settings module. Each case runs in a child process, as the server would."""

import os
import re
import secrets
import subprocess
import sys
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from elicitation.demo import DEMO_USERNAME
from elicitation.models import ImageSet, Study
from hmix_site.env import BASE_DIR

# Variables the child gets only from the case itself, never from the shell running the tests.
_OWN_PREFIXES = ("DJANGO_", "HMIX_", "DATABASE_", "CELERY_", "POSTGRES_", "GUNICORN_", "WEB_")


def _documented_env() -> dict[str, str]:
    """.env.example as docker compose reads it, with the one value it leaves to the operator
    (DJANGO_SECRET_KEY) generated as its comment says."""
    example = (BASE_DIR / ".env.example").read_text()
    values = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", example, re.M))
    values["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    return values


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_passes_under_production_settings_with_the_documented_values() -> None:
    # given
    env = _documented_env()
    assert env["DJANGO_SETTINGS_MODULE"] == "hmix_site.settings.production"
    # when
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env)
    # then
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("secret_key", "why"),
    [
        ("", "unset"),
        ("insecure-local-only-key-change-me", "the development default from base.py"),
        ("only-for-this-test", "shorter than 50 characters"),
        ("ab" * 30, "fewer than 5 distinct characters"),
        ("django-insecure-" + secrets.token_urlsafe(50), "Django's startproject placeholder"),
    ],
)
def test_production_settings_refuse_a_public_or_weak_secret_key(secret_key: str, why: str) -> None:
    # given
    env = {**_documented_env(), "DJANGO_SECRET_KEY": secret_key}
    # when
    result = _run(["manage.py", "check"], **env)
    # then
    assert result.returncode != 0, why
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY must be set to a random value" in result.stderr


def test_production_settings_refuse_debug() -> None:
    # given
    env = {**_documented_env(), "DJANGO_DEBUG": "true"}
    # when
    result = _run(["manage.py", "check"], **env)
    # then
    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_DEBUG is true under production settings" in result.stderr


_PRINT_SETTINGS = (
    "import os, django; from django.conf import settings; {load}; "
    "print(os.environ['DJANGO_SETTINGS_MODULE'], settings.DEBUG, "
    "settings.HMIX_DEMO_LOGIN_ALLOWED)"
)


@pytest.mark.parametrize(
    "load",
    [
        "import hmix_site.wsgi",
        "import hmix_site.asgi",
        "import hmix_site.celery; django.setup()",
        # manage.py's main() up to Django's own command dispatch.
        "import runpy, sys; sys.argv = ['manage.py', 'check']; "
        "runpy.run_path('manage.py', run_name='__main__')",
    ],
)
def test_entry_points_default_to_production_settings(load: str) -> None:
    # given no settings module and no secret key
    env = {"DJANGO_DEBUG": "true"}
    # when
    result = _run(["-c", _PRINT_SETTINGS.format(load=load)], **env)
    # then it fails closed: production settings, which refuse to run with DEBUG or without a key
    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY must be set" in result.stderr
    # and with a key (and the shared cache production also requires), production is what loads
    strong = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "HMIX_CACHE_URL": "redis://127.0.0.1:6379/0",
    }
    loaded = _run(["-c", _PRINT_SETTINGS.format(load=load)], **strong)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split()[-3:] == ["hmix_site.settings.production", "False", "False"]


@pytest.mark.django_db
def test_seed_demo_refuses_the_demo_login_outside_local_settings(
    settings: Any,
) -> None:
    # given the flag as production (and base) settings have it
    settings.HMIX_DEMO_LOGIN_ALLOWED = False
    # when
    with pytest.raises(CommandError) as exc:
        call_command("seed_demo")
    # then
    assert str(exc.value) == (
        "seed_demo creates a staff login with the password printed in the README, so it only "
        "runs under local settings (DJANGO_SETTINGS_MODULE=hmix_site.settings.local)."
    )
    assert get_user_model().objects.filter(username=DEMO_USERNAME).exists() is False
    assert Study.objects.exists() is False
    assert ImageSet.objects.exists() is False
