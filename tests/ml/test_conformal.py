"""Conformal intervals: the finite-sample quantile, coverage by construction on exchangeable data, adaptivity,
clipping to the age range."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ml.uncertainty import conformal_scores, interval_multiplier, prediction_interval


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
