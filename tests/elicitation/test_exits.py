"""exits: how each platform's participant leaves (completion and screen-outs); no database."""

from typing import Any

import pytest

from elicitation import exits
from elicitation.models import Participant, Study

PROLIFIC_URL = "https://app.prolific.com/submissions/complete?cc={code}"


def _study(**fields: Any) -> Study:
    base: dict[str, Any] = {
        "completion_code": "DONE1",
        "prolific_completion_url": PROLIFIC_URL,
        "completion_url": "https://lab.example.org/thanks?c={code}",
        "full_code": "FULL1",
        "excluded_code": "EXCL1",
    }
    base.update(fields)
    return Study(**base)


def _participant(study: Study, platform: str, **fields: Any) -> Participant:
    return Participant(study=study, platform=platform, **fields)


@pytest.mark.parametrize(
    ("platform", "fields", "expected"),
    [
        (
            "prolific",
            {},
            {
                "code": "DONE1",
                "method": "redirect",
                "url": "https://app.prolific.com/submissions/complete?cc=DONE1",
                "fields": {},
            },
        ),
        (
            "direct",
            {},
            {
                "code": "DONE1",
                "method": "redirect",
                "url": "https://lab.example.org/thanks?c=DONE1",
                "fields": {},
            },
        ),
        (
            "mturk",
            {
                "platform_session_id": "ASSIGN-9",
                "turk_submit_to": "https://workersandbox.mturk.com",
            },
            {
                "code": "DONE1",
                "method": "post",
                "url": "https://workersandbox.mturk.com/mturk/externalSubmit",
                "fields": {"assignmentId": "ASSIGN-9", "completion_code": "DONE1"},
            },
        ),
        (
            "mturk",
            {"platform_session_id": "ASSIGN-9", "turk_submit_to": ""},
            {"code": "DONE1", "method": "show", "url": "", "fields": {}},
        ),
    ],
)
def test_each_platform_completes_its_own_way(
    platform: str, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    # given
    participant = _participant(_study(), platform, stage="completed", **fields)
    # when / then
    assert exits.completion_exit(participant) == expected


@pytest.mark.parametrize(
    ("stage", "study_fields", "platform", "expected"),
    [
        (
            "full",
            {},
            "prolific",
            {
                "reason": "full",
                "code": "FULL1",
                "method": "redirect",
                "url": "https://app.prolific.com/submissions/complete?cc=FULL1",
                "fields": {},
            },
        ),
        (
            "excluded",
            {},
            "prolific",
            {
                "reason": "excluded",
                "code": "EXCL1",
                "method": "redirect",
                "url": "https://app.prolific.com/submissions/complete?cc=EXCL1",
                "fields": {},
            },
        ),
        (
            "full",
            {"full_code": ""},
            "prolific",
            {"reason": "full", "code": "", "method": "return", "url": "", "fields": {}},
        ),
        (
            "excluded",
            {},
            "mturk",
            {"reason": "excluded", "code": "EXCL1", "method": "return", "url": "", "fields": {}},
        ),
        (
            "excluded",
            {"completion_url": ""},
            "direct",
            {"reason": "excluded", "code": "EXCL1", "method": "show", "url": "", "fields": {}},
        ),
    ],
)
def test_screen_outs_carry_the_study_code_for_the_reason(
    stage: str, study_fields: dict[str, Any], platform: str, expected: dict[str, Any]
) -> None:
    # given
    participant = _participant(_study(**study_fields), platform, stage=stage)
    # when / then
    assert exits.screen_out_exit(participant) == expected


@pytest.mark.parametrize("stage", ["completed", "declined", "expired", "trials"])
def test_other_stages_have_no_screen_out(stage: str) -> None:
    # when / then
    assert exits.screen_out_exit(_participant(_study(), "prolific", stage=stage)) is None


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("https://www.mturk.com", "https://www.mturk.com"),
        ("https://workersandbox.mturk.com/", "https://workersandbox.mturk.com"),
        ("https://evil.example.org", ""),
        ("http://www.mturk.com", ""),
        ("https://www.mturk.com.evil.org", ""),
        ("", ""),
    ],
)
def test_only_mturk_hosts_are_kept_as_the_submit_address(raw: str, kept: str) -> None:
    # when / then
    assert exits.turk_submit_to_clean(raw) == kept
