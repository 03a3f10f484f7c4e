"""The demo's IRI studies (interfaces E and F), seeded by `seed_demo` (elicitation.demo).

IRIs of the demo shapes from H-Mix's own standard and ℓ2-robust small CNNs: generated at seed
time from the committed models when PyTorch is installed (a shorter run than the method's
default, iri.demo.SEED_TIME),
otherwise imported from the small committed set (iri/demo_set/, `make iri-demo-set`). Both
models are also stored as the demo researcher's, so the builder can generate more from them.
"""

import hashlib
from typing import Final

from django.conf import settings
from django.core.files.base import ContentFile

from elicitation import imaging, services, stimulus_services
from elicitation.defaults import study_texts
from elicitation.models import Study
from iri import demo_files
from iri.models import Network

IRI_DEMOS: Final = (
    ("demo-iri-2afc", "Demo: which image is closer to the query?", Study.TrialType.IRI_2AFC),
    (
        "demo-iri-cluster",
        "Demo: which shape does each image belong to?",
        Study.TrialType.IRI_CLUSTER,
    ),
)
MODES: Final = ("auto", "generate", "committed")


def _torch_present() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def demo_iri_set(*, mode: str) -> tuple[demo_files.DemoSet, str]:
    """The demo IRI set and where it came from ("generated" or "committed")."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "generate" or (mode == "auto" and _torch_present()):
        from iri import demo

        return demo.demo_set(demo.SEED_TIME), "generated"
    return demo_files.read_demo_set(), "committed"


def _networks_store(made: demo_files.DemoSet, *, user_id: int) -> None:
    for name, data in made.model_files.items():
        if Network.objects.filter(owner_id=user_id, name=name).exists():
            continue
        info = made.models[name]
        network = Network(
            owner_id=user_id,
            name=name,
            source=Network.Source.TRAINED,
            regime=info["regime"],
            input_size=32,
            mean=[0.0, 0.0, 0.0],
            std=[1.0, 1.0, 1.0],
            layer="penultimate",
            classes=info.get("classes", list(imaging.DEMO_CLASSES)),
            meta={**info, "image_set": "demo-shapes", "sha256": hashlib.sha256(data).hexdigest()},
        )
        network.file.save(f"{name}.pt", ContentFile(data), save=False)
        network.full_clean()
        network.save()


def iri_demos_seed(*, user_id: int, mode: str | None = None) -> tuple[tuple[Study, bool], ...]:
    """Create the E and F demo studies (live) unless present; idempotent."""
    missing = [demo for demo in IRI_DEMOS if not Study.objects.filter(slug=demo[0]).exists()]
    if not missing:
        return tuple((Study.objects.get(slug=slug), False) for slug, _, _ in IRI_DEMOS)
    chosen = mode or str(getattr(settings, "HMIX_DEMO_IRIS", "auto"))
    if chosen != "generate" and not _torch_present() and not demo_files.DEMO_SET_DIR.is_dir():
        return ()  # a checkout without the committed set (only while it is being regenerated)
    made, _origin = demo_iri_set(mode=chosen)
    _networks_store(made, user_id=user_id)
    from iri.manifest_rows import manifest_csv

    manifest = manifest_csv(made.rows)
    seeded = []
    for slug, title, trial_type in IRI_DEMOS:
        existing = Study.objects.filter(slug=slug).first()
        if existing is not None:
            seeded.append((existing, False))
            continue
        study = services.study_create(
            slug=slug,
            title=title,
            trial_type=trial_type,
            owner_id=user_id,
            classes=list(imaging.DEMO_CLASSES),
            participants_per_batch=10,
            repeats=2,
            completion_code="HMIXDEMO",
            completion_url="https://app.prolific.com/submissions/complete?cc={code}",
            **study_texts(trial_type),
        )
        stimuli = stimulus_services.iri_import(
            study=study, files=made.files, manifest=manifest, manifest_format="csv", seed=0
        )
        services.batches_build(study=study, stimuli=stimuli, batch_size=8, seed=0)
        services.study_set_status(study=study, status=Study.Status.LIVE)
        seeded.append((study, True))
    return tuple(seeded)
