"""The OpenAPI schema tells the truth: paginated lists as pages, exports with their media
types, the error statuses each operation answers, and enum query parameters that refuse an
empty or unknown value (the answers are checked against the schema by tests/test_api_fuzz.py)."""

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from elicitation import selectors
from elicitation.models import Response
from tests.api_world import World, seed_world
from tests.conftest import categorical_answer, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def world() -> World:
    return seed_world()


@pytest.mark.parametrize(
    ("path", "page"),
    [
        ("/api/studies/{slug}/participants/", "PaginatedParticipantOutputList"),
        ("/api/studies/{slug}/responses/", "PaginatedResponseListOutputList"),
        ("/api/studies/{slug}/soft-labels/", "PaginatedSoftLabelListOutputList"),
        ("/api/studies/{slug}/analysis/", "PaginatedAnalysisResultOutputList"),
        ("/api/studies/{slug}/withdrawals/", "PaginatedWithdrawalOutputList"),
    ],
)
def test_cursor_paginated_lists_are_documented_as_pages(
    openapi: dict[str, Any], path: str, page: str
) -> None:
    operation = openapi["paths"][path]["get"]
    # then: the body is a page, and the page's parameters are listed
    body = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert body == {"$ref": f"#/components/schemas/{page}"}
    assert {"next", "previous", "results"} <= set(
        openapi["components"]["schemas"][page]["properties"]
    )
    assert {"cursor", "page_size"} <= {p["name"] for p in operation["parameters"]}


def test_exports_are_documented_with_their_media_types(openapi: dict[str, Any]) -> None:
    export = openapi["paths"]["/api/studies/{slug}/export/"]["get"]["responses"]["200"]
    download = openapi["paths"]["/api/jobs/{job_id}/download/"]["get"]["responses"]["200"]
    assert set(export["content"]) == {
        "text/csv",
        "application/json",
        "application/x-ndjson",
        "application/octet-stream",
    }
    assert set(download["content"]) == set(export["content"]) | {"application/zip"}


# Operations that are not under a study's path but name a study in their body, and answer 404
# when it is not one the caller may see (as a study path would).
BODY_NAMES_A_STUDY = {"/api/participant/sessions/", "/api/iris/generate/"}


def test_every_operation_documents_its_error_statuses(openapi: dict[str, Any]) -> None:
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            statuses = set(operation["responses"])
            secured = operation.get("security") != [{}]
            assert "400" in statuses, (method, path)
            assert ("401" in statuses) == secured, (method, path)
            assert ("404" in statuses) == ("{" in path or path in BODY_NAMES_A_STUDY), (
                method,
                path,
            )
            if method in ("post", "patch"):
                assert "409" in statuses, (method, path)
            error = operation["responses"]["400"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("participants/", "stage=", "stage: Unknown stage ''"),
        ("participants/", "stage=lost", "stage: Unknown stage 'lost'"),
        ("analysis/", "kind=", "kind: Unknown kind ''"),
        ("soft-labels/", "method=", "method: Unknown construction ''"),
        ("soft-labels/", "exclude_repeats=maybe", "exclude_repeats: Must be a valid boolean."),
        ("soft-labels/", "smoothing=1", "smoothing: Must be less than 1."),
        ("responses/", "stimulus=", "stimulus: This field may not be blank."),
        ("responses/", "page_size=0", "page_size: Ensure this value is greater than"),
        ("responses/", "page_size=1001", "page_size: Ensure this value is less than"),
        ("export/", "what=&format=csv", "what: Unknown export ''"),
        ("export/", "what=responses&format=", "format: Unknown format ''"),
    ],
)
def test_query_parameters_refuse_empty_and_unknown_values(
    world: World, path: str, query: str, message: str
) -> None:
    # when
    res = token_client(world.owner).get(f"/api/studies/{world.study.slug}/{path}?{query}")
    # then
    assert res.status_code == 400
    assert res.json()["message"].startswith(message)


def test_an_unknown_api_path_answers_in_the_api_error_shape(world: World) -> None:
    # when
    res = token_client(world.owner).get("/api/no-such-thing/")
    # then
    assert res.status_code == 404
    assert res.json() == {"message": "No such endpoint.", "extra": {}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"what": "responses", "format": "csv", "exclude_repeats": 0}, "exclude_repeats"),
        ({"what": 1, "format": "csv"}, "what"),
        ({"what": "responses", "format": "csv", "gamma": False}, "gamma"),
    ],
)
def test_json_values_of_another_type_are_refused(
    world: World, body: dict[str, Any], message: str
) -> None:
    # when
    res = token_client(world.owner).post(
        f"/api/studies/{world.study.slug}/export-jobs/", body, format="json"
    )
    # then: no coercion across JSON types, and no job
    assert res.status_code == 400
    assert res.json()["message"].startswith(f"{message}: Expected")
    assert world.study.jobs.count() == 1  # the seeded one


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("", {"study": "world-study", "platform": "prolific", "external_id": 5}, "external_id"),
        ("aaaaaaaa-0000-4000-8000-00000000000a/consent/", {"adult": 1}, "adult"),
        ("aaaaaaaa-0000-4000-8000-00000000000a/comprehension/", {"answers": ["1"]}, "answers"),
    ],
)
def test_participant_json_values_of_another_type_are_refused(
    world: World, path: str, body: dict[str, Any], message: str
) -> None:
    # given
    before = world.study.participants.count()
    # when
    res = APIClient().post(f"/api/participant/sessions/{path}", body, format="json")
    # then
    assert res.status_code == 400
    assert res.json()["message"].startswith(f"{message}: ")
    assert "Expected" in res.json()["message"]
    assert world.study.participants.count() == before


def test_a_whole_number_written_as_a_float_is_an_integer(world: World) -> None:
    # given A at a trial
    trial = selectors.trial_get_next(participant=world.participant_a)
    assert trial is not None
    body = {
        "trial": trial.id,
        "client_key": "0b6c2f7e-3a51-4c1e-9b1a-7a1f1e2d3c4b",
        "rt_ms": 8450.0,
        "answer": categorical_answer(),
    }
    # when
    res = APIClient().post(
        f"/api/participant/sessions/{world.participant_a.token}/responses/", body, format="json"
    )
    # then
    assert res.status_code == 201
    assert Response.objects.get(client_key=body["client_key"]).rt_ms == 8450
