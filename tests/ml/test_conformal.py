"""Conformal intervals: the finite-sample quantile, coverage by construction on exchangeable data, adaptivity,
clipping to the age range."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ml.uncertainty import (
    conformal_scores,
    inlier_scores,
    interval_multiplier,
    pool_scores,
    prediction_interval,
    scores_needed,
)


def test_the_multiplier_is_the_ceil_n_plus_1_times_level_th_smallest_score():
    scores = [float(i) for i in range(1, 20)]  # n = 19: ⌈20 · 0.9⌉ = 18
    assert interval_multiplier(scores, 0.9) == 18.0
    assert interval_multiplier(list(reversed(scores)), 0.5) == 10.0  # ⌈20 · 0.5⌉ = 10, whatever the stored order


def test_too_few_scores_for_the_level_give_the_whole_age_range_not_a_made_up_width():
    multiplier = interval_multiplier([1.0, 2.0, 3.0], 0.9)  # ⌈4 · 0.9⌉ = 4 > 3
    assert math.isinf(multiplier)
    assert prediction_interval(100.0, 5.0, multiplier, 0.0, 228.0) == (0.0, 228.0)


def test_without_scores_the_normal_quantile_stands_in():
    assert interval_multiplier(None, 0.9) == pytest.approx(1.6449, abs=1e-4)
    with pytest.raises(ValueError, match="between 0 and 1"):
        interval_multiplier([1.0], 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wrong_labels_among_the_calibration_studies_do_not_widen_the_interval_but_clean_scores_all_count(seed):
    rng = np.random.default_rng(seed)
    clean = np.abs(rng.normal(0.0, 1.0, 95))
    wrong = rng.uniform(4.0, 7.0, 5)                      # labels 24–60 months off, read by a model with std ≈ 8–10
    scores = conformal_scores(np.concatenate([clean, wrong]), np.ones(100))
    assert interval_multiplier(scores, 0.9) == pytest.approx(interval_multiplier(list(clean), 0.9), abs=0.01)
    assert interval_multiplier(scores, 0.9, fence=None) > interval_multiplier(list(clean), 0.9)
    assert len(inlier_scores(list(clean))) == 95            # nothing far out among clean half-normal scores


def test_an_interval_never_leaves_the_projects_age_range():
    assert prediction_interval(3.0, 10.0, 1.645, 0.0, 228.0) == (0.0, 19.4)
    assert prediction_interval(225.0, 10.0, 1.645, 0.0, 228.0) == (208.6, 228.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_conformal_covers_the_stated_level_on_new_data_and_is_wider_where_the_model_is_unsure(seed):
    rng = np.random.default_rng(seed)
    std = rng.uniform(2.0, 20.0, size=20_400)          # the model's own (calibrated) std, per study
    errors = rng.normal(0.0, 1.3 * std)                  # true errors: 30 % larger than the model believes
    scores = conformal_scores(errors[:400], std[:400])   # 400 calibration studies
    multiplier = interval_multiplier(scores, 0.9)
    covered = np.abs(errors[400:]) <= multiplier * std[400:]
    assert abs(covered.mean() - 0.9) < 0.03              # the guarantee: ≥ 0.90 in expectation, ≤ 0.90 + 1/(n+1)
    assert 1.3 * 1.5 < multiplier < 1.3 * 1.8            # ≈ 1.3 · z90 = 2.14: it learned the under-confidence
    narrow, wide = (prediction_interval(100.0, s, multiplier, 0.0, 228.0) for s in (2.0, 20.0))
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_an_std_that_orders_the_errors_perfectly_has_no_sparsification_area_and_a_useless_one_has_some():
    from ml.uncertainty_eval import rank_errors

    rng = np.random.default_rng(0)
    errors = rng.exponential(8.0, size=400)
    perfect = rank_errors(errors, errors * 0.5)           # the std is proportional to the error
    useless = rank_errors(errors, rng.permutation(errors))  # the std is unrelated to it
    assert perfect.spearman == pytest.approx(1.0) and perfect.ause == pytest.approx(0.0, abs=1e-9)
    assert abs(useless.spearman) < 0.15 and useless.ause > 1.0
    assert perfect.mae_surest_half < perfect.mae < perfect.mae_least_sure_half


def test_every_tta_view_keeps_the_image_shape_and_the_first_is_the_image_itself():
    from ml.uncertainty_eval import TTA_VIEWS, tta_views

    image = np.random.default_rng(0).random((61, 47)).astype(np.float32)
    views = tta_views(image)
    assert len(views) == len(TTA_VIEWS) and all(view.shape == image.shape for view in views)
    assert np.array_equal(views[0], image) and np.array_equal(views[1], image[:, ::-1])
    assert not any(np.array_equal(view, image) for view in views[2:])  # each other view really changes the image


def test_an_ensemble_reads_the_members_mean_and_their_spread_plus_what_each_member_is_unsure_of():
    from ml.uncertainty_eval import pooled_spread

    centre = np.array([10.0, 50.0, 120.0])
    offset = np.array([0.0, 3.0, 8.0])
    spread = pooled_spread(np.stack([centre - offset, centre + offset]))  # [members, studies]
    assert np.allclose(spread.mean, centre) and np.allclose(spread.std, offset)
    alike = pooled_spread(np.stack([centre, centre, centre]))
    assert np.allclose(alike.std, 0.0)  # members that agree have no spread…
    within = np.array([[3.0, 0.0, 4.0], [3.0, 0.0, 4.0], [3.0, 0.0, 4.0]])
    assert np.allclose(pooled_spread(np.stack([centre] * 3), within).std, [3.0, 0.0, 4.0])  # …but keep their own std
    both = pooled_spread(np.stack([centre - offset, centre + offset]), within[:2])
    assert np.allclose(both.std, np.hypot(offset, within[0]))  # the law of total variance, members and MC dropout


def test_members_with_views_pool_to_the_std_of_every_reading_and_one_member_is_tta_plus_mc():
    from ml.uncertainty_eval import pooled_spread

    rng = np.random.default_rng(0)
    table = rng.normal(100.0, 10.0, size=(3, 6, 5))  # [members, views, studies]
    pooled = pooled_spread(table)
    assert np.allclose(pooled.mean, table.reshape(18, 5).mean(axis=0))
    assert np.allclose(pooled.std, table.reshape(18, 5).std(axis=0))
    mc = rng.uniform(1.0, 5.0, size=(1, 5))
    single = pooled_spread(table[:1], mc)  # the old `--method both`: TTA mean, TTA and MC spreads in quadrature
    assert np.allclose(single.mean, table[0].mean(axis=0)) and np.allclose(single.std, np.hypot(table[0].std(axis=0), mc[0]))
    with pytest.raises(ValueError, match="within_std"):
        pooled_spread(table, mc)


def test_each_method_reads_its_own_rows_and_views_of_the_table():
    from ml.uncertainty_eval import METHODS, aggregate

    readings = np.arange(3 * 6 * 4, dtype=float).reshape(3, 6, 4)  # row 0: CKPT, rows 1-2: the members
    mc = np.full((3, 4), 2.0)
    mc[0] = 5.0
    plain = aggregate(METHODS["mc"], readings, mc, slice(1, 3))
    assert np.allclose(plain.mean, readings[0, 0]) and np.allclose(plain.std, 5.0)
    members = aggregate(METHODS["ensemble"], readings, mc, slice(1, 3))
    assert np.allclose(members.mean, readings[1:, 0].mean(axis=0)) and np.allclose(members.std, 12.0)  # rows 24 apart
    assert np.allclose(aggregate(METHODS["ensemble+mc"], readings, mc, slice(1, 3)).std, np.hypot(12.0, 2.0))
    assert np.allclose(aggregate(METHODS["ensemble+tta"], readings, mc, slice(1, 3)).mean, readings[1:].mean(axis=(0, 1)))


def test_a_std_that_follows_the_error_scale_gives_narrower_intervals_at_the_same_coverage():
    from ml.uncertainty_eval import interval_check

    rng = np.random.default_rng(1)
    std = rng.uniform(2.0, 20.0, size=2000)
    errors = rng.normal(0.0, std)
    informative, useless = interval_check(errors, std), interval_check(errors, rng.permutation(std))
    assert abs(informative.coverage - 0.9) < 0.03 and abs(useless.coverage - 0.9) < 0.03  # conformal: by construction
    assert informative.mean_width < 0.93 * informative.constant_width  # 0.91 here
    assert informative.constant_width == useless.constant_width and useless.mean_width > informative.mean_width


def test_the_sparsification_curve_is_the_mae_of_what_is_kept_and_the_bootstrap_pairs_the_methods():
    from ml.uncertainty_eval import _sparsification, bootstrap_rankings

    errors = np.array([4.0, 1.0, 3.0, 2.0])
    assert np.allclose(_sparsification(errors, np.array([1, 3, 2, 0])), [2.5, 2.0, 1.5])  # drop 4, then 3, then 2
    rng = np.random.default_rng(2)
    errors = rng.exponential(8.0, size=300)
    result = bootstrap_rankings({"useless": errors, "perfect": errors},
                                {"useless": rng.permutation(errors), "perfect": errors}, "useless", resamples=200)
    assert result["useless"].spearman_gain == (0.0, 0.0) and result["useless"].ause_gain == (0.0, 0.0)
    assert result["perfect"].spearman_gain[0] > 0.5 and result["perfect"].ause_gain[0] > 0.5
    assert result["perfect"].spearman[0] > 0.99 and result["useless"].spearman[0] < 0 < result["useless"].spearman[1]


def test_a_std_that_only_knows_the_age_ranks_errors_overall_but_not_within_an_age_band():
    from ml.uncertainty_eval import METHODS, aggregate, rank_errors, spearman_within_bands

    rng = np.random.default_rng(3)
    ages = rng.uniform(0.0, 228.0, size=3000)
    errors = rng.normal(0.0, 3.0 + 5.0 * np.digitize(ages, (72.0, 144.0)))  # each older band errs more, and that is all
    readings = (ages + errors)[None, None, :]
    age_only = aggregate(METHODS["age"], readings, np.zeros((1, 3000)), slice(1, 1))
    assert np.array_equal(age_only.std, np.maximum(readings[0, 0], 0.0))
    assert rank_errors(errors, age_only.std).spearman > 0.3
    assert abs(spearman_within_bands(errors, age_only.std, ages)) < 0.15


def test_saved_readings_are_scored_again_without_models(tmp_path, capsys):
    from ml.uncertainty_eval import main

    rng = np.random.default_rng(4)
    truth = rng.uniform(0.0, 228.0, size=40)
    readings = truth + rng.normal(0.0, 5.0, size=(3, 6, 40))  # CKPT + 2 members, 6 views
    np.savez(tmp_path / "r.npz", readings=readings, mc_std=rng.uniform(1.0, 9.0, size=(3, 40)), truth=truth,
             models=np.array(["starter", "a.pt", "b.pt"]), views=np.arange(6), mc_samples=16)
    assert main(["--from-saved", str(tmp_path / "r.npz"), "--method", "mc,ensemble+both", "--bootstrap", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("mc: 40 studies: MAE") and lines[2].startswith("ensemble+both: 40 studies: MAE")
    assert lines[3].startswith("mc: 95% bootstrap") and len(lines) == 5
    np.savez(tmp_path / "plain.npz", readings=readings[:1, :1], mc_std=np.zeros((1, 40)), truth=truth,
             models=np.array(["starter"]), views=np.arange(1), mc_samples=0)
    with pytest.raises(SystemExit):
        main(["--from-saved", str(tmp_path / "plain.npz"), "--method", "tta"])  # the views were never read


@pytest.mark.parametrize("level, needed", [(0.5, 1), (0.8, 4), (0.9, 9), (0.95, 19), (0.99, 99), (0.985, 66)])
def test_the_scores_a_level_needs_are_the_fewest_that_give_a_finite_multiplier(level, needed):
    assert scores_needed(level) == needed
    assert math.isfinite(interval_multiplier([1.0] * needed, level, fence=None))
    if needed > 1:
        assert math.isinf(interval_multiplier([1.0] * (needed - 1), level, fence=None))


def test_scores_enough_for_the_level_are_used_alone_and_no_earlier_source_is_pooled():
    own = [0.1 * i for i in range(1, 21)]  # 20: enough for 95 % (19)
    assert pool_scores(own, [("v1", [9.0] * 50)], 0.95) == (own, [])


def test_too_few_scores_pool_whole_earlier_sources_in_order_until_the_level_is_reached():
    own = [0.1 * i for i in range(1, 13)]  # 12: 95 % needs 19
    v2, v1, starter = [0.5] * 4, [1.0] * 5, [1.5] * 200
    pooled, used = pool_scores(own, [("v2", v2), ("v1", v1), ("starter", starter)], 0.95)
    assert used == ["v2", "v1"] and len(pooled) == 12 + 4 + 5  # 21: enough, so the starter is left out
    pooled, used = pool_scores(own, [("v1", [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6])], 0.95)
    assert used == ["v1"] and math.isfinite(interval_multiplier(pooled, 0.95))  # 19 in all: just enough


def test_with_every_source_pooled_and_still_too_few_the_interval_stays_the_whole_range():
    pooled, used = pool_scores([1.0, 2.0], [("v1", [1.5, 2.5])], 0.95)
    assert used == ["v1"] and math.isinf(interval_multiplier(pooled, 0.95))


def test_on_exchangeable_readings_the_pooled_interval_holds_its_level_and_the_whole_range_is_no_longer_needed():
    from ml.interval_coverage import coverage_table

    rng = np.random.default_rng(32)
    stds = rng.uniform(3, 12, 2000)
    errors = rng.normal(0, 1, 2000) * stds  # every reading's |error| / std from one half-normal: exchangeable
    pool = conformal_scores(rng.normal(0, 1, 200) * 5.0, np.full(200, 5.0))  # an earlier model's, same law
    rows = {(r.calibration_studies, r.level): r for r in coverage_table(errors, stds, pool, repeats=200, seed=1)}
    small = rows[(12, 0.95)]
    assert small.pooled_share == 1.0 and small.own_only_width == 240.0 and small.own_only_coverage == 1.0
    assert small.median_width < 100 and abs(small.coverage - 0.95) < 0.02
    for (size, level), row in rows.items():
        assert row.coverage >= level - 0.02, (size, level, row.coverage)  # split conformal: ≥ level on average
        assert row.pooled_share == (1.0 if (size, level) == (12, 0.95) else 0.0)
