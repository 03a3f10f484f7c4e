"""Static checks of the deployment files, since CI has no Docker to run them."""

import re
import runpy
from typing import Any

import pytest
import yaml
from gunicorn.config import Config

from hmix_site.env import BASE_DIR

APP_SERVICES = ("web", "worker", "beat")
GUNICORN_CONF = "gunicorn.conf.py"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    return data


def _env_reads() -> set[str]:
    files = [
        *sorted((BASE_DIR / "hmix_site" / "settings").glob("*.py")),
        BASE_DIR / "hmix_site" / "env.py",
    ]
    pattern = re.compile(r"\benv(?:\.\w+)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']")
    return {name for path in files for name in pattern.findall(path.read_text())}


def test_env_example_lists_every_variable_the_settings_read() -> None:
    # given
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (BASE_DIR / ".env.example").read_text(), re.M))
    # when
    read = _env_reads()
    # then
    assert read
    assert read - listed == set()


def test_compose_runs_every_service_with_a_healthcheck() -> None:
    # when
    services = _compose()["services"]
    # then
    assert set(services) == {"postgres", "redis", *APP_SERVICES}
    for name, service in services.items():
        assert service["healthcheck"]["test"], name


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_app_services_share_one_image_and_config_through_the_anchor(name: str) -> None:
    # given
    root = yaml.compose((BASE_DIR / "docker-compose.yml").read_text())
    assert isinstance(root, yaml.MappingNode)
    nodes = {key.value: value for key, value in root.value}
    anchor = nodes["x-app"]
    services = {key.value: value for key, value in nodes["services"].value}
    # when
    merged = [value for key, value in services[name].value if key.tag == "tag:yaml.org,2002:merge"]
    # then: `<<: *app` merges the very x-app node, not a copy
    assert merged == [anchor]
    service = _compose()["services"][name]
    assert service["build"] == "."
    assert service["image"] == "hmix:latest"
    assert service["env_file"] == ".env"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_app_services_wait_for_healthy_dependencies(name: str) -> None:
    # when
    depends_on = _compose()["services"][name]["depends_on"]
    # then
    assert depends_on
    assert {dep["condition"] for dep in depends_on.values()} == {"service_healthy"}


def test_compose_shares_the_media_volume_between_web_and_worker() -> None:
    # when
    services = _compose()["services"]
    # then
    for name in ("web", "worker"):
        assert "media:/app/media" in services[name]["volumes"]
    assert services["web"]["command"].startswith('sh -c "python manage.py migrate --noinput')


def test_compose_keeps_media_on_the_volume_until_a_bucket_is_set() -> None:
    # given
    example = (BASE_DIR / ".env.example").read_text()
    # when
    values = dict(re.findall(r"^(HMIX_S3_[A-Z_]+)=(.*)$", example, re.M))
    # then every S3 variable reaches web and worker through .env, the bucket left empty
    assert values == {
        "HMIX_S3_BUCKET": "",
        "HMIX_S3_ENDPOINT_URL": "",
        "HMIX_S3_REGION": "",
        "HMIX_S3_ACCESS_KEY_ID": "",
        "HMIX_S3_SECRET_ACCESS_KEY": "",
        "HMIX_S3_PREFIX": "",
        "HMIX_S3_ADDRESSING_STYLE": "",
    }
    assert _compose()["x-app"]["env_file"] == ".env"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    # when
    lines = (BASE_DIR / "Dockerfile").read_text().splitlines()
    # then
    assert [line for line in lines if line.startswith("FROM ")] == ["FROM python:3.11-slim"]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")


def test_the_image_records_the_version_it_was_built_from() -> None:
    # given
    lines = (BASE_DIR / "Dockerfile").read_text().splitlines()
    # then the build argument (docker compose build --build-arg HMIX_VERSION=...) reaches the
    # environment, where analysis.bundle.source_version reads it, and the image's label
    assert 'ARG HMIX_VERSION=""' in lines
    assert "ENV HMIX_VERSION=${HMIX_VERSION}" in lines
    assert '      org.opencontainers.image.version="${HMIX_VERSION}"' in lines


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image() -> None:
    # when
    ignored = set((BASE_DIR / ".dockerignore").read_text().split())
    # then
    assert {".env", ".venv", ".git", "db.sqlite3*", "media"} <= ignored


def _gunicorn_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> Config:
    """gunicorn.conf.py as Gunicorn itself loads it (its own parser and validators)."""
    for name in ("WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    values = runpy.run_path(str(BASE_DIR / GUNICORN_CONF))
    config = Config()
    for name, value in values.items():
        if not name.startswith("_") and not callable(value) and name != "os":
            config.set(name, value)
    return config


def test_gunicorn_config_sets_every_setting_on_purpose(monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    values = runpy.run_path(str(BASE_DIR / GUNICORN_CONF))
    chosen = {n for n, v in values.items() if not n.startswith("_") and not callable(v)} - {"os"}
    # when
    config = _gunicorn_config(monkeypatch)
    # then every name in the file is a Gunicorn setting (a typo would be silently ignored)
    assert chosen <= set(config.settings)
    assert {
        name: config.settings[name].get()
        for name in (
            "bind",
            "worker_class",
            "workers",
            "threads",
            "timeout",
            "graceful_timeout",
            "keepalive",
            "max_requests",
            "max_requests_jitter",
            "worker_tmp_dir",
            "accesslog",
        )
    } == {
        "bind": ["0.0.0.0:8000"],
        "worker_class": "gthread",
        "workers": 3,
        "threads": 4,
        "timeout": 30,
        "graceful_timeout": 30,
        "keepalive": 5,
        "max_requests": 1000,
        "max_requests_jitter": 100,
        "worker_tmp_dir": "/dev/shm",  # noqa: S108 - the value under test
        "accesslog": "-",
    }


def test_gunicorn_sizes_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # when
    config = _gunicorn_config(
        monkeypatch, WEB_CONCURRENCY="5", GUNICORN_THREADS="2", GUNICORN_TIMEOUT="45"
    )
    # then
    assert (config.workers, config.threads, config.timeout) == (5, 2, 45)


def test_web_and_the_image_start_gunicorn_with_the_config_file() -> None:
    # given
    web = _compose()["services"]["web"]
    dockerfile = (BASE_DIR / "Dockerfile").read_text().splitlines()
    # when
    cmd = [line for line in dockerfile if line.startswith("CMD ")]
    # then
    assert web["command"].endswith(f'exec gunicorn --config {GUNICORN_CONF} hmix_site.wsgi"')
    assert cmd == [f'CMD ["gunicorn", "--config", "{GUNICORN_CONF}", "hmix_site.wsgi"]']
    # Docker waits longer than gunicorn's graceful_timeout before it kills the container.
    assert int(web["stop_grace_period"].removesuffix("s")) > 30


def test_env_example_lists_the_gunicorn_sizes() -> None:
    # given
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (BASE_DIR / ".env.example").read_text(), re.M))
    read = set(re.findall(r'_int\("([A-Z_]+)"', (BASE_DIR / GUNICORN_CONF).read_text()))
    # then the main sizes are documented where a deployment sets them
    assert {"WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT"} <= read
    assert {"WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT"} <= listed
