"""The participant-facing view of a session, shared by the JSON API and the HTML pages.

It decides what a participant may see: never the stimulus key, λ or classes of a mixed image.
"""

from typing import Any

from django.urls import reverse

from elicitation import selectors
from elicitation.models import Participant, Stimulus, Trial


def stimulus_image_url(stimulus: Stimulus) -> str:
    return reverse("elicitation:stimulus-image", kwargs={"public_id": stimulus.public_id})


def trial_state(trial: Trial) -> dict[str, Any]:
    return {
        "id": trial.id,
        "position": trial.position,
        "kind": trial.kind,
        "image_url": stimulus_image_url(trial.stimulus),
        "display": trial.display,
    }


def session_state(*, participant: Participant) -> dict[str, Any]:
    study = participant.study
    stage = participant.stage
    trial = None
    next_image_url = None
    if stage == Participant.Stage.TRIALS:
        current = selectors.trial_get_next(participant=participant)
        if current is not None:
            trial = trial_state(current)
            following = selectors.trial_get_following(trial=current)
            if following is not None:
                next_image_url = stimulus_image_url(following.stimulus)
    progress = selectors.participant_progress(participant=participant)
    completion = None
    if stage == Participant.Stage.COMPLETED:
        completion = {
            "code": study.completion_code,
            "url": selectors.participant_completion_url(participant=participant),
        }
    return {
        "token": str(participant.token),
        "stage": stage,
        "study": {"slug": study.slug, "title": study.title, "trial_type": study.trial_type},
        "progress": {
            "answered": progress.answered,
            "total": progress.total,
            "percent": progress.percent,
        },
        "trial": trial,
        "next_image_url": next_image_url,
        "consent_html": study.consent_html,
        "instructions": study.instructions,
        # The marked answers stay on the server.
        "comprehension": [
            {"question": q["question"], "options": q["options"]} for q in study.comprehension
        ],
        "debrief_questions": study.debrief_questions,
        "completion": completion,
    }
