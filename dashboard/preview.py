"""The participant journey as a researcher's preview: the same stages, pages and trial displays,
with its progress kept in the researcher's Django session instead of Participant, Trial and
Response rows. Nothing here writes to the study's tables.

The preview state (JSON in the session) is {"stage", "trials": [{"stimulus_id", "display"}],
"answered", "failures", "last_key"}; `session_state` turns it into the dict the participant
templates read, shaped like elicitation.presenters.session_state.
"""

import random
import secrets
from types import SimpleNamespace
from typing import Any, Final

from elicitation import displays, payloads, presenters, selectors, services
from elicitation.models import Participant, Stimulus, Study, Trial

Stage = Participant.Stage

# A few trials show the interface and the stimuli; the whole batch would only repeat them.
PREVIEW_TRIALS: Final = 3


def session_key(study: Study) -> str:
    return f"hmix-preview-{study.pk}"


def preview_start(*, study: Study) -> dict[str, Any]:
    """A fresh preview at the consent page, with up to PREVIEW_TRIALS of the study's stimuli
    displayed as trials_build would display them to a new participant."""
    rng = random.Random(secrets.randbits(64))  # noqa: S311 (seeded from secrets)
    stimuli = list(selectors.stimulus_list(study=study)[:500])
    chosen = rng.sample(stimuli, k=min(PREVIEW_TRIALS, len(stimuli)))
    ttype = study.trial_type
    settings = selectors.study_settings(study=study)
    row_counts = (
        selectors.iri_row_counts(stimuli=chosen) if ttype == Study.TrialType.IRI_CLUSTER else {}
    )
    class_order = list(study.classes)
    rng.shuffle(class_order)

    def display_for(stimulus: Stimulus) -> dict[str, Any]:
        info = displays.StimulusInfo(
            kind=stimulus.kind,
            class1=stimulus.class1,
            class2=stimulus.class2,
            n_rows=row_counts.get(stimulus.id, 0),
        )
        if ttype == Study.TrialType.CATEGORICAL:
            return displays.categorical(class_order=class_order)
        if ttype == Study.TrialType.MIXING_FACTOR:
            return displays.mixing_factor(info)
        if ttype == Study.TrialType.CONSTRUCT_MIDPOINT:
            return displays.construct_midpoint(info, start_step=displays.start_step_for(0))
        if ttype == Study.TrialType.SELECT_MIDPOINT:
            return displays.select_midpoint(info, rng)
        if ttype == Study.TrialType.IRI_2AFC:
            return displays.iri_2afc(rng, catch=False)
        catch_rows = 1 if rng.random() < settings["catch_rate"] else 0
        return displays.iri_cluster(info, rng, catch_rows=catch_rows)

    return {
        "stage": Stage.CONSENT.value,
        "trials": [{"stimulus_id": s.id, "display": display_for(s)} for s in chosen],
        "answered": 0,
        "failures": 0,
        "last_key": None,
    }


def _stimulus(study: Study, stimulus_id: int) -> Stimulus | None:
    return selectors.stimulus_list(study=study).filter(id=stimulus_id).first()


def _trial(study: Study, planned: dict[str, Any], position: int) -> Trial | None:
    """An unsaved Trial, so that presenters.trial_view shows exactly what a participant sees."""
    stimulus = _stimulus(study, planned["stimulus_id"])
    if stimulus is None:  # removed since the preview started
        return None
    return Trial(
        participant=Participant(study=study),
        stimulus=stimulus,
        position=position,
        kind=Trial.Kind.MAIN,
        display=planned["display"],
    )


def current_trial(study: Study, state: dict[str, Any]) -> Trial | None:
    if state["stage"] != Stage.TRIALS or state["answered"] >= len(state["trials"]):
        return None
    return _trial(study, state["trials"][state["answered"]], state["answered"])


def trial_id(position: int) -> int:
    """The id the trial page and its answer carry: the position, counted from 1."""
    return position + 1


