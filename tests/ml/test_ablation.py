"""The crops recipe of the paper tables (ml.ablation): its cached inputs are exactly what the full network reads at
inference, a run is a function of its seed, and the paired comparison is Student's paired t."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ml.ablation import cache_split, paired_t, train_variant_on_crops
from ml.crops import CropTrainConfig, predict_crops
from ml.data import HandDataset, collate, read_folder
from ml.experiments import VARIANTS
from ml.phantoms import generate_cohort


def test_paired_t_is_students_paired_t_over_the_seeds_both_variants_ran():
    ours = {0: 10.0, 1: 12.0, 2: 11.0, 3: 9.5, 4: 30.0}
    variant = {0: 12.5, 1: 13.0, 2: 14.5, 3: 10.0}  # seed 4 not run: not paired
    c = paired_t(ours, variant)
    expected = stats.ttest_rel([12.5, 13.0, 14.5, 10.0], [10.0, 12.0, 11.0, 9.5])
    assert c.n == 4 and c.mean_diff == pytest.approx(1.875)
    assert c.t == pytest.approx(expected.statistic) and c.p == pytest.approx(expected.pvalue)
    assert math.isnan(paired_t(ours, {0: 11.0}).t) and paired_t(ours, {0: 11.0}).mean_diff == 1.0


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation-phantoms")
    generate_cohort(out, 12, seed=900, size=256, distractors="shortcut", progress=False)
    samples = read_folder(out)
    return cache_split(samples[:6], samples[6:8], samples[8:]), samples[8:]


def test_scoring_the_cached_inputs_is_the_full_networks_inference(cached):
    split, test_samples = cached
    batch = collate([HandDataset(test_samples, split.base.work_size, augment=False)[i] for i in range(4)])
    config = CropTrainConfig(epochs=1, batch_size=4)
    for name in ("ours", "no_seg"):  # the segmenter's crops; the whole image resized
        model = train_variant_on_crops(name, VARIANTS[name], split, config, seed=1).model
        inputs = split.inputs_for(VARIANTS[name])
        with torch.no_grad():
            full = model.eval()(batch["image"], batch["sex"]).age.numpy()
        assert np.allclose(predict_crops(model, inputs.test), full, atol=0.05), name  # float16 cache only


def test_a_run_is_a_function_of_its_seed(cached):
    split, _ = cached
    config = CropTrainConfig(epochs=1, batch_size=4)
    a, b, c = (train_variant_on_crops("no_sex", VARIANTS["no_sex"], split, config, seed=s).row for s in (3, 3, 4))
    assert a["test_mae"] == b["test_mae"] != c["test_mae"]
    assert (a["recipe"], a["n_train"], a["n_val"], a["n_test"]) == ("crops", 6, 2, 4)
