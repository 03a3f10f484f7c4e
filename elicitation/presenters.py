"""The participant-facing view of a session, shared by the JSON API and the HTML pages.

It decides what a participant may see: never the stimulus key, λ or classes of a mixed image.
"""

from typing import Any

from django.urls import reverse

from elicitation import exits, quality_flags, selectors
from elicitation.models import Participant, Stimulus, StimulusImage, Study, Trial
from hmix_site.common.html import clean_html


def stimulus_image_url(stimulus: Stimulus) -> str | None:
    if not stimulus.image:
        return None
    return reverse("elicitation:stimulus-image", kwargs={"public_id": stimulus.public_id})


def frame_url(frame: StimulusImage) -> str:
    return reverse("elicitation:frame-image", kwargs={"public_id": frame.public_id})


def trial_view(trial: Trial) -> dict[str, Any]:
    """What the browser needs to show the trial, and nothing that gives the answer away
    (no stimulus key, no λ of an option, no hint of which option is the target or a catch)."""
    d = trial.display
    ttype = trial.participant.study.trial_type
    if ttype == Study.TrialType.CATEGORICAL:
        return {"class_order": d["class_order"]}
    if ttype == Study.TrialType.MIXING_FACTOR:
        return {"class1": d["class1"], "class2": d["class2"]}
    frames = selectors.stimulus_frames(stimulus=trial.stimulus)
    if ttype == Study.TrialType.CONSTRUCT_MIDPOINT:
        return {
            "class1": d["class1"],
            "class2": d["class2"],
            "start_step": d["start_step"],
            "allow_no_steps": trial.participant.study.allow_no_steps,
            "step_urls": [frame_url(frames[("step", i)]) for i in range(11)],
        }
    if ttype == Study.TrialType.SELECT_MIDPOINT:
        return {
            "class1": d["class1"],
            "class2": d["class2"],
            "option_urls": [frame_url(frames[("step", step)]) for step in d["order"]],
        }
    if ttype == Study.TrialType.IRI_2AFC:
        query = frames[(d["query"], 0)] if d["query"] != "iri" else frames[("query", 0)]
        return {
            "query_url": frame_url(query),
            "left_url": frame_url(frames[(d["placement"][0], 0)]),
            "right_url": frame_url(frames[(d["placement"][1], 0)]),
        }
    return {
        "column_urls": [frame_url(frames[("column", c)]) for c in d["columns"]],
        "row_urls": [
            frame_url(
                frames[("column", r["column"])]
                if r["kind"] == "catch"
                else frames[("row", r["index"])]
            )
            for r in d["rows"]
        ],
    }


def trial_state(trial: Trial) -> dict[str, Any]:
    return {
        "id": trial.id,
        "position": trial.position,
        "kind": "catch" if trial.kind == Trial.Kind.CATCH else "trial",
        "image_url": stimulus_image_url(trial.stimulus),
        "view": trial_view(trial),
    }


def session_state(*, participant: Participant) -> dict[str, Any]:
    study = participant.study
    stage = participant.stage
    trial = None
    next_image_url = None
    if stage == Participant.Stage.TRIALS:
        ahead = selectors.trials_ahead(participant=participant)
        progress = selectors.Progress(answered=ahead.answered, total=ahead.total)
        if ahead.current is not None:
            ahead.current.participant = participant  # trial_view reads the study through it
            trial = trial_state(ahead.current)
            if ahead.following is not None:
                next_image_url = stimulus_image_url(ahead.following.stimulus)
    else:
        progress = selectors.participant_progress(participant=participant)
    completion = (
        exits.completion_exit(participant) if stage == Participant.Stage.COMPLETED else None
    )
    orders = (
        comprehension_orders(participant)
        if stage == Participant.Stage.COMPREHENSION
        else [list(range(len(q["options"]))) for q in study.comprehension]
    )
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
        # Researcher-written HTML, cleaned as on the pages: API clients may insert it as is.
        "consent_html": clean_html(study.consent_html),
        "instructions": [
            {**page, "html": clean_html(page.get("html", ""))} for page in study.instructions
        ],
        # The marked answers stay on the server. Answers are option numbers into "options";
        # "option_order" is the order to show them in on this attempt.
        "comprehension": [
            {"question": q["question"], "options": q["options"], "option_order": order}
            for q, order in zip(study.comprehension, orders, strict=True)
        ],
        "debrief_questions": study.debrief_questions,
        "completion": completion,
        "screen_out": exits.screen_out_exit(participant),
    }


def comprehension_orders(participant: Participant) -> list[list[int]]:
    """The option order of each question on the participant's next attempt (a failed attempt
    sends them back to the instructions, so the next attempt is failures + 1)."""
    return quality_flags.comprehension_option_orders(
        token=str(participant.token),
        attempt=participant.comprehension_failures + 1,
        questions=participant.study.comprehension,
    )
