from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from elicitation import builder_services, imaging, stimulus_services
from elicitation.models import ImageSet, Stimulus, Study
from hmix_site.common.exceptions import ApplicationError
from tests.factories import CLASSES, StudyFactory

pytestmark = pytest.mark.django_db


def _image_set(name: str, classes: tuple[str, ...], per_class: int = 2) -> ImageSet:
    images = [
        imaging.BaseImage(
            class_name=c, ref=str(i), pixels=np.full((4, 4, 3), 20 * i + 60 * j, np.uint8)
        )
        for j, c in enumerate(classes)
        for i in range(per_class)
    ]
    return stimulus_services.image_set_create(
        name=name, source=ImageSet.Source.FOLDER, images=images
    )


def test_a_draft_starts_without_classes_and_with_the_default_texts(researcher: Any) -> None:
    # when
    study = builder_services.study_create_draft(
        owner_id=researcher.pk, slug="s", title="S", trial_type="construct_midpoint"
    )
    # then
    assert (study.status, study.classes) == (Study.Status.DRAFT, [])
    assert study.prolific_completion_url == builder_services.PROLIFIC_COMPLETION_URL


def test_a_draft_without_classes_takes_those_of_its_first_image_set(researcher: Any) -> None:
    # given
    study = builder_services.study_create_draft(
        owner_id=researcher.pk, slug="s", title="S", trial_type="categorical"
    )
    # when
    builder_services.study_stimuli_generate(
        study=study, image_set=_image_set("shapes", ("Circle", "Square")), n_pairs=1, lambdas=[0.5]
    )
    # then
    study.refresh_from_db()
    assert study.classes == ["Circle", "Square"]


def test_an_image_set_within_the_classes_keeps_them(researcher: Any) -> None:
    # given
    study = StudyFactory(owner=researcher)
    image_set = _image_set("cats-dogs", ("Cat", "Dog"))
    # when
    builder_services.study_stimuli_generate(
        study=study, image_set=image_set, n_pairs=1, lambdas=[0.5]
    )
    # then
    study.refresh_from_db()
    assert study.classes == CLASSES


def test_an_image_set_with_other_classes_replaces_them_while_there_are_no_stimuli(
    researcher: Any,
) -> None:
    # given
    study = StudyFactory(owner=researcher)
    shapes = _image_set("shapes", ("Circle", "Square"))
    # when
    builder_services.study_stimuli_generate(study=study, image_set=shapes, n_pairs=1, lambdas=[0.5])
    # then
    study.refresh_from_db()
    assert study.classes == ["Circle", "Square"]


def test_an_image_set_with_other_classes_is_refused_once_there_are_stimuli(
    researcher: Any,
) -> None:
    # given
    study = StudyFactory(owner=researcher)
    builder_services.study_stimuli_generate(
        study=study, image_set=_image_set("cats-dogs", ("Cat", "Dog")), n_pairs=1, lambdas=[0.5]
    )
    shapes = _image_set("shapes", ("Circle", "Square"))
    # when
    with pytest.raises(ValidationError) as exc:
        builder_services.study_stimuli_generate(
            study=study, image_set=shapes, n_pairs=1, lambdas=[0.5]
        )
    # then
    assert exc.value.message_dict == {
        "image_set": [
            f"Image set 'shapes' has classes ['Circle', 'Square'] that are not among the "
            f"study's classes {CLASSES}."
        ]
    }
    assert Stimulus.objects.count() == 1


@pytest.mark.parametrize(
    ("trial_type", "fields", "errors"),
    [
        ("categorical", {"lambdas": []}, {"lambdas": ["Give at least one λ."]}),
        ("categorical", {"lambdas": [2.0]}, {"lambdas": ["Every λ must be between 0 and 1."]}),
        (
            "mixing_factor",
            {"plain_per_class": 1},
            {
                "plain_per_class": [
                    "Plain (unmixed) images only fit categorical studies; the other interfaces "
                    "ask about a class pair."
                ]
            },
        ),
        (
            "select_midpoint",
            {"lambdas": [0.5]},
            {"lambdas": ["Midpoint series always use the 11 steps λ = 0.0, 0.1, …, 1.0."]},
        ),
        (
            "iri_2afc",
            {},
            {"image_set": ["IRI studies take their stimuli from an IRI set and its manifest."]},
        ),
        (
            "categorical",
            {"n_pairs": 5},
            {
                "n_pairs": [
                    "not enough images for 5 distinct pairs: every image pair of Cat and Dog is "
                    "already planned"
                ]
            },
        ),
    ],
)
def test_generation_refuses_what_does_not_fit_the_interface(
    researcher: Any, trial_type: str, fields: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    # given
    study = StudyFactory(owner=researcher, trial_type=trial_type)
    image_set = _image_set("cats-dogs", ("Cat", "Dog"))
    # when
    with pytest.raises(ValidationError) as exc:
        builder_services.study_stimuli_generate(
            study=study, image_set=image_set, **{"n_pairs": 1, "lambdas": [0.5], **fields}
        )
    # then
    assert exc.value.message_dict == errors
    assert Stimulus.objects.exists() is False


def test_iri_import_is_refused_after_launch(researcher: Any) -> None:
    # given
    study = StudyFactory(owner=researcher, trial_type="iri_2afc", status=Study.Status.PAUSED)
    # when
    with pytest.raises(ApplicationError) as exc:
        builder_services.study_iri_import(
            study=study, files={}, manifest=b"", manifest_format="csv", max_pixels=100
        )
    # then
    assert (
        exc.value.message
        == "IRI sets can be imported only while the study is a draft; it is paused."
    )
    assert exc.value.status == 409


def test_batches_split_the_stimuli_evenly_near_the_asked_size(researcher: Any) -> None:
    # given: 34 stimuli (17 pairs × 2 λ)
    study = StudyFactory(owner=researcher, classes=["Cat", "Dog"])
    builder_services.study_stimuli_generate(
        study=study,
        image_set=_image_set("cats-dogs", ("Cat", "Dog"), per_class=6),
        n_pairs=17,
        lambdas=[0.25, 0.75],
    )
    # when
    batches = builder_services.study_batches_build(study=study, batch_size=8)
    # then: 9/9/8/8, not 8/8/8/8/2; every stimulus in exactly one batch
    assert [b.number for b in batches] == [1, 2, 3, 4]
    assert [b.items.count() for b in batches] == [9, 9, 8, 8]
    placed = [item.stimulus_id for b in batches for item in b.items.all()]
    assert sorted(placed) == sorted(study.stimuli.values_list("id", flat=True))
    assert len(placed) == 34
