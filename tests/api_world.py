"""One seeded world for the tests that walk the whole API (the schemathesis run and the
authorisation matrix): a live categorical study with answers, soft labels and a finished export
job, its owner, a collaborator, another researcher, a staff user and two participants."""

import dataclasses
import uuid
from typing import Any

from django.core.files.base import ContentFile
from rest_framework.authtoken.models import Token

from analysis import services as analysis_services
from elicitation import selectors, services
from elicitation.models import Participant, Study
from jobs import services as jobs_services
from jobs.models import Job
from tests.conftest import advance_to_trials, categorical_answer
from tests.factories import StimulusFactory, StudyFactory, UserFactory

# Text that only the owner's study holds: a response carrying it to anyone else is a leak.
SECRET_PID = "SECRET-PID-OF-A"
SECRET_TITLE = "Secret study of the owner"
# Fixed identifiers, so that a schema loaded before any test (the schemathesis run) can name
# them as path parameters.
STUDY_SLUG = "world-study"
TOKEN_A = uuid.UUID("aaaaaaaa-0000-4000-8000-00000000000a")
JOB_ID = uuid.UUID("bbbbbbbb-0000-4000-8000-00000000000b")


@dataclasses.dataclass
class World:
    owner: Any
    collaborator: Any
    other: Any
    staff: Any
    study: Study
    participant_a: Participant
    participant_b: Participant
    job: Job
    tokens: dict[str, str]

    def auth_header(self, user: Any) -> str:
        return f"Token {self.tokens[user.username]}"


def seed_world() -> World:
    owner = UserFactory(username="world-owner", is_staff=False)
    collaborator = UserFactory(username="world-collaborator", is_staff=False)
    other = UserFactory(username="world-other", is_staff=False)
    staff = UserFactory(username="world-staff", is_staff=True, is_superuser=True)
    study = StudyFactory(owner=owner, slug=STUDY_SLUG, title=SECRET_TITLE, participants_per_batch=5)
    stimuli = [StimulusFactory(study=study) for _ in range(4)]
    services.batches_build(study=study, stimuli=stimuli, batch_size=2)
    services.study_set_status(study=study, status=Study.Status.LIVE)
    services.study_add_researcher(study=study, username=collaborator.username)

    # A's session is in its trials with one answer given; B's has just started.
    participant_a, _ = services.participant_start(
        study=study, platform=Participant.Platform.PROLIFIC, external_id=SECRET_PID
    )
    Participant.objects.filter(pk=participant_a.pk).update(token=TOKEN_A)
    participant_a.refresh_from_db()
    participant_a = advance_to_trials(participant_a)
    trial = selectors.trial_get_next(participant=participant_a)
    assert trial is not None
    services.response_record(
        participant=participant_a,
        trial_id=trial.id,
        client_key=uuid.uuid4(),
        rt_ms=1200,
        answer=categorical_answer(),
    )
    participant_a.refresh_from_db()
    participant_b, _ = services.participant_start(
        study=study, platform=Participant.Platform.PROLIFIC, external_id="PID-OF-B"
    )
    analysis_services.soft_labels_refresh(study=study, stimulus_ids=[trial.stimulus_id])

    job = jobs_services.job_create(
        owner_id=owner.pk,
        kind=Job.Kind.EXPORT,
        study_id=study.pk,
        params={"what": "responses", "format": "csv"},
    )
    Job.objects.filter(pk=job.pk).update(public_id=JOB_ID)
    job = jobs_services.job_finish(
        job=job, result=ContentFile(f"id,external_id\n1,{SECRET_PID}\n".encode(), name="r.csv")
    )
    tokens = {
        user.username: Token.objects.create(
            user=user, key=f"{user.username}-token".ljust(40, "0")
        ).key
        for user in (owner, collaborator, other, staff)
    }
    return World(
        owner=owner,
        collaborator=collaborator,
        other=other,
        staff=staff,
        study=study,
        participant_a=participant_a,
        participant_b=participant_b,
        job=job,
        tokens=tokens,
    )
