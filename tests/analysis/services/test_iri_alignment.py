import math
from collections.abc import Callable
from typing import Any

import pytest

from analysis import services
from analysis.models import AnalysisResult
from elicitation.models import Participant, Study, Trial
from tests.conftest import answer_all_trials
from tests.iri_fixtures import iri_study_live

pytestmark = pytest.mark.django_db


def _2afc(*, targets: set[int], pass_catch: bool) -> Callable[[Trial], dict[str, Any]]:
    """Choose the target on the main trials whose stimulus index is in `targets`."""

    def answer(trial: Trial) -> dict[str, Any]:
        d = trial.display
        if trial.kind == Trial.Kind.CATCH:
            wanted = d["query"] if pass_catch else ("start" if d["query"] == "target" else "target")
        else:
            index = int(trial.stimulus.key.rsplit("_", 1)[1])
            wanted = "target" if index in targets else "start"
        return {"choice": "left" if d["placement"][0] == wanted else "right"}

    return answer


def _wilson(k: int, n: int) -> tuple[float, float]:
    # Wilson score interval, z = 1.959964 (95%), as percentages.
    z = 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return 100 * (centre - half), 100 * (centre + half)


def test_2afc_alignment_with_and_without_flagged_participants(researcher: Any) -> None:
    # given 4 IRIs and 2 catch trials per person (catch_rate 0.5); a picks every target,
    # b none, c one of four but fails the catch trials (flagged at the default 80%)
    study = iri_study_live(
        owner=researcher,
        trial_type=Study.TrialType.IRI_2AFC,
        slug="e",
        n_stimuli=4,
        settings={"catch_rate": 0.5},
        repeats=0,
    )
    answer_all_trials(study, "a", _2afc(targets={0, 1, 2, 3}, pass_catch=True))
    answer_all_trials(study, "b", _2afc(targets=set(), pass_catch=True))
    answer_all_trials(study, "c", _2afc(targets={0}, pass_catch=False))
    # when
    services.study_analysis_recompute(study=study)
    # then
    rows = {
        r.params["exclude_flagged"]: r
        for r in AnalysisResult.objects.filter(study=study, kind="iri-alignment")
    }
    everyone, trusted = rows[False].data, rows[True].data
    c = Participant.objects.get(study=study, external_id="c")
    # scores {100, 0, 25}: mean 41.67, population SD sqrt(((58.33)² + (41.67)² + (16.67)²)/3)
    assert everyone["mean_score"] == pytest.approx(125 / 3)
    assert everyone["sd_score"] == pytest.approx(
        math.sqrt(((100 - 125 / 3) ** 2 + (125 / 3) ** 2 + (25 - 125 / 3) ** 2) / 3)
    )
    assert everyone["pooled_percent"] == pytest.approx(100 * 5 / 12)
    assert (everyone["wilson_low"], everyone["wilson_high"]) == pytest.approx(_wilson(5, 12))
    assert everyone["boot_low"] <= everyone["mean_score"] <= everyone["boot_high"]
    assert everyone["flagged_participants"] == [str(c.id)]
    assert everyone["group"] == {
        "model": study.stimuli.first().meta["model"],
        "layer": study.stimuli.first().meta["layer"],
        "regime": study.stimuli.first().meta["regime"],
        "regulariser": study.stimuli.first().meta["regulariser"],
    }
    # without c: {100, 0} → 50 ± 50
    assert (trusted["mean_score"], trusted["sd_score"]) == pytest.approx((50.0, 50.0))
    assert trusted["n_annotators"] == 2
    assert trusted["chance_corrected"] is None


def test_clustering_alignment_is_chance_corrected(researcher: Any) -> None:
    # given one set of 6 IRI rows plus one catch row per trial (catch_rate 1.0)
    study = iri_study_live(
        owner=researcher,
        trial_type=Study.TrialType.IRI_CLUSTER,
        slug="f",
        n_stimuli=1,
        settings={"catch_rate": 1.0},
        repeats=0,
    )

    def assign(correct_rows: int) -> Callable[[Trial], dict[str, Any]]:
        def answer(trial: Trial) -> dict[str, Any]:
            d, picks = trial.display, []
            for row in d["rows"]:
                if row["kind"] == "catch":
                    true = row["column"]
                else:
                    true = row["index"] // 2  # the fixture's rows 2k, 2k+1 belong to column k
                    if row["index"] >= correct_rows:
                        true = (true + 1) % 3
                picks.append(d["columns"].index(true))
            return {"assignments": picks}

        return answer

    answer_all_trials(study, "a", assign(6))  # all six rows right: 100
    answer_all_trials(study, "b", assign(2))  # two of six: 33.3
    # when
    services.study_analysis_recompute(study=study)
    # then: mean 66.67; chance-corrected (66.67 − 33.33) / (100 − 33.33) = 0.5
    data = AnalysisResult.objects.get(
        study=study, kind="iri-alignment", params__exclude_flagged=False
    ).data
    assert data["mean_score"] == pytest.approx(200 / 3)
    assert data["chance"] == pytest.approx(100 / 3)
    assert data["chance_corrected"] == pytest.approx(0.5)
    assert data["n_judgments"] == 12  # catch rows are scored separately
    assert data["flagged_participants"] == []
    assert sorted(data["annotator_scores"].values()) == pytest.approx([100 / 3, 100.0])
