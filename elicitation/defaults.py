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
    return study_texts("categorical")


CONSENT_HTML = CATEGORICAL_CONSENT_HTML.replace(
    "estimate how 100 people would label it", "answer a short question about it"
)


def _page(title: str, html: str) -> dict[str, str]:
    return {"title": title, "html": html}


def _question(question: str, options: list[str], answer: int) -> dict[str, Any]:
    return {"question": question, "options": options, "answer": answer}


# Paraphrases of the published HILL MixE Suite and IRI survey instructions
# (docs/user-guide/interfaces.md).
_TEXTS: dict[str, dict[str, Any]] = {
    "categorical": {
        "consent_html": CATEGORICAL_CONSENT_HTML,
        "instructions": CATEGORICAL_INSTRUCTIONS,
        "comprehension": CATEGORICAL_COMPREHENSION,
    },
    "mixing_factor": {
        "instructions": [
            _page(
                "Blended images",
                "<p>Each image is a blend of two images of different "
                "categories, and we tell you which two. Some blends are mostly one image, "
                "others half and half.</p>",
            ),
            _page(
                "Your answer",
                "<p>Move the first slider to where you think the blend lies: "
                "fully left is 100% the first category, the middle 50/50, fully right 100% "
                "the second. Then set the second slider to how confident you are.</p><p>The "
                "sliders have no starting position: click or tap on each line, or with the "
                "keyboard type a number from 0 to 100 (the arrow keys then fine-tune it).</p>",
            ),
        ],
        "comprehension": [
            _question(
                "What does the first slider show?",
                [
                    "How much I like the image",
                    "How much of each category is in the blend",
                    "How bright the image is",
                ],
                1,
            ),
            _question(
                "Where do you put the first slider for an image that is 100% the first category?",
                ["Fully left", "In the middle", "Fully right"],
                0,
            ),
        ],
    },
    "construct_midpoint": {
        "instructions": [
            _page(
                "Find the 50/50 blend",
                "<p>You see one blend of two images at a time. Use "
                "the buttons (or the left and right arrow keys) to make it more like one "
                "category or the other.</p><p>Press Continue when 100 people would call the "
                "image a 50/50 mix of the two categories.</p>",
            ),
        ],
        "comprehension": [
            _question(
                "When do you press Continue?",
                [
                    "When the image is 100% one category",
                    "When people would see the image as a 50/50 mix",
                    "Straight away",
                ],
                1,
            ),
        ],
    },
    "select_midpoint": {
        "instructions": [
            _page(
                "Pick the 50/50 blend",
                "<p>You see eleven blends of the same two images, in "
                "a random order. Click the one that 100 people would call a 50/50 mix of the "
                "two categories, then press Next.</p>",
            ),
        ],
        "comprehension": [
            _question(
                "Which image do you pick?",
                ["The sharpest one", "The one people would call a 50/50 mix", "The first one"],
                1,
            ),
        ],
    },
    "iri_2afc": {
        "instructions": [
            _page(
                "Which is closer?",
                "<p>At the top is a query image. Below it are two "
                "images. Click the one that looks closer to the query image.</p><p>Some "
                "queries are easy checks of attention.</p>",
            ),
        ],
        "comprehension": [
            _question(
                "What do you choose?",
                [
                    "The image I like more",
                    "The image closer to the query image",
                    "Always the left image",
                ],
                1,
            ),
        ],
    },
    "iri_cluster": {
        "instructions": [
            _page(
                "Match the rows",
                "<p>Three images are shown as columns. For each image in "
                "the rows below, choose the column image it looks most similar to.</p>",
            ),
        ],
        "comprehension": [
            _question(
                "What do you choose for each row?",
                [
                    "A random column",
                    "The column image it looks most similar to",
                    "Always the first column",
                ],
                1,
            ),
        ],
    },
}


def study_texts(trial_type: str) -> dict[str, Any]:
    """Default consent, instructions, comprehension check and debrief for a trial type."""
    texts = _TEXTS[trial_type]
    return {
        "consent_html": texts.get("consent_html", CONSENT_HTML),
        "instructions": texts["instructions"],
        "comprehension": texts["comprehension"],
        "debrief_questions": CATEGORICAL_DEBRIEF,
    }


# Interface settings by trial type (Study.settings overrides any of them).
_SETTINGS_DEFAULTS: dict[str, dict[str, Any]] = {
    # IRI surveys: pages of 10 queries + 3 checks → about 0.3 catch trials per query; a
    # participant below 80% on the checks is flagged (docs/methods/iri-alignment.md#catch-trials).
    "iri_2afc": {"catch_rate": 0.3, "catch_threshold": 80.0},
    "iri_cluster": {"catch_rate": 0.5, "catch_threshold": 80.0},
}


def study_settings_defaults(trial_type: str) -> dict[str, Any]:
    return {"catch_rate": 0.0, "catch_threshold": 80.0, **_SETTINGS_DEFAULTS.get(trial_type, {})}
