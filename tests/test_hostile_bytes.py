"""Hostile bytes answer 400 naming the problem, never 500, and write nothing: NUL characters
(PostgreSQL refuses them in text) in query strings, forms, headers and JSON, and JSON nested
deeper than HMIX_JSON_MAX_DEPTH (Python's decoder would raise RecursionError)."""

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from elicitation import selectors, services
from elicitation.models import Participant, Response, Study
from hmix_site.common.parsers import json_depth, unstorable_text
from tests.conftest import advance_to_trials, categorical_answer, token_client

pytestmark = pytest.mark.django_db

DEEP = "[" * 5000 + "]" * 5000  # 10 KB


# --- the pure checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[[", "]]]", "{{"]', 1),  # brackets inside strings nest nothing
        ('["\\"[[[["]', 1),  # nor after an escaped quote
        (DEEP, 5000),
    ],
)
def test_json_depth_counts_only_structural_brackets(text: str, depth: int) -> None:
    assert json_depth(text) == depth


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"a": ["ok", "b\x00d"]}, "a[1]: text may not contain NUL"),
        ({"k\x00": 1}, "the body: a key may not contain NUL"),
        ("\ud800", "the body: text may not contain unpaired surrogates"),
        ({"a": {"b": "fine", "c": [1, 2.5, None, True]}}, None),
    ],
)
def test_unstorable_text_names_the_place(data: Any, problem: str | None) -> None:
    found = unstorable_text(data)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)


# --- participant entry links (query strings) --------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"PROLIFIC_PID": "abc\x00def", "STUDY_ID": "s", "SESSION_ID": "x"},
        {"PROLIFIC_PID": "abc", "STUDY_ID": "s\x00", "SESSION_ID": "x"},
        {"workerId": "W\x00", "hitId": "h", "assignmentId": "a"},
    ],
)
def test_nul_in_an_entry_link_is_refused(
    client: Client, make_study: Callable[..., Study], query: dict[str, str]
) -> None:
    # given
    study = make_study()
    # when
    res = client.get(reverse("elicitation:entry", kwargs={"slug": study.slug}), query)
    # then
    assert res.status_code == 400
    name = next(k for k, v in query.items() if "\x00" in v)
    assert res.content.decode() == f"Query parameter {name!r} may not contain NUL (%00)."
    assert Participant.objects.exists() is False


def test_nul_in_a_header_is_refused(client: Client, make_study: Callable[..., Study]) -> None:
    # given
    study = make_study()
    # when
    res = client.get(
        reverse("elicitation:entry", kwargs={"slug": study.slug}),
        {"PROLIFIC_PID": "abc"},
        HTTP_USER_AGENT="Mozilla\x00",
    )
    # then
    assert res.status_code == 400
    assert res.content.decode() == "Header User-Agent may not contain NUL characters."
    assert Participant.objects.exists() is False


def test_a_malformed_session_cookie_starts_a_new_session(
    client: Client, make_study: Callable[..., Study]
) -> None:
    # given a direct link and a cookie that is no session token
    study = make_study()
    client.cookies[f"hmix_session_{study.pk}"] = "not-a-uuid"
    url = reverse("elicitation:entry", kwargs={"slug": study.slug})
    # when the link is followed, then its consent form posted
    shown = client.get(url)
    stored_before_consent = Participant.objects.exists()
    res = client.post(url, {"adult": "on", "understood": "on", "agree": "on"})
    # then
    participant = Participant.objects.get()
    assert (shown.status_code, stored_before_consent) == (200, False)
    assert res.status_code == 302
    assert res["Location"] == reverse("elicitation:session", kwargs={"token": participant.token})


# --- researcher API filters -------------------------------------------------------------------


def test_nul_in_the_stimulus_filter_is_refused(
    make_study: Callable[..., Study], researcher: Any
) -> None:
    # given
    study = make_study()
    client = token_client(researcher)
    # when
    res = client.get(
        reverse("api:response-list", kwargs={"slug": study.slug}), {"stimulus": "a\x00b"}
    )
    # then
    assert res.status_code == 400
    assert res.json() == {
        "message": "Query parameter 'stimulus' may not contain NUL (%00).",
        "extra": {},
    }


# --- the debrief: HTML form and JSON ----------------------------------------------------------


