"""Schemathesis against the live OpenAPI schema, in process (WSGI), with every check on: no
5xx, and every status, media type and body as the schema documents them.

The path parameters are the seeded world's (tests/api_world.py), so each operation reaches its
real code rather than a 404, and requests carry the owner's API token. Examples per operation
are bounded for CI (HMIX_FUZZ_EXAMPLES); bench/fuzz_api.py runs the same test with many more.
"""

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient

from tests.api_world import JOB_ID, STUDY_SLUG, TOKEN_A, World, seed_world

pytestmark = pytest.mark.django_db

FUZZ_EXAMPLES = int(os.environ.get("HMIX_FUZZ_EXAMPLES", "15"))
REPORT = os.environ.get("HMIX_FUZZ_REPORT", "")
OWNER_TOKEN = "world-owner-token".ljust(40, "0")

# What /api/schema/ serves, generated at collection (when no database may be used: serving it
# over WSGI would open a transaction, ATOMIC_REQUESTS); test_served_schema_is_the_one_fuzzed
# checks that the two agree. Requests go to the app in process.
schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.app = get_wsgi_application()
schema.config.update(
    parameters={"slug": STUDY_SLUG, "token": str(TOKEN_A), "job_id": str(JOB_ID)},
    headers={"Authorization": f"Token {OWNER_TOKEN}"},
)
schema.config.checks.update(included_check_names=["all"])
# Schema-valid input may still break a rule no JSON Schema states (a username with no account,
# a zip that is not a zip, answers p1 + p2 over 100): the API answers 400 naming the rule, so
# 400 joins the statuses this check accepts for valid input.
schema.config.checks.positive_data_acceptance.expected_statuses = [
    *schema.config.checks.positive_data_acceptance.expected_statuses,
    "400",
]


@pytest.fixture
def world() -> Iterator[World]:
    world = seed_world()
    assert world.tokens[world.owner.username] == OWNER_TOKEN
    # As Django's test client does: the requests run inside the test's transaction, which
    # closing "old" connections at the end of each request would cut.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield world
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    # The world is seeded once per operation; its examples share it, as a client's calls would.
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: Any, world: World) -> None:
    outcome = "failed"
    try:
        outcome = str(case.call_and_validate().status_code)
    finally:
        if REPORT:  # bench/fuzz_api.py counts the cases and their statuses
            with open(REPORT, "a") as report:
                report.write(f"{case.operation.label}\t{outcome}\n")


def test_served_schema_is_the_one_fuzzed(api_client: APIClient) -> None:
    # when
    res = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    # then
    assert res.status_code == 200
    assert res.json() == schema.raw_schema
