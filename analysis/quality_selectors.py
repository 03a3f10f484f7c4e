"""Reads behind the quality-control rule sets of analysis/quality.py."""

from collections.abc import Iterator
from typing import Any

from analysis import quality
from analysis.selectors import without_withdrawn
from elicitation import legacy
from elicitation.models import Participant, Response, Study, Trial


def _typed_p1(source: str, raw: Any, p1: float) -> float:
    """The p1 the participant typed: imported rows keep it in the raw form (a typed 0 was stored
    as 100, docs/methods/soft-labels.md#parsing-legacy-values); live rows store it as given."""
    if source != Response.Source.IMPORTED:
        return p1
    form = raw.get("response") if isinstance(raw, dict) else None
    if not isinstance(form, dict) or "prob" not in form:
        return p1
    try:
        return legacy.parse_percent(form["prob"])
    except ValueError:
        return p1


def study_quality_trials(*, study: Study) -> Iterator[quality.QualityTrial]:
    """The study's categorical main and repeat responses, as the quality rules see them
    (withdrawn participants' left out)."""
    classes = list(study.classes)
    rows = (
        without_withdrawn(
            Response.objects.filter(
                study=study, top_class__isnull=False, kind__in=[Trial.Kind.MAIN, Trial.Kind.REPEAT]
            )
        )
        .order_by("participant_id", "id")
        .values_list(
            "participant_id",
            "top_class",
            "p1_pct",
            "second_class",
            "p2_pct",
            "impossible",
            "source",
            "raw",
            "stimulus__true_class",
        )
    )
    for participant, top, p1, second, p2, impossible, source, raw, true_class in rows.iterator(
        chunk_size=2000
    ):
        if top is None or p1 is None:  # not a categorical answer (filtered above; for mypy)
            continue
        yield quality.QualityTrial(
            participant=participant,
            top=top,
            p1=p1,
            p1_raw=_typed_p1(source, raw, p1),
            second=second,
            p2=p2,
            impossible=frozenset(impossible),
            true_class=classes.index(true_class) if true_class in classes else None,
        )


def study_quality_report(*, study: Study) -> list[quality.ParticipantQuality]:
    """The CIFAR-10S exclusion rules over every participant with categorical responses."""
    return quality.cifar10s_exclusions(study_quality_trials(study=study))


def study_excluded_participant_ids(*, study: Study) -> set[int]:
    return quality.excluded_participants(study_quality_report(study=study))


def participant_labels(*, study: Study) -> dict[int, str]:
    """How a report names each participant: the platform id, else the pseudonym the exports
    use (never the session token: it is the participant's credential)."""
    return {
        pk: external_id or pseudonym or f"#{pk}"
        for pk, external_id, pseudonym in Participant.objects.filter(study=study).values_list(
            "id", "external_id", "pseudonym"
        )
    }
