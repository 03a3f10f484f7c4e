"""Where a session ends: the completion, or a screen-out (study full, participant excluded).

Each crowd platform is left its own way: Prolific through its completion URL with the code (a
screen-out code for the full and excluded cases), MTurk by posting the assignment to the
externalSubmit address MTurk gave on arrival, a direct link through the study's own URL. Pure
functions over the participant and its study; no database access.
"""

from typing import Any

from elicitation.models import Participant, Study
from hmix_site.common.validators import is_web_url

# MTurk's production and sandbox hosts: the only places an assignment is posted to. Anything
# else in turkSubmitTo is ignored (the page would otherwise post to whatever a link said).
MTURK_SUBMIT_HOSTS = ("https://www.mturk.com", "https://workersandbox.mturk.com")
# What MTurk sends as assignmentId while a worker previews a HIT they have not accepted.
MTURK_PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"

Method = str  # "redirect" (go to url), "post" (submit fields to url), "show" (code only), "return"


def turk_submit_to_clean(raw: str) -> str:
    """MTurk's turkSubmitTo if it is one of its two hosts, else ""."""
    value = raw.strip().rstrip("/")
    return value if value in MTURK_SUBMIT_HOSTS else ""


def _platform_url(study: Study, platform: str) -> str:
    if platform == Participant.Platform.PROLIFIC:
        return study.prolific_completion_url
    if platform == Participant.Platform.DIRECT:
        return study.completion_url
    return ""


def _leave(participant: Participant, code: str, *, screen_out: bool) -> dict[str, Any]:
    study = participant.study
    platform = participant.platform
    if platform == Participant.Platform.MTURK:
        if screen_out:
            # MTurk pays a submitted assignment: a worker who cannot do the task returns it.
            return {"code": code, "method": "return", "url": "", "fields": {}}
        assignment = participant.platform_session_id
        if participant.turk_submit_to and assignment and assignment != MTURK_PREVIEW_ASSIGNMENT:
            return {
                "code": code,
                "method": "post",
                "url": f"{participant.turk_submit_to}/mturk/externalSubmit",
                "fields": {"assignmentId": assignment, "completion_code": code},
            }
        return {"code": code, "method": "show", "url": "", "fields": {}}
    url = _platform_url(study, platform).replace("{code}", code) if code else ""
    # Validated on the way in, and checked again where it is followed (as study_entry_links):
    # anything but http(s) is dropped and the code shown instead.
    if url and is_web_url(url):
        return {"code": code, "method": "redirect", "url": url, "fields": {}}
    if screen_out and not code:
        return {"code": "", "method": "return", "url": "", "fields": {}}
    return {"code": code, "method": "show", "url": "", "fields": {}}


def completion_exit(participant: Participant) -> dict[str, Any]:
    """How a completed session hands back to its platform."""
    return _leave(participant, participant.study.completion_code, screen_out=False)


def screen_out_exit(participant: Participant) -> dict[str, Any] | None:
    """For a session ended because the study was full or the participant excluded: the reason,
    the study's code for it and how to leave; None for any other stage."""
    study = participant.study
    if participant.stage == Participant.Stage.FULL:
        return {"reason": "full", **_leave(participant, study.full_code, screen_out=True)}
    if participant.stage == Participant.Stage.EXCLUDED:
        return {"reason": "excluded", **_leave(participant, study.excluded_code, screen_out=True)}
    return None


def arrival_full_exit(study: Study, platform: str) -> dict[str, Any]:
    """The screen-out shown to a worker who arrives when every place is taken (no session)."""
    visitor = Participant(study=study, platform=platform, stage=Participant.Stage.FULL)
    exit_ = screen_out_exit(visitor)
    assert exit_ is not None
    return exit_
