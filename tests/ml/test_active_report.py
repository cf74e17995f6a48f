"""`python -m ml.active report`: runs of other strategies on the same experiment, merged into one plot and table."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ml.active import main
from ml.active_report import LearningCurve, labels_to_reach, load_run, merge_runs


def run(strategies: dict[str, dict[int, list[float]]], **extra) -> dict:
    return {"results": strategies, "labelled": {s: {0: [1, 2]} for s in strategies},
            "strategy_seconds": {s: 10.0 for s in strategies}, "seconds": 30.0, "regressor": "network",
            "reference": None, "mean_predictor_mae": 60.0, "setup": {"pool": 10, "seeds": [0]}, **extra}


def test_a_run_read_back_from_json_counts_labels_in_numbers_so_100_comes_after_50():
    back = load_run(json.dumps(run({"random": {50: [9.0], 100: [8.0]}})))
    assert list(back["results"]["random"]) == [50, 100] and back["labelled"]["random"] == {0: [1, 2]}


def test_two_runs_of_other_strategies_merge_into_one_with_both_and_their_seconds_added():
    merged = merge_runs([run({"random": {50: [9.0]}}), run({"hybrid": {50: [8.5]}})])
    assert set(merged["results"]) == {"random", "hybrid"} == set(merged["strategy_seconds"])
    assert merged["seconds"] == 60.0


STARTER = {"label": "the starter alone", "mae": 8.20292}


@pytest.mark.parametrize("second, message", [
    (run({"random": {50: [7.0]}}, reference=STARTER), "two runs have random seed 0"),
    (run({"hybrid": {50: [7.0]}}, reference=STARTER, setup={"pool": 20, "seeds": [0]}), "the runs differ in setup"),
    (run({"hybrid": {50: [7.0]}}, reference={**STARTER, "mae": 8.25}), "the runs differ in reference"),
])
def test_runs_that_are_not_parts_of_one_experiment_are_refused_with_the_reason(second, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        merge_runs([run({"random": {50: [9.0]}}, reference=STARTER), second])


def test_runs_whose_starter_reference_differs_by_another_cpus_rounding_merge():
    """The same experiment on two machines: the starter's MAE 8.20292 on one, 8.20312 on the other."""
    first = run({"random": {50: [9.0]}}, reference=STARTER)
    second = run({"hybrid": {50: [8.5]}}, reference={**STARTER, "mae": 8.20312})
    assert set(merge_runs([first, second])["results"]) == {"random", "hybrid"}


def test_the_report_command_names_an_unfinished_run_and_writes_nothing(tmp_path, capsys):
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"partial": True, **run({"random": {50: [9.0]}})}))
    with pytest.raises(SystemExit) as stopped:
        main(["report", str(partial), "--out", str(tmp_path / "p.png"), "--md", str(tmp_path / "t.md")])
    assert stopped.value.code == 2 and "stopped before its end" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial.json"]


def test_the_report_command_writes_the_merged_plot_table_and_json(tmp_path):
    for name, strategies in (("a", {"random": {50: [9.0], 100: [8.0]}}), ("b", {"hybrid": {50: [9.0], 100: [7.0]}})):
        (tmp_path / f"{name}.json").write_text(json.dumps(run(strategies)))
    assert main(["report", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(tmp_path / "p.png"),
                 "--md", str(tmp_path / "t.md"), "--json", str(tmp_path / "m.json")]) == 0
    table = (tmp_path / "t.md").read_text()
    assert "| 100 | 8.00 ± 0.00 | 7.00 ± 0.00 |" in table and "hybrid's mean reaches it at 75 labels, 25% fewer" in table
    assert set(json.loads((tmp_path / "m.json").read_text())["results"]) == {"random", "hybrid"}
    assert (tmp_path / "p.png").stat().st_size > 0


def test_runs_of_more_seeds_for_a_strategy_add_to_its_curve_in_seed_order():
    more = run({"random": {50: [8.0, 7.0]}}, setup={"pool": 10, "seeds": [3, 4]})
    merged = merge_runs([more, run({"random": {50: [9.0]}, "hybrid": {50: [6.0]}})])
    assert merged["results"]["random"][50] == [9.0, 8.0, 7.0] and merged["results"]["hybrid"][50] == [6.0]
    assert merged["seeds_by_strategy"] == {"random": [0, 3, 4], "hybrid": [0]}
    assert merged["setup"]["seeds"] == [0, 3, 4]


def test_a_fitted_learning_curve_recovers_a_known_power_law_through_noise():
    rng = np.random.default_rng(0)
    truth = lambda n: 6.0 + 3.0 * (n / 100) ** -0.8
    curve = {n: [truth(n) + e for e in rng.normal(0, 0.05, 5)] for n in range(50, 401, 50)}
    fit = LearningCurve.fit(curve)
    assert fit is not None and fit.mae(400) == pytest.approx(truth(400), abs=0.1)
    assert fit.labels_to_reach(truth(200)) == pytest.approx(200, rel=0.1)
    assert fit.labels_to_reach(fit.a - 0.1) is None  # below where the curve levels off: never reached


def test_the_fit_judges_a_flat_noisy_curve_by_its_trend_where_the_first_crossing_of_the_mean_does_not():
    flat = {50: [8.3], 100: [7.6], 150: [7.5], 200: [7.2], 250: [7.4], 300: [7.0], 350: [7.0], 400: [7.1]}
    assert labels_to_reach({n: v[0] for n, v in flat.items()}, 7.1) < 300  # the noise at 300 decides
    fit = LearningCurve.fit(flat)
    assert fit is not None and fit.labels_to_reach(fit.mae(400)) == pytest.approx(400, rel=1e-6)


def test_a_merged_run_reports_again_with_each_strategys_own_seeds(tmp_path):
    more = run({"random": {50: [8.0, 7.0]}}, setup={"pool": 10, "seeds": [3, 4]})
    merged = merge_runs([more, run({"random": {50: [9.0]}, "hybrid": {50: [6.0]}})])
    again = merge_runs([load_run(json.dumps(merged))])
    assert again["results"] == merged["results"] and again["seeds_by_strategy"] == merged["seeds_by_strategy"]
