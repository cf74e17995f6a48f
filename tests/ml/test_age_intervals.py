"""Age-aware intervals (ml.age_intervals): a model that reads old hands low and errs more with age still gets its
stated coverage on new studies, its interval reaches up where it reads low, never leaves the age range, and a band
with too few scores for the level says it borrowed the pooled multipliers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ml.age_intervals import Method, conformal_quantile, coverage, fit_age_interval, theil_sen

METHODS = [Method(), Method(signed=True), Method(bands=(76.0, 152.0)), Method(correct_bias=True),
           Method(correct_bias=True, signed=True, bands=(76.0, 152.0))]


def biased_model(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True ages, readings and the model's std: it regresses towards 114 months (a 220-month hand reads ~204) and its
    error grows with age; its std follows that growth only roughly."""
    truth = rng.uniform(0.0, 228.0, n)
    spread = 4.0 + 0.05 * truth
    reading = 114.0 + 0.85 * (truth - 114.0) + rng.normal(0.0, spread)
    return truth, reading, spread * rng.uniform(0.7, 1.3, n)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_a_biased_heteroscedastic_model_covers_about_90_percent_of_new_studies(method):
    rng = np.random.default_rng(13)
    truth, reading, std = biased_model(rng, 400)            # the version's held-out studies
    interval = fit_age_interval(reading, truth, std, 0.9, method)
    new_truth, new_reading, new_std = biased_model(rng, 5000)  # studies it has never seen
    assert abs(coverage(interval, new_reading, new_truth, new_std, 0.0, 240.0) - 0.90) <= 0.05


def test_bias_correction_reaches_up_where_the_model_reads_low_and_down_where_it_reads_high():
    truth, reading, std = biased_model(np.random.default_rng(1), 400)
    interval = fit_age_interval(reading, truth, std, 0.9, Method(correct_bias=True))
    assert 1.1 < interval.slope < 1.25 and interval.n_fit == 200 and interval.n_calibration == 200
    old_lo, old_hi = interval.around(200.0, 10.0, 0.0, 240.0)
    young_lo, young_hi = interval.around(20.0, 5.0, 0.0, 240.0)
    assert (old_lo + old_hi) / 2 > 205.0 and (young_lo + young_hi) / 2 < 15.0  # a line through (114, 114), steeper


def test_the_bias_line_shrugs_off_a_few_wrong_labels():
    x = np.arange(40, dtype=float) * 5.0
    y = 10.0 + 1.2 * x
    y[[3, 17, 30]] += [60.0, -45.0, 50.0]  # three labels moved by 45–60 months
    intercept, slope = theil_sen(x, y)
    assert slope == pytest.approx(1.2, abs=0.02) and intercept == pytest.approx(10.0, abs=2.0)


def test_signed_multipliers_are_one_sided_conformal_quantiles_at_half_the_miss_rate_each():
    reading = np.full(39, 100.0)
    label = reading + np.arange(1, 40, dtype=float)  # the model always reads low: residuals +1 … +39, std 1
    interval = fit_age_interval(reading, label, np.ones(39), 0.9, Method(signed=True))
    [band] = interval.bands
    assert band.above == 38.0   # ⌈40 · 0.95⌉ = 38th smallest of r
    assert band.below == -2.0   # 38th smallest of −r = −2: the interval starts above the reading
    assert interval.around(100.0, 1.0, 0.0, 240.0) == (102.0, 138.0)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_no_interval_leaves_the_age_range_even_with_too_few_scores_or_a_wild_reading(method):
    rng = np.random.default_rng(5)
    for n in (3, 25, 400):
        truth, reading, std = biased_model(rng, n)
        interval = fit_age_interval(reading, truth, std, 0.9, method)
        for age in (-30.0, 0.0, 3.0, 114.0, 225.0, 260.0):
            for s in (0.0, 2.0, 40.0):
                lo, hi = interval.around(age, s, 0.0, 228.0)
                assert 0.0 <= lo <= hi <= 228.0


def test_a_band_with_too_few_scores_for_the_level_borrows_the_pooled_multipliers_and_says_so():
    rng = np.random.default_rng(7)
    truth, reading, std = biased_model(rng, 200)
    young = reading < 20.0
    reading, truth, std = np.r_[reading[~young], reading[young][:3]], np.r_[truth[~young], truth[young][:3]], \
        np.r_[std[~young], std[young][:3]]
    interval = fit_age_interval(reading, truth, std, 0.9, Method(bands=(20.0, 120.0)))
    first, middle, last = interval.bands
    pooled = conformal_quantile(np.abs(truth - reading) / std, 0.9)
    assert first.n == 3 and first.fallback and first.below == first.above == pooled  # ⌈4 · 0.9⌉ = 4 > 3 scores
    assert not middle.fallback and not last.fallback and middle.above != pooled
    assert interval.band_of(10.0) is first and interval.band_of(500.0) is last


def test_too_few_scores_anywhere_give_the_whole_age_range_not_a_made_up_width():
    interval = fit_age_interval([100.0, 110.0], [101.0, 118.0], [5.0, 5.0], 0.9, Method(bands=(120.0,)))
    assert all(math.isinf(band.below) for band in interval.bands)
    assert interval.around(105.0, 5.0, 0.0, 228.0) == (0.0, 228.0)


def test_a_level_outside_0_1_or_misaligned_inputs_are_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        fit_age_interval([1.0], [1.0], [1.0], 1.0)
    with pytest.raises(ValueError, match="one entry per"):
        fit_age_interval([1.0, 2.0], [1.0], [1.0], 0.9)