def participant(study: Study, state: dict[str, Any]) -> SimpleNamespace:
    """What the participant templates read of `participant`: its token (here the study's slug,
    which the preview URLs take) and stage."""
    return SimpleNamespace(
        token=study.slug, stage=state["stage"], comprehension_failures=state["failures"]
    )


def session_state(*, study: Study, state: dict[str, Any]) -> dict[str, Any]:
    """The preview in the shape of presenters.session_state (what the templates read)."""
    trial = None
    next_image_url = None
    current = current_trial(study, state)
    if current is not None:
        trial = {
            "id": trial_id(current.position),
            "position": current.position,
            "kind": "trial",
            "image_url": presenters.stimulus_image_url(current.stimulus),
            "view": presenters.trial_view(current),
        }
        following = state["answered"] + 1
        if following < len(state["trials"]):
            nxt = _stimulus(study, state["trials"][following]["stimulus_id"])
            next_image_url = presenters.stimulus_image_url(nxt) if nxt is not None else None
    total = len(state["trials"])
    answered = min(state["answered"], total)
    completion = None
    if state["stage"] == Stage.COMPLETED:
        # No redirect in a preview: the researcher stays here (the banner names the URL).
        completion = {"code": study.completion_code, "url": ""}
    return {
        "token": study.slug,
        "stage": state["stage"],
        "study": {"slug": study.slug, "title": study.title, "trial_type": study.trial_type},
        "progress": {
            "answered": answered,
            "total": total,
            "percent": round(100 * answered / total) if total else 0,
        },
        "trial": trial,
        "next_image_url": next_image_url,
        "consent_html": study.consent_html,
        "instructions": study.instructions,
        "comprehension": [
            {"question": q["question"], "options": q["options"]} for q in study.comprehension
        ],
        "debrief_questions": study.debrief_questions,
        "completion": completion,
    }


# --- stage changes (pure: they return the new state) ---------------------------------------


def consent(state: dict[str, Any], *, agreed: bool) -> dict[str, Any]:
    if state["stage"] != Stage.CONSENT:
        return state
    return {**state, "stage": Stage.INSTRUCTIONS.value if agreed else Stage.DECLINED.value}


def _begin_trials(state: dict[str, Any]) -> dict[str, Any]:
    stage = Stage.TRIALS if state["trials"] else Stage.DEBRIEF
    return {**state, "stage": stage.value, "answered": 0}


def instructions_done(study: Study, state: dict[str, Any]) -> dict[str, Any]:
    if state["stage"] != Stage.INSTRUCTIONS:
        return state
    if study.comprehension:
        return {**state, "stage": Stage.COMPREHENSION.value}
    return _begin_trials(state)


def comprehension(study: Study, state: dict[str, Any], answers: list[int]) -> dict[str, Any]:
    """Graded as services.comprehension_submit grades it, without storing the attempt."""
    if state["stage"] != Stage.COMPREHENSION:
        return state
    parsed = payloads.parse_comprehension(answers, study.comprehension)
    if all(a == q["answer"] for a, q in zip(parsed, study.comprehension, strict=True)):
        return _begin_trials(state)
    failures = state["failures"] + 1
    limit = study.max_comprehension_failures
    stage = Stage.EXCLUDED if limit is not None and failures >= limit else Stage.INSTRUCTIONS
    return {**state, "stage": stage.value, "failures": failures}


def parse_answer(study: Study, trial: Trial, answer: Any) -> dict[str, Any]:
    """The answer through the very parser services.response_record uses (same messages)."""
    parsed = services.answer_parse(study=study, trial=trial, answer=answer)
    return parsed.get("value", parsed)


def answered(state: dict[str, Any], *, client_key: str) -> dict[str, Any]:
    answered_now = state["answered"] + 1
    stage = Stage.DEBRIEF if answered_now >= len(state["trials"]) else Stage.TRIALS
    return {**state, "answered": answered_now, "stage": stage.value, "last_key": client_key}


def debrief_done(state: dict[str, Any]) -> dict[str, Any]:
    if state["stage"] != Stage.DEBRIEF:
        return state
    return {**state, "stage": Stage.COMPLETED.value}
