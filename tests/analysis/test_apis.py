import io
import json
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from analysis import services
from elicitation import services as elicitation_services
from elicitation.models import Participant, Study
from tests.conftest import answer_all_trials, categorical_answer, start_in_trials, token_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def study_with_data(make_study: Callable[..., Study]) -> Study:
    study = make_study(n_stimuli=2, batch_size=2, repeats=0)
    for pid in ("a", "b"):
        answer_all_trials(study, pid, lambda _trial: categorical_answer(), rt_ms=5)
    services.study_aggregate(study=study)
    return study


ENDPOINTS = [
    "api:study-detail",
    "api:response-list",
    "api:soft-label-list",
    "api:analysis-result-list",
    "api:export",
]


@pytest.mark.parametrize("name", ENDPOINTS)
def test_anonymous_users_get_401(study_with_data: Study, name: str) -> None:
    # when
    res = APIClient().get(
        reverse(name, kwargs={"slug": study_with_data.slug}), {"what": "responses", "format": "csv"}
    )
    # then
    assert res.status_code == 401
    assert res.json()["message"] == "Authentication credentials were not provided."


@pytest.mark.parametrize("name", ENDPOINTS)
def test_a_participant_session_token_is_not_a_researcher_credential(
    study_with_data: Study, name: str
) -> None:
    # given a participant of the study using their session token as an API token
    participant = Participant.objects.filter(study=study_with_data).first()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {participant.token}")
    # when
    res = client.get(
        reverse(name, kwargs={"slug": study_with_data.slug}), {"what": "responses", "format": "csv"}
    )
    # then
    assert res.status_code == 401
    assert res.json()["message"] == "Invalid token."


@pytest.mark.parametrize("name", ENDPOINTS)
def test_researchers_of_other_studies_get_403(study_with_data: Study, name: str) -> None:
    # given
    stranger = UserFactory(username="stranger")
    # when
    res = token_client(stranger).get(
        reverse(name, kwargs={"slug": study_with_data.slug}), {"what": "responses", "format": "csv"}
    )
    # then
    assert res.status_code == 403
    assert res.json()["message"] == "You are not a researcher of this study."


def test_study_list_shows_only_own_and_shared_studies(
    study_with_data: Study, make_study: Callable[..., Study]
) -> None:
    # given a collaborator on one study
    collaborator = UserFactory(username="collab")
    study_with_data.researchers.add(collaborator)
    # when
    owner_slugs = [
        s["slug"] for s in token_client(study_with_data.owner).get(reverse("api:study-list")).json()
    ]
    collab_slugs = [
        s["slug"] for s in token_client(collaborator).get(reverse("api:study-list")).json()
    ]
    stranger_slugs = (
        token_client(UserFactory(username="nobody")).get(reverse("api:study-list")).json()
    )
    # then
    assert owner_slugs == [study_with_data.slug]
    assert collab_slugs == [study_with_data.slug]
    assert stranger_slugs == []


def test_responses_are_cursor_paginated_and_filterable(study_with_data: Study) -> None:
    # given
    client = token_client(study_with_data.owner)
    url = reverse("api:response-list", kwargs={"slug": study_with_data.slug})
    # when
    page1 = client.get(url, {"page_size": 3}).json()
    page2 = client.get(page1["next"]).json()
    one = Participant.objects.get(study=study_with_data, external_id="a")
    filtered = client.get(url, {"participant": one.pseudonym}).json()
    stimulus_key = study_with_data.stimuli.first().key
    by_stimulus = client.get(url, {"stimulus": stimulus_key}).json()
    # then
    assert len(page1["results"]) == 3
    assert len(page2["results"]) == 1
    assert page2["next"] is None
    assert {r["participant"] for r in filtered["results"]} == {one.pseudonym}
    assert {r["external_id"] for r in filtered["results"]} == {None}
    assert len(filtered["results"]) == 2
    assert {r["stimulus"] for r in by_stimulus["results"]} == {stimulus_key}
    first = page1["results"][0]
    assert (first["top_class"], first["p1"], first["second_class"], first["p2"]) == (
        "Cat",
        60.0,
        "Dog",
        20.0,
    )
    assert first["impossible"] == ["Airplane", "Ship"]


def test_bad_participant_filter_is_400(study_with_data: Study) -> None:
    # when
    res = token_client(study_with_data.owner).get(
        reverse("api:response-list", kwargs={"slug": study_with_data.slug}), {"participant": "nope"}
    )
    # then
    assert res.status_code == 400
    assert res.json()["message"] == "participant must be a pseudonym: 16 hex digits."


def test_soft_labels_list_under_default_and_named_methods(study_with_data: Study) -> None:
    # given
    client = token_client(study_with_data.owner)
    url = reverse("api:soft-label-list", kwargs={"slug": study_with_data.slug})
    # when
    default = client.get(url).json()
    unknown = client.get(url, {"method": "magic"})
    # then
    assert default["classes"] == study_with_data.classes
    assert len(default["results"]) == 2
    assert default["results"][0]["n_annotations"] == 2
    assert default["results"][0]["method"] == "clean-top2-clamp"
    assert unknown.status_code == 400
    assert "magic" in unknown.json()["message"]


