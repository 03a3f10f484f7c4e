import uuid

import factory
from django.contrib.auth import get_user_model

from elicitation.models import Stimulus, Study

CLASSES = ["Airplane", "Automobile", "Bird", "Cat", "Deer", "Dog", "Frog", "Horse", "Ship", "Truck"]


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"researcher{n}")
    is_staff = True
    password = factory.django.Password("pw")


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    # Unique across processes too: helpers and live-server tests share one test database.
    slug = factory.LazyFunction(lambda: f"study-{uuid.uuid4().hex[:12]}")
    title = factory.Sequence(lambda n: f"Study {n}")
    trial_type = Study.TrialType.CATEGORICAL
    owner = factory.SubFactory(UserFactory)
    classes = factory.LazyFunction(lambda: list(CLASSES))
    participants_per_batch = 3
    repeats = 2
    consent_html = "<p>Consent text.</p>"
    instructions = factory.LazyFunction(lambda: [{"title": "Task", "html": "<p>Label.</p>"}])
    comprehension = factory.LazyFunction(
        lambda: [{"question": "Whose labels?", "options": ["Mine", "100 workers'"], "answer": 1}]
    )
    debrief_questions = factory.LazyFunction(lambda: ["Comments?"])
    completion_code = "CODE123"
    completion_url = "https://app.prolific.com/submissions/complete?cc={code}"
    prolific_completion_url = "https://app.prolific.com/submissions/complete?cc={code}"
    label_method = "clean-top2-clamp"
    label_params = factory.LazyFunction(lambda: {"gamma": 0.1})


class StimulusFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Stimulus

    study = factory.SubFactory(StudyFactory)
    key = factory.Sequence(lambda n: f"mixed_0.25_Cat_{n}_Dog_{n + 1000}.png")
    kind = Stimulus.Kind.MIXED
    class1 = "Cat"
    class2 = "Dog"
    lam = 0.25
    # A real (tiny) stored file: a study launches only once every stimulus has its image.
    image = factory.django.ImageField(width=4, height=4, format="PNG")
