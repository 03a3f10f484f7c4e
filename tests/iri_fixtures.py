"""IRI stimuli drawn in the tests themselves (interfaces E and F), with no downloads.

The images are small numpy drawings: distinct patterns stand in for the target images, and
noisy blends of them stand in for the optimised IRIs. Builders return saved rows, so browser,
API and service tests can share them.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from elicitation import services, stimulus_services
from elicitation.defaults import study_texts
from elicitation.models import Participant, Stimulus, Study
from tests.factories import CLASSES

SIZE = 32
PATTERNS = ("disc", "stripes", "checks", "cross", "ring", "diagonal")
# Saturated, well separated colours (foreground, background), so every drawing looks different.
PALETTE = (
    ((220, 50, 47), (253, 246, 227)),
    ((38, 139, 210), (255, 236, 179)),
    ((133, 153, 0), (238, 232, 213)),
    ((108, 113, 196), (250, 250, 250)),
    ((203, 75, 22), (7, 54, 66)),
    ((42, 161, 152), (88, 20, 70)),
)
IRI_META = {"model": "resnet18", "layer": "layer4", "regime": "standard", "regulariser": "none"}
ROWS_PER_COLUMN = 2
N_COLUMNS = 3


def draw_pattern(index: int, *, size: int = SIZE) -> np.ndarray:
    """A size×size RGB drawing: pattern and colours chosen by `index` (distinct for 0..35)."""
    fg, bg = PALETTE[index % len(PALETTE)]
    pattern = PATTERNS[(index // len(PALETTE) + index) % len(PATTERNS)]
    y, x = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2
    r = np.hypot(x - c, y - c)
    masks = {
        "disc": r < size * 0.35,
        "stripes": (x // 4) % 2 == 0,
        "checks": ((x // 8) + (y // 8)) % 2 == 0,
        "cross": (np.abs(x - c) < size * 0.12) | (np.abs(y - c) < size * 0.12),
        "ring": (r > size * 0.2) & (r < size * 0.4),
        "diagonal": ((x + y) // 5) % 2 == 0,
    }
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = bg
    image[masks[pattern]] = fg
    return image


def noise_image(seed: int, *, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def blend(a: np.ndarray, b: np.ndarray, weight_a: float) -> np.ndarray:
    mixed = weight_a * a.astype(np.float64) + (1 - weight_a) * b.astype(np.float64)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def iri_study_create(
    *,
    owner: Any,
    trial_type: str,
    slug: str,
    settings: dict[str, Any] | None = None,
    **fields: Any,
) -> Study:
    """A draft study of trial type E or F with the default texts of its type and a completion
    code (a study cannot launch without one)."""
    return services.study_create(
        slug=slug,
        title="Which image is closer?",
        trial_type=trial_type,
        owner_id=owner.id,
        classes=CLASSES,
        settings=settings or {},
        **{**study_texts(trial_type), "completion_code": "IRI-DONE", **fields},
    )


def iri_stimuli_create(*, study: Study, n: int, seed: int = 0) -> list[Stimulus]:
    """Interface E stimuli: frames "query" (the IRI), "target" and "start", all index 0.

    Even stimuli start from noise, odd ones from another drawing (both occur in Nanda et al.).
    """
    stimuli = []
    for i in range(n):
        target = draw_pattern(2 * i + seed)
        from_noise = i % 2 == 0
        start = noise_image(seed * 1000 + i) if from_noise else draw_pattern(2 * i + 1 + seed)
        start_name = f"noise_{seed * 1000 + i}" if from_noise else f"drawing_{2 * i + 1 + seed}"
        stimulus = Stimulus(
            study=study,
            key=f"iri_{seed}_{i}",
            kind=Stimulus.Kind.IRI,
            meta={
                **IRI_META,
                "seed": seed * 1000 + i,
                "target": f"drawing_{2 * i + seed}",
                "start": start_name,
            },
        )
        stimulus.full_clean()
        stimulus.save()
        frames = {"query": blend(target, start, 0.6), "target": target, "start": start}
        for role, pixels in frames.items():
            stimulus_services.frame_save(
                stimulus=stimulus, role=role, index=0, pixels=pixels, meta={}
            )
        stimuli.append(stimulus)
    return stimuli


def iri_sets_create(*, study: Study, n: int, seed: int = 0) -> list[Stimulus]:
    """Interface F stimuli: 3 "column" targets and 6 "row" IRIs, rows 2k and 2k+1 of column k."""
    stimuli = []
    for i in range(n):
        stimulus = Stimulus(
            study=study,
            key=f"iri_set_{seed}_{i}",
            kind=Stimulus.Kind.IRI_SET,
            meta={**IRI_META, "seed": seed * 1000 + i},
        )
        stimulus.full_clean()
        stimulus.save()
        columns = [draw_pattern(N_COLUMNS * i + k + seed) for k in range(N_COLUMNS)]
        for k, pixels in enumerate(columns):
            stimulus_services.frame_save(
                stimulus=stimulus, role="column", index=k, pixels=pixels, meta={}
            )
        for row in range(N_COLUMNS * ROWS_PER_COLUMN):
            target = row // ROWS_PER_COLUMN
            pixels = blend(columns[target], noise_image(seed * 1000 + 10 * i + row), 0.7)
            stimulus_services.frame_save(
                stimulus=stimulus, role="row", index=row, pixels=pixels, meta={"target": target}
            )
        stimuli.append(stimulus)
    return stimuli


def iri_study_live(
    *,
    owner: Any,
    trial_type: str,
    slug: str,
    n_stimuli: int,
    settings: dict[str, Any] | None = None,
    batch_size: int | None = None,
    **fields: Any,
) -> Study:
    """A live E or F study with `n_stimuli` drawn stimuli, in one batch unless told otherwise."""
    study = iri_study_create(
        owner=owner, trial_type=trial_type, slug=slug, settings=settings, **fields
    )
    build = iri_stimuli_create if trial_type == Study.TrialType.IRI_2AFC else iri_sets_create
    stimuli: Sequence[Stimulus] = build(study=study, n=n_stimuli)
    services.batches_build(study=study, stimuli=stimuli, batch_size=batch_size or n_stimuli)
    services.study_set_status(study=study, status=Study.Status.LIVE)
    return study


def iri_participant_in_trials(*, owner: Any, trial_type: str, name: str) -> Participant:
    """A Prolific participant `name` at the first trial of a live two-stimulus E or F study
    (no catch trials), through the services."""
    from tests.conftest import advance_to_trials  # conftest is loaded first; avoid a cycle

    study = iri_study_live(
        owner=owner,
        trial_type=trial_type,
        slug=f"{name.lower()}-{trial_type.replace('_', '-')}",
        n_stimuli=2,
        settings={"catch_rate": 0.0},
    )
    participant, _ = services.participant_start(
        study=study, platform=Participant.Platform.PROLIFIC, external_id=name
    )
    return advance_to_trials(participant)
