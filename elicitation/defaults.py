"""Default participant texts for a new categorical (interface A) study, paraphrasing the
published CIFAR-10S instructions. Researchers edit them per study (admin or API).
"""

from typing import Any

CATEGORICAL_CONSENT_HTML = """
<p>You are invited to take part in a research study on how people perceive images. You will
see a series of small images and, for each, estimate how 100 people would label it.</p>
<p>Taking part is voluntary; you can stop at any time by closing this tab. We record your
answers and response times under a pseudonymous id, never your name. The data are used for
research and may be published in anonymised form.</p>
"""

CATEGORICAL_INSTRUCTIONS: list[dict[str, str]] = [
    {
        "title": "Your task",
        "html": "<p>For each image, imagine that 100 crowdworkers were asked to label it with "
        "one category. You estimate how their answers would be spread.</p>",
    },
    {
        "title": "What to enter",
        "html": "<ol><li>The category most of them would choose, and the share (0–100%) "
        "choosing it.</li><li>A second category and its share, or “No alternative”.</li>"
        "<li>Every category that nobody would choose.</li></ol>",
    },
    {
        "title": "Take your time",
        "html": "<p>Some images are ambiguous or blended. There are no trick questions: "
        "give your honest estimate.</p>",
    },
]

CATEGORICAL_COMPREHENSION: list[dict[str, Any]] = [
    {
        "question": "What do you estimate for each image?",
        "options": [
            "Only the single correct category",
            "The likely categories and the share of 100 workers choosing each",
            "How much I like the image",
        ],
        "answer": 1,
    },
    {
        "question": "Whose labels do you imagine?",
        "options": ["My own only", "100 crowdworkers'", "A computer's"],
        "answer": 1,
    },
]

CATEGORICAL_DEBRIEF = ["Anything you would like to tell us about the task? (optional)"]


def categorical_study_texts() -> dict[str, Any]:
    return {
        "consent_html": CATEGORICAL_CONSENT_HTML,
        "instructions": CATEGORICAL_INSTRUCTIONS,
        "comprehension": CATEGORICAL_COMPREHENSION,
        "debrief_questions": CATEGORICAL_DEBRIEF,
    }


# Interface settings by trial type (Study.settings overrides any of them).
_SETTINGS_DEFAULTS: dict[str, dict[str, Any]] = {
    # IRI surveys: pages of 10 queries + 3 checks → about 0.3 catch trials per query; a
    # participant below 80% on the checks is flagged (analysis.md).
    "iri_2afc": {"catch_rate": 0.3, "catch_threshold": 80.0},
    "iri_cluster": {"catch_rate": 0.5, "catch_threshold": 80.0},
}


def study_settings_defaults(trial_type: str) -> dict[str, Any]:
    return {"catch_rate": 0.0, "catch_threshold": 80.0, **_SETTINGS_DEFAULTS.get(trial_type, {})}