def _at_debrief(study: Study) -> Participant:
    participant, _ = services.participant_start(
        study=study, platform=Participant.Platform.PROLIFIC, external_id="PID-debrief"
    )
    participant = advance_to_trials(participant)
    while participant.stage == Participant.Stage.TRIALS:
        trial = selectors.trial_get_next(participant=participant)
        assert trial is not None
        services.response_record(
            participant=participant,
            trial_id=trial.id,
            client_key=uuid.uuid4(),
            rt_ms=10,
            answer=categorical_answer(),
        )
        participant.refresh_from_db()
    assert participant.stage == Participant.Stage.DEBRIEF
    return participant


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_nul_in_a_debrief_form_answer_is_refused(
    client: Client, make_study: Callable[..., Study], encoding: str
) -> None:
    # given
    participant = _at_debrief(make_study(n_stimuli=2, batch_size=2))
    url = reverse("elicitation:debrief", kwargs={"token": participant.token})
    # when
    if encoding == "urlencoded":
        res = client.post(url, "a0=ok%00", content_type="application/x-www-form-urlencoded")
    else:
        res = client.post(url, {"a0": "ok\x00"})
    # then
    assert res.status_code == 400
    assert res.content.decode() == "Form field 'a0' may not contain NUL (%00)."
    participant.refresh_from_db()
    assert participant.stage == Participant.Stage.DEBRIEF
    assert participant.debrief == {}


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (
            {"0": "ok\u0000"},
            "JSON parse error - answers.0: text may not contain NUL (\\u0000) characters.",
        ),
        (
            {"0\u0000": "ok"},
            "JSON parse error - answers: a key may not contain NUL or unpaired surrogate "
            "characters.",
        ),
    ],
)
def test_nul_in_a_json_debrief_answer_is_refused(
    api_client: APIClient, make_study: Callable[..., Study], answers: dict[str, str], message: str
) -> None:
    # given
    participant = _at_debrief(make_study(n_stimuli=2, batch_size=2))
    # when
    res = api_client.post(
        reverse("participant-api:session-debrief", kwargs={"token": participant.token}),
        json.dumps({"answers": answers}),
        content_type="application/json",
    )
    # then
    assert res.status_code == 400
    assert res.json() == {"message": message, "extra": {}}
    participant.refresh_from_db()
    assert participant.stage == Participant.Stage.DEBRIEF
    assert participant.debrief == {}


def test_nul_in_a_json_answer_is_refused_and_nothing_is_stored(
    api_client: APIClient, participant_in_trials: Participant
) -> None:
    # given
    trial = selectors.trial_get_next(participant=participant_in_trials)
    assert trial is not None
    body = {
        "trial": trial.id,
        "client_key": str(uuid.uuid4()),
        "rt_ms": 900,
        "answer": categorical_answer(top_class="Cat\u0000"),
    }
    # when
    res = api_client.post(
        reverse("participant-api:session-responses", kwargs={"token": participant_in_trials.token}),
        json.dumps(body),
        content_type="application/json",
    )
    # then
    assert res.status_code == 400
    assert res.json()["message"] == (
        "JSON parse error - answer.top_class: text may not contain NUL (\\u0000) characters."
    )
    assert Response.objects.exists() is False


# --- deep JSON on every JSON endpoint ---------------------------------------------------------


def _json_operations() -> list[tuple[str, str]]:
    """(method, path template) of every API operation that takes a JSON body, from the schema."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method, path)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    )


def test_the_json_endpoints_are_the_ones_expected() -> None:
    # The deep-JSON test below covers each of these; a new one joins it by itself.
    operations = _json_operations()
    assert ("post", "/api/participant/sessions/") in operations
    assert ("post", "/api/participant/sessions/{token}/responses/") in operations
    assert ("patch", "/api/studies/{slug}/") in operations
    assert len(operations) >= 14


@pytest.mark.parametrize(("method", "path"), _json_operations())
def test_deep_json_is_refused_on_every_json_endpoint(
    make_study: Callable[..., Study], researcher: Any, method: str, path: str
) -> None:
    # given: real path values, so each view reaches the point where it reads the body
    study = make_study()
    participant, _ = services.participant_start(
        study=study, platform=Participant.Platform.PROLIFIC, external_id="PID-deep"
    )
    url = path.format(slug=study.slug, token=participant.token, job_id=uuid.uuid4())
    client = token_client(researcher)
    before = (Participant.objects.count(), Response.objects.count())
    # when
    res = getattr(client, method)(url, DEEP, content_type="application/json")
    # then
    assert res.status_code == 400, res.content
    limit = settings.HMIX_JSON_MAX_DEPTH
    assert res.json() == {
        "message": "JSON parse error - the body nests arrays and objects 5000 levels deep; "
        f"at most {limit} are accepted.",
        "extra": {},
    }
    assert (Participant.objects.count(), Response.objects.count()) == before


def test_json_within_the_depth_limit_is_parsed(
    api_client: APIClient, make_study: Callable[..., Study]
) -> None:
    # given: a body nested exactly as deep as allowed, in a field that takes any JSON
    study = make_study()
    nested: Any = "x"
    for _ in range(settings.HMIX_JSON_MAX_DEPTH - 1):
        nested = [nested]
    # when
    res = api_client.post(
        reverse("participant-api:session-start"),
        json.dumps({"study": study.slug, "platform": "prolific", "external_id": nested}),
        content_type="application/json",
    )
    # then: parsed, and refused by the field that expects text
    assert res.status_code == 400
    assert res.json()["message"] == "external_id: Expected a string."
    assert Participant.objects.exists() is False


def test_deep_json_is_refused_by_the_builder_preview(
    client: Client, make_study: Callable[..., Study], researcher: Any
) -> None:
    # given: the preview reads the participant's JSON answer itself, outside DRF
    study = make_study()
    client.force_login(researcher)
    # when
    res = client.post(
        reverse("builder-preview:responses", kwargs={"slug": study.slug}),
        DEEP,
        content_type="application/json",
    )
    # then
    assert res.status_code == 400
    assert res.json()["message"].startswith(
        "JSON parse error - the body nests arrays and objects 5000 levels deep"
    )
