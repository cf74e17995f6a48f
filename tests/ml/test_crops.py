"""The crop cache (ml.crops): cached crops are the network's own crops, training on them is reproducible, and the
shipped BatchNorm statistics are an exact function of the weights and the training crops."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.crops import (
    CropTrainConfig,
    augment_crops,
    exact_bn_statistics,
    hand_crops,
    predict_crops,
    train_regressor_on_crops,
)
from ml.data import HandDataset, collate, read_folder
from ml.models import ModelConfig, build_model
from ml.models.segmentation import Detection
from ml.phantoms import generate_cohort

TINY = ModelConfig(width=0.125, seg_size=96, work_size=128, crop_size=64, dropout=0.0)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    out = tmp_path_factory.mktemp("crop-phantoms")
    generate_cohort(out, 20, seed=900, size=256, distractors="random", progress=False)
    return read_folder(out)


def test_a_cached_crop_is_exactly_the_crop_the_network_cuts_with_the_ground_truth_mask(samples):
    model = build_model(TINY)
    cache = hand_crops(samples[:4], TINY.work_size, TINY.crop_size, model.margin)
    batch = collate([HandDataset(samples[:4], TINY.work_size, augment=False)[i] for i in range(4)])
    crops, _ = model.crop(batch["image"], Detection(batch["mask"], batch["box"], torch.ones(4)))
    assert cache.crops.shape == (4, 1, 64, 64) and cache.crops.dtype == torch.float16
    assert torch.allclose(model._standardize(cache.crops.float()), crops, atol=2e-2)  # float16 storage only
    assert cache.ids == tuple(s.id for s in samples[:4])


def test_crop_augmentation_is_a_function_of_the_generator_seed(samples):
    crops = hand_crops(samples[:6], TINY.work_size, TINY.crop_size).crops.float()
    a = augment_crops(crops, torch.Generator().manual_seed(5))
    b = augment_crops(crops, torch.Generator().manual_seed(5))
    c = augment_crops(crops, torch.Generator().manual_seed(6))
    assert a.shape == crops.shape and torch.equal(a, b) and not torch.equal(a, c) and a.min() >= 0


def test_training_on_cached_crops_is_reproducible_and_ships_exact_batchnorm_statistics(samples):
    train_cache = hand_crops(samples[:16], TINY.work_size, TINY.crop_size)
    val_cache = hand_crops(samples[16:], TINY.work_size, TINY.crop_size)
    config = CropTrainConfig(epochs=2, batch_size=8, seed=3)
    results, states = [], []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(TINY)
        results.append(train_regressor_on_crops(model, train_cache, val_cache, config))
        states.append({k: v.clone() for k, v in model.regressor.state_dict().items()})
    assert results[0].val_mae == results[1].val_mae and len(results[0].curve) == 2
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    # The statistics shipped are the exact average over the training crops: recomputing them changes nothing.
    before = predict_crops(model, val_cache)
    exact_bn_statistics(model, train_cache)
    assert np.array_equal(before, predict_crops(model, val_cache))
    assert results[1].val_mae == pytest.approx(float(np.abs(before - val_cache.ages.numpy()).mean()))


def test_a_crop_cached_with_the_segmenter_is_exactly_what_the_network_feeds_its_regressor_at_inference(samples):
    torch.manual_seed(1)
    model = build_model(TINY).eval()
    cache = hand_crops(samples[:4], TINY.work_size, TINY.crop_size, model.margin, segmenter=model)
    batch = collate([HandDataset(samples[:4], TINY.work_size, augment=False)[i] for i in range(4)])
    with torch.no_grad():
        out = model(batch["image"], batch["sex"])
    assert torch.allclose(model._standardize(cache.crops.float()), out.crops, atol=2e-2)  # float16 storage only


def test_the_expected_epoch_count_is_the_budgets_not_the_caps_when_the_budget_ends_the_run_first():
    from ml.crops import _expected_epochs

    budgeted = CropTrainConfig(epochs=300, max_seconds=100.0)
    assert _expected_epochs(budgeted, done=2, elapsed=10.0) == 20   # 5 s an epoch: 20 fit in 100 s
    assert _expected_epochs(budgeted, done=30, elapsed=120.0) == 30  # past the budget: the epochs done
    assert _expected_epochs(CropTrainConfig(epochs=8, max_seconds=100.0), done=1, elapsed=1.0) == 8  # the cap binds
    assert _expected_epochs(CropTrainConfig(epochs=40), done=3, elapsed=50.0) == 40  # no budget: the cap


def test_a_weight_average_is_kept_only_where_it_reads_validation_at_least_as_well_as_the_last_weights(samples):
    train_cache = hand_crops(samples[:16], TINY.work_size, TINY.crop_size)
    val_cache = hand_crops(samples[16:], TINY.work_size, TINY.crop_size)
    torch.manual_seed(0)
    model = build_model(TINY)
    result = train_regressor_on_crops(model, train_cache, val_cache,
                                      CropTrainConfig(epochs=3, batch_size=8, seed=3, ema_decay=0.9))
    assert result.val_mae_last is not None and result.val_mae_average is not None
    assert result.val_mae == min(result.val_mae_last, result.val_mae_average)
    assert result.kept == ("average" if result.val_mae_average <= result.val_mae_last else "last")
    # what the stage reports is what the model now reads (its weights and exact statistics, whichever were kept)
    assert result.val_mae == pytest.approx(float(np.abs(predict_crops(model, val_cache) - val_cache.ages.numpy()).mean()))


def test_without_a_weight_average_the_stage_keeps_its_last_weights_and_says_so(samples):
    cache = hand_crops(samples[:8], TINY.work_size, TINY.crop_size)
    torch.manual_seed(0)
    result = train_regressor_on_crops(build_model(TINY), cache, cache, CropTrainConfig(epochs=1, batch_size=8))
    assert result.kept == "last" and result.val_mae_average is None and result.val_mae == result.val_mae_last


def test_the_channels_last_layout_reads_as_the_usual_one_and_the_stage_ends_in_the_usual_layout(samples):
    cache = hand_crops(samples[:8], TINY.work_size, TINY.crop_size)
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    crops, sex = model._standardize(cache.crops.float()), cache.sex
    with torch.no_grad():
        usual = model.regressor(crops, sex).age
        model.regressor.to(memory_format=torch.channels_last)
        last = model.regressor(crops.contiguous(memory_format=torch.channels_last), sex).age
    assert torch.allclose(usual, last, rtol=1e-4, atol=1e-3)  # the same arithmetic in another memory order
    train_regressor_on_crops(model, cache, None, CropTrainConfig(epochs=1, batch_size=8, channels_last=True))
    convs = [m.weight for m in model.regressor.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous() for w in convs)  # what is saved and loaded is in the usual layout
