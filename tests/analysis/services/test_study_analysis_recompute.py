import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command

from analysis import services
from analysis.models import AnalysisResult
from elicitation.models import Study, Trial
from tests.conftest import answer_all_trials

pytestmark = pytest.mark.django_db


def _sliders(mixing: int, confidence: int) -> Callable[[Trial], dict[str, Any]]:
    return lambda _trial: {
        "mixing": mixing,
        "confidence": confidence,
        "moved_mixing": True,
        "moved_confidence": True,
    }


def test_mixing_factor_summaries_are_stored_per_stimulus_and_per_lambda(
    make_study: Callable[..., Study],
) -> None:
    # given one stimulus (λ = 0.25), two annotators, no repeats:
    # a: slider 25 → λ̂ .75, c .5;  b: slider 75 → λ̂ .25, c 1.0
    study = make_study(
        n_stimuli=1, batch_size=1, repeats=0, trial_type=Study.TrialType.MIXING_FACTOR
    )
    answer_all_trials(study, "a", _sliders(25, 50))
    answer_all_trials(study, "b", _sliders(75, 100))
    # when
    n = services.study_analysis_recompute(study=study)
    # then
    per_stimulus = AnalysisResult.objects.get(
        kind="mixing-stimulus", params_key='{"include_repeats": true}'
    )
    per_lambda = AnalysisResult.objects.get(
        kind="mixing-lambda", params_key='{"include_repeats": true}'
    )
    d = per_stimulus.data
    assert n == 4  # stimulus + λ level, with and without repeats
    assert per_stimulus.n == 2
    assert d["mean_lam_hat"] == pytest.approx(0.5)
    assert d["sd_lam_hat"] == pytest.approx(0.25)  # population SD of {.75, .25}
    assert d["mean_confidence"] == pytest.approx(0.75)
    assert d["relabel_difference"] == pytest.approx(0.25 - 0.5)
    # Σλ̂c/Σc = (.75·.5 + .25·1)/1.5 = .625/1.5
    assert d["confidence_weighted_mean"] == pytest.approx(0.625 / 1.5)
    # hmix-weighted-relabel = mean(λ̂·c) = .3125, and λ minus it
    assert d["hmix_weighted_relabel"] == pytest.approx(0.3125)
    assert d["hmix_weighted_difference"] == pytest.approx(0.25 - 0.3125)
    assert d["human_relabel"] == pytest.approx([0.5, 0.5])
    assert per_lambda.key == "0.25"
    # sample SD (ddof = 1) of {.75, .25} = sqrt(.125)
    assert per_lambda.data["sd_lam_hat"] == pytest.approx(0.125**0.5)
    assert per_lambda.data["mean_abs_error"] == pytest.approx(0.25)


def test_recompute_twice_gives_the_same_rows(make_study: Callable[..., Study]) -> None:
    # given
    study = make_study(
        n_stimuli=2, batch_size=2, repeats=1, trial_type=Study.TrialType.MIXING_FACTOR
    )
    answer_all_trials(study, "a", _sliders(40, 60))
    services.study_analysis_recompute(study=study)
    first = sorted(
        AnalysisResult.objects.values_list("kind", "key", "params_key", "n", "data"), key=repr
    )
    # when
    services.study_analysis_recompute(study=study)
    # then
    again = sorted(
        AnalysisResult.objects.values_list("kind", "key", "params_key", "n", "data"), key=repr
    )
    assert again == first


def _series_study(make_study: Callable[..., Study], trial_type: str) -> Study:
    study = make_study(n_stimuli=1, batch_size=1, repeats=1, trial_type=trial_type)
    study.stimuli.update(kind="series", key="Cat_1_Dog_2", lam=None)
    return study


