"""iri.tasks: routed to their own queue; thin, idempotent wrappers."""

import pytest

from elicitation.models import Stimulus
from hmix_site.celery import app as celery_app
from iri import services, tasks
from jobs.models import Job

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "name", ["iri.tasks.iri_generate_job_run", "iri.tasks.network_train_job_run"]
)
def test_iri_tasks_go_to_the_iri_queue(name):
    route = celery_app.amqp.router.route({}, name)

    assert route["queue"].name == "iri"


def test_other_tasks_stay_on_the_default_queue():
    route = celery_app.amqp.router.route({}, "elicitation.tasks.stimuli_generate_job_run")

    assert route["queue"].name == celery_app.conf.task_default_queue


def test_a_generation_task_run_twice_generates_once(researcher, shapes, make_network):
    job = services.iri_generate_job_create(
        owner_id=researcher.id,
        network=make_network(),
        image_set=shapes,
        new_study={"slug": "twice", "title": "T", "trial_type": "iri_2afc"},
        per_class=1,
        steps=3,
    )

    tasks.iri_generate_job_run(job.id)
    tasks.iri_generate_job_run(job.id)

    job.refresh_from_db()
    assert job.status == Job.Status.DONE
    assert Stimulus.objects.filter(study__slug="twice").count() == 8


def test_a_task_for_a_missing_job_does_nothing():
    tasks.iri_generate_job_run(10**9)
    tasks.network_train_job_run(10**9)

    assert Job.objects.exists() is False
