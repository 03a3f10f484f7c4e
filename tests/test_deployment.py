"""Static checks of the deployment files, since CI has no Docker to run them."""

import re
from typing import Any

import pytest
import yaml

from hmix_site.env import BASE_DIR

APP_SERVICES = ("web", "worker", "beat")


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


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image() -> None:
    # when
    ignored = set((BASE_DIR / ".dockerignore").read_text().split())
    # then
    assert {".env", ".venv", ".git", "db.sqlite3*", "media"} <= ignored