def test_export_over_the_api_matches_the_command(study_with_data: Study, tmp_path: Any) -> None:
    # given
    from django.core.management import call_command

    out = tmp_path / "labels.json"
    call_command("export", study=study_with_data.slug, what="soft-labels", format="json", out=out)
    # when
    res = token_client(study_with_data.owner).get(
        reverse("api:export", kwargs={"slug": study_with_data.slug}),
        {"what": "soft-labels", "format": "json"},
    )
    # then
    body = b"".join(res.streaming_content)
    assert res.status_code == 200
    assert body == out.read_bytes()
    data = json.loads(body)
    assert data["classes"] == study_with_data.classes
    assert data["method"] == {
        "name": "clean-top2-clamp",
        "gamma": 0.1,
        "smoothing": 0.0,
        "include_repeats": True,
    }
    assert len(data["labels"]) == 2
    for label in data["labels"].values():
        assert set(label) == {"probs", "n_annotations", "n_annotators"}
        assert label["n_annotators"] == 2


def test_export_with_an_unknown_format_is_400(study_with_data: Study) -> None:
    # when
    res = token_client(study_with_data.owner).get(
        reverse("api:export", kwargs={"slug": study_with_data.slug}),
        {"what": "soft-labels", "format": "xlsx"},
    )
    # then
    assert res.status_code == 400
    assert (
        res.json()["message"] == "format: Unknown format 'xlsx'; expected one of "
        "['csv', 'json', 'jsonl', 'npy', 'npy-index']."
    )


def test_npy_export_has_one_row_per_annotation(study_with_data: Study) -> None:
    # when
    client = token_client(study_with_data.owner)
    url = reverse("api:export", kwargs={"slug": study_with_data.slug})
    npy = b"".join(
        client.get(url, {"what": "annotation-soft-labels", "format": "npy"}).streaming_content
    )
    index = b"".join(
        client.get(url, {"what": "annotation-soft-labels", "format": "npy-index"}).streaming_content
    ).decode()
    # then
    array = np.load(io.BytesIO(npy))
    assert array.shape == (4, 10)
    np.testing.assert_allclose(array.sum(axis=1), 1.0)
    assert len(index.strip().splitlines()) == 1 + 4


def test_openapi_schema_documents_both_apis(api_client: APIClient) -> None:
    # when
    res = api_client.get(reverse("schema"))
    # then
    text = res.content.decode()
    assert res.status_code == 200
    assert "/api/participant/sessions/{token}/responses/:" in text
    assert "/api/studies/{slug}/soft-labels/:" in text
    assert "/api/studies/{slug}/export/:" in text


def test_openapi_schema_generates_without_warnings() -> None:
    # when / then: drf-spectacular raises on any warning with --fail-on-warn
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", stdout=io.StringIO())


def test_api_docs_page_serves_swagger_ui_from_this_site(api_client: APIClient) -> None:
    # when
    res = api_client.get(reverse("api-docs"))
    # then: no CDN, so the docs work on closed networks too
    html = res.content.decode()
    assert res.status_code == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn.jsdelivr.net" not in html


def test_analysis_results_are_listed_by_kind(make_study: Callable[..., Study]) -> None:
    # given a mixing-factor study with one answer, analysed
    study = make_study(
        n_stimuli=1, batch_size=1, repeats=0, trial_type=Study.TrialType.MIXING_FACTOR
    )
    p = start_in_trials(study, "m")
    trial = p.trials.get()
    elicitation_services.response_record(
        participant=p,
        trial_id=trial.id,
        client_key=uuid.uuid4(),
        rt_ms=5,
        answer={"mixing": 20, "confidence": 70, "moved_mixing": True, "moved_confidence": True},
    )
    services.study_analysis_recompute(study=study)
    url = reverse("api:analysis-result-list", kwargs={"slug": study.slug})
    client = token_client(study.owner)
    # when
    levels = client.get(url, {"kind": "mixing-lambda"}).json()["results"]
    bad = client.get(url, {"kind": "nonsense"})
    # then
    assert [(r["key"], r["params"], r["n"]) for r in levels] == [
        ("0.25", {"include_repeats": True}, 1),
        ("0.25", {"include_repeats": False}, 1),
    ]
    assert levels[0]["result"]["mean_lam_hat"] == pytest.approx(0.8)
    assert bad.status_code == 400
    assert bad.json()["message"].startswith("kind: Unknown kind 'nonsense'")


def test_npy_and_its_index_agree_when_answers_arrive_between_the_requests(
    study_with_data: Study,
) -> None:
    # given the .npy of the per-annotation labels, downloaded first
    client = token_client(study_with_data.owner)
    url = reverse("api:export", kwargs={"slug": study_with_data.slug})
    npy = client.get(url, {"what": "annotation-soft-labels", "format": "npy"})
    array = np.load(io.BytesIO(b"".join(npy.streaming_content)))
    # when another participant answers before the index is downloaded
    late = start_in_trials(study_with_data, "late")
    trial = late.trials.order_by("position").first()
    elicitation_services.response_record(
        participant=late,
        trial_id=trial.id,
        client_key=uuid.uuid4(),
        rt_ms=5,
        answer=categorical_answer(),
    )
    bounded = b"".join(
        client.get(
            url,
            {"what": "annotation-soft-labels", "format": "npy-index", "until": npy["X-HMix-Until"]},
        ).streaming_content
    )
    unbounded = b"".join(
        client.get(url, {"what": "annotation-soft-labels", "format": "npy-index"}).streaming_content
    )
    # then the bounded index lists exactly the array's rows; the unbounded one has the new answer
    assert array.shape == (4, 10)
    assert len(bounded.decode().strip().splitlines()) == 1 + 4
    assert len(unbounded.decode().strip().splitlines()) == 1 + 5


def test_until_must_be_a_whole_number(study_with_data: Study) -> None:
    # when
    res = token_client(study_with_data.owner).get(
        reverse("api:export", kwargs={"slug": study_with_data.slug}),
        {"what": "soft-labels", "format": "npy", "until": "soon"},
    )
    # then
    assert res.status_code == 400
    assert res.json()["message"] == "until: A valid integer is required."