def test_select_midpoint_summary_histogram_and_consistency(
    make_study: Callable[..., Study],
) -> None:
    # given one pair; a picks step 5 then (repeat) step 6; b picks step 4 twice
    study = _series_study(make_study, Study.TrialType.SELECT_MIDPOINT)
    picks = {"a": iter([5, 6]), "b": iter([4, 4])}

    def choose(pid: str) -> Callable[[Trial], dict[str, Any]]:
        return lambda trial: {"chosen_position": trial.display["order"].index(next(picks[pid]))}

    answer_all_trials(study, "a", choose("a"))
    answer_all_trials(study, "b", choose("b"))
    # when
    call_command("aggregate", study=study.slug, stdout=io.StringIO())
    # then: with repeats, λ = {.5, .6, .4, .4}
    pooled = AnalysisResult.objects.get(
        kind="midpoint", key="select|all|Cat_1_Dog_2", params_key='{"include_repeats": true}'
    ).data
    consistency = AnalysisResult.objects.get(kind="midpoint-consistency", key="select").data
    assert pooled["n"] == 4
    assert pooled["mean"] == pytest.approx(0.475)
    assert pooled["median"] == pytest.approx(0.45)
    assert pooled["share_half"] == pytest.approx(0.25)
    assert pooled["share_near_half"] == pytest.approx(1.0)
    assert pooled["histogram"] == [0, 0, 0, 0, 2, 1, 1, 0, 0, 0, 0]
    # |Δλ|: a .1, b 0 → mean .05; one of two identical
    assert consistency["n_pairs"] == 2
    assert consistency["mean_abs_diff"] == pytest.approx(0.05)
    assert consistency["share_identical"] == pytest.approx(0.5)


def test_construct_midpoint_is_split_by_start_step(make_study: Callable[..., Study]) -> None:
    # given two participants in the same batch: start steps 1 and 9 (counterbalanced)
    study = _series_study(make_study, Study.TrialType.CONSTRUCT_MIDPOINT)

    def walk_to(target: int) -> Callable[[Trial], dict[str, Any]]:
        def answer(trial: Trial) -> dict[str, Any]:
            step, t, visits = trial.display["start_step"], 0, []
            visits.append({"step": step, "t_ms": 0})
            while step != target:
                step += 1 if target > step else -1
                t += 100
                visits.append({"step": step, "t_ms": t})
            return {"final_step": target, "visits": visits}

        return answer

    answer_all_trials(study, "a", walk_to(5))
    answer_all_trials(study, "b", walk_to(7))
    # when
    services.study_analysis_recompute(study=study)
    # then
    starts = sorted(
        Trial.objects.filter(participant__study=study, kind="main").values_list(
            "display__start_step", flat=True
        )
    )
    from_1 = AnalysisResult.objects.get(
        kind="midpoint", key="construct|1|Cat_1_Dog_2", params_key='{"include_repeats": false}'
    ).data
    from_9 = AnalysisResult.objects.get(
        kind="midpoint", key="construct|9|Cat_1_Dog_2", params_key='{"include_repeats": false}'
    ).data
    assert starts == [1, 9]
    assert {from_1["mean"], from_9["mean"]} == {0.5, 0.7}


def test_analysis_export_json_lists_every_stored_row(
    make_study: Callable[..., Study], tmp_path: Any
) -> None:
    # given
    study = make_study(
        n_stimuli=1, batch_size=1, repeats=0, trial_type=Study.TrialType.MIXING_FACTOR
    )
    answer_all_trials(study, "a", _sliders(10, 90))
    services.study_analysis_recompute(study=study)
    out = tmp_path / "mix.json"
    # when
    call_command(
        "export",
        study=study.slug,
        what="mixing-factor",
        format="json",
        out=out,
        stdout=io.StringIO(),
    )
    # then
    data = json.loads(out.read_text())
    assert data["trial_type"] == "mixing_factor"
    assert len(data["results"]) == AnalysisResult.objects.filter(study=study).count() == 4
    stimulus_rows = [r for r in data["results"] if r["kind"] == "mixing-stimulus"]
    assert stimulus_rows[0]["mean_lam_hat"] == pytest.approx(0.9)


def test_a_response_commit_enqueues_the_study_analysis(
    make_study: Callable[..., Study], django_capture_on_commit_callbacks: Any
) -> None:
    # given
    study = make_study(
        n_stimuli=1, batch_size=1, repeats=0, trial_type=Study.TrialType.MIXING_FACTOR
    )
    # when (tasks run eagerly in tests)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        answer_all_trials(study, "a", _sliders(50, 50))
    # then
    assert len(callbacks) == 1
    assert AnalysisResult.objects.filter(study=study, kind="mixing-stimulus").count() == 2
