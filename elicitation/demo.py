"""The demo study served by `make demo`: generated shapes, mixup stimuli, a live categorical
study, and a researcher account. Seeding is idempotent: a second run changes nothing.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction

from elicitation import imaging, services, stimulus_services
from elicitation.defaults import study_texts
from elicitation.models import ImageSet, Study
from hmix_site.common.exceptions import ApplicationError

DEMO_SLUG = "demo-soft-labels"
DEMO_IMAGE_SET = "demo-shapes"
DEMO_USERNAME = "researcher"
# A local demo account only; `make demo` prints it. Real deployments create their own users.
DEMO_PASSWORD = "hmix-demo-password"  # noqa: S105

CONSENT_HTML = """
<p>This is a demonstration of H-Mix, a platform for research on how people perceive images.
You will see small images and say how you think 100 people would label each one.</p>
<p>It takes about 5 minutes. Taking part is voluntary and you may stop at any time by closing
the tab. We record your answers and response times, never your name.</p>
"""

INSTRUCTIONS = [
    {
        "title": "What you will see",
        "html": "<p>Each image shows a simple shape. Some images are a blend of two shapes, "
        "so they can look ambiguous.</p>",
    },
    {
        "title": "What to answer",
        "html": "<p>Imagine 100 crowdworkers each labelling the image with one category. "
        "Tell us the category most of them would choose and what share would choose it, "
        "optionally a second category and its share, and which categories nobody would "
        "choose.</p>",
    },
    {
        "title": "Example",
        "html": "<p>If an image looks mostly like a circle but a bit like a square, you might "
        "answer: Circle 70%, Square 25%, and tick the shapes that clearly are not there.</p>",
    },
]

COMPREHENSION = [
    {
        "question": "What do you give for each image?",
        "options": [
            "Only the single correct category",
            "The likely categories and the share of 100 workers choosing each",
            "A description of the colours",
        ],
        "answer": 1,
    },
    {
        "question": "Whose labels do you imagine?",
        "options": ["My own only", "100 crowdworkers'", "A computer's"],
        "answer": 1,
    },
]


@dataclass(frozen=True)
class DemoInfo:
    study: Study
    created: bool
    others: tuple[tuple[Study, bool], ...] = ()


# Interfaces B, C and D on the same shapes (slug, title, trial type, series or not).
MORE_DEMOS = (
    (
        "demo-mixing-factor",
        "Demo: how much of each shape is in the blend?",
        Study.TrialType.MIXING_FACTOR,
    ),
    ("demo-construct-midpoint", "Demo: find the 50/50 blend", Study.TrialType.CONSTRUCT_MIDPOINT),
    ("demo-select-midpoint", "Demo: pick the 50/50 blend", Study.TrialType.SELECT_MIDPOINT),
)


@transaction.atomic
def demo_seed(
    *, per_class: int = 8, n_pairs: int = 8, batch_size: int = 8, iris: str | None = None
) -> DemoInfo:
    """Seed the demo. Refused (ApplicationError, nothing written) unless the settings allow the
    demo login (HMIX_DEMO_LOGIN_ALLOWED: local and test settings only): its password is public."""
    if not settings.HMIX_DEMO_LOGIN_ALLOWED:
        raise ApplicationError(
            "seed_demo creates a staff login with the password printed in the README, so it "
            "only runs under local settings (DJANGO_SETTINGS_MODULE=hmix_site.settings.local)."
        )
    User = get_user_model()
    user, user_created = User.objects.get_or_create(
        username=DEMO_USERNAME, defaults={"is_staff": True, "email": "researcher@example.org"}
    )
    if user_created:
        user.set_password(DEMO_PASSWORD)
        user.save()
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label__in=["elicitation", "analysis"])
        )

    image_set = ImageSet.objects.filter(name=DEMO_IMAGE_SET).first()
    if image_set is None:
        image_set = stimulus_services.image_set_create(
            name=DEMO_IMAGE_SET,
            source=ImageSet.Source.DEMO,
            images=imaging.generate_demo_images(per_class=per_class, seed=0),
        )
    others = tuple(
        _seed_interface(slug, title, ttype, user_id=user.pk, image_set=image_set)
        for slug, title, ttype in MORE_DEMOS
    )
    # Interfaces E and F: IRIs of the demo shapes (iri.demo_seed; `iris` picks generated at
    # seed time or the committed set, by default generated when PyTorch is installed).
    from iri.demo_seed import iri_demos_seed

    others = (*others, *iri_demos_seed(user_id=user.pk, mode=iris))
    existing = Study.objects.filter(slug=DEMO_SLUG).first()
    if existing is not None:
        return DemoInfo(study=existing, created=False, others=others)

    study = services.study_create(
        slug=DEMO_SLUG,
        title="Demo: how would 100 people label these shapes?",
        trial_type=Study.TrialType.CATEGORICAL,
        owner_id=user.id,
        classes=list(imaging.DEMO_CLASSES),
        participants_per_batch=10,
        repeats=2,
        consent_html=CONSENT_HTML,
        instructions=INSTRUCTIONS,
        comprehension=COMPREHENSION,
        debrief_questions=["Anything you would like to tell us about the task? (optional)"],
        completion_code="HMIXDEMO",
        prolific_completion_url="https://app.prolific.com/submissions/complete?cc={code}",
        label_method="clean-top2-clamp",
        label_params={"gamma": 0.1},
    )
    mixed = stimulus_services.stimuli_generate_mixup(
        study=study, image_set=image_set, n_pairs=n_pairs, seed=0
    )
    plain = stimulus_services.stimuli_add_plain(study=study, image_set=image_set, per_class=1)
    services.batches_build(study=study, stimuli=[*mixed, *plain], batch_size=batch_size, seed=0)
    services.study_set_status(study=study, status=Study.Status.LIVE)
    return DemoInfo(study=study, created=True, others=others)


def _seed_interface(
    slug: str, title: str, trial_type: str, *, user_id: int, image_set: ImageSet
) -> tuple[Study, bool]:
    existing = Study.objects.filter(slug=slug).first()
    if existing is not None:
        return existing, False
    study = services.study_create(
        slug=slug,
        title=title,
        trial_type=trial_type,
        owner_id=user_id,
        classes=list(imaging.DEMO_CLASSES),
        participants_per_batch=10,
        repeats=2,
        completion_code="HMIXDEMO",
        prolific_completion_url="https://app.prolific.com/submissions/complete?cc={code}",
        **study_texts(trial_type),
    )
    if trial_type == Study.TrialType.MIXING_FACTOR:
        stimuli = stimulus_services.stimuli_generate_mixup(
            study=study, image_set=image_set, n_pairs=8, seed=1
        )
    else:
        stimuli = stimulus_services.stimuli_generate_series(
            study=study, image_set=image_set, n_pairs=12, seed=2
        )
    services.batches_build(study=study, stimuli=stimuli, batch_size=8, seed=0)
    services.study_set_status(study=study, status=Study.Status.LIVE)
    return study, True
