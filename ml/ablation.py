"""The `crops` recipe of the paper tables (`python -m ml.experiments paper-tables --recipe crops`) and the paired
comparisons both recipes report.

The recipe is the product's phase 1 (ml/weights/README.md, `ml.starter pretrain --segmenter`): a frozen segmenter —
the shipped starter's, trained on phantom seeds 61001/61005, disjoint from the tables' data; the paper's pre-trained
Mask R-CNN — cuts every image's hand crop once with its own detection (`ml.crops.hand_crops`), and each variant's
regressor trains from scratch on the cached crops with exact BatchNorm statistics (`train_regressor_on_crops`).
Variants without the segmentation subnet (`no_seg`, `vgg16`) see the whole image resized to the crop size, exactly
as `UnifiedNet.crop` feeds it. With the segmenter frozen, scoring the cached test crops is the full pipeline's
inference (tests/ml/test_ablation.py checks that), so the whole run caches once and trains only regressors.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ml.checkpoint import load_checkpoint, resolve_checkpoint
from ml.crops import CropCache, CropTrainConfig, hand_crops, predict_crops, train_regressor_on_crops
from ml.data import Sample, load_sample
from ml.models import ModelConfig, UnifiedNet, build_model
from ml.starter import adopt_segmenter
from ml.train import _set_age_stats


@dataclass(frozen=True)
class PairedComparison:
    """`variant − ours` test MAE over the seeds both ran (paired: same seed = same initialisation and batches)."""
    n: int
    mean_diff: float
    sd_diff: float
    t: float          # mean / (sd / √n); nan with fewer than 2 pairs or no spread
    p: float          # two-sided, Student t with n − 1 degrees of freedom


def paired_t(ours: dict[int, float], variant: dict[int, float]) -> PairedComparison:
    seeds = sorted(set(ours) & set(variant))
    diffs = np.array([variant[s] - ours[s] for s in seeds], dtype=float)
    if len(diffs) < 2:
        return PairedComparison(len(diffs), float(diffs.mean()) if len(diffs) else math.nan, math.nan, math.nan,
                                math.nan)
    from scipy import stats

    sd = float(diffs.std(ddof=1))
    t = float(diffs.mean() / (sd / math.sqrt(len(diffs)))) if sd > 0 else math.nan
    p = float(2 * stats.t.sf(abs(t), len(diffs) - 1)) if sd > 0 else math.nan
    return PairedComparison(len(diffs), float(diffs.mean()), sd, t, p)


def whole_images(samples: list[Sample], work_size: int, crop_size: int, batch_size: int = 32) -> CropCache:
    """Each sample decoded at `work_size` and resized to `crop_size`: the input of a model without the segmentation
    subnet, resized exactly as `UnifiedNet.crop` does (unstandardised, like the hand crops)."""
    images = []
    for k in range(0, len(samples), batch_size):
        batch = torch.stack([load_sample(s, work_size)[0] for s in samples[k:k + batch_size]])
        if batch.shape[-1] != crop_size:
            batch = F.interpolate(batch, size=(crop_size, crop_size), mode="bilinear", align_corners=False,
                                  antialias=True)
        images.append(batch.half())
    ages = [float(s.age_months) for s in samples]
    sexes = [0.0 if s.male is None else (1.0 if s.male else -1.0) for s in samples]
    return CropCache(torch.cat(images), torch.tensor(ages), torch.tensor(sexes), tuple(s.id for s in samples))


@dataclass(frozen=True)
class InputSet:
    train: CropCache
    val: CropCache
    test: CropCache


@dataclass(frozen=True)
class CachedSplit:
    """Everything a regressor needs, cut once: the segmenter's crops and the whole images of each split."""
    base: ModelConfig            # the segmenter checkpoint's geometry; every variant is a replace() of it
    crops: InputSet
    whole: InputSet
    train_samples: list[Sample]  # for the age normalisation of each fresh head
    segmenter_from: Path
    seconds: float

    def inputs_for(self, variant: dict) -> InputSet:
        return self.whole if "segmenter" in variant and variant["segmenter"] is None else self.crops


def frozen_segmenter_model(segmenter_from: str | Path) -> tuple[UnifiedNet, ModelConfig]:
    """A network at the segmenter checkpoint's geometry carrying its segmenter (the `pretrain --segmenter` path)."""
    path = resolve_checkpoint(segmenter_from)
    base = load_checkpoint(path).model_config
    model = build_model(base)
    adopt_segmenter(model, path)
    return model.eval(), base


def cache_split(train_s: list[Sample], val_s: list[Sample], test_s: list[Sample],
                segmenter_from: str | Path = "starter") -> CachedSplit:
    t0 = time.perf_counter()
    model, base = frozen_segmenter_model(segmenter_from)
    crops = InputSet(*(hand_crops(s, base.work_size, base.crop_size, model.margin, segmenter=model)
                       for s in (train_s, val_s, test_s)))
    whole = InputSet(*(whole_images(s, base.work_size, base.crop_size) for s in (train_s, val_s, test_s)))
    return CachedSplit(base, crops, whole, train_s, resolve_checkpoint(segmenter_from), time.perf_counter() - t0)


def build_variant(cached: CachedSplit, variant: dict, seed: int) -> UnifiedNet:
    """A fresh, seeded network for `variant`; segmented variants carry the frozen segmenter (inference-ready)."""
    torch.manual_seed(seed)
    config = replace(cached.base, **variant)
    model = build_model(config)
    if model.segmenter is not None:
        adopt_segmenter(model, cached.segmenter_from)
    _set_age_stats(model, cached.train_samples)
    return model


@dataclass
class VariantRun:
    row: dict          # one line of docs/paper-tables-rows.json
    model: UnifiedNet  # inference-ready: segmented variants carry the frozen segmenter


def train_variant_on_crops(name: str, variant: dict, cached: CachedSplit, config: CropTrainConfig,
                           seed: int) -> VariantRun:
    """Train one variant's regressor from scratch on the cached inputs; score it on the test split."""
    t0 = time.perf_counter()
    model = build_variant(cached, variant, seed)
    inputs = cached.inputs_for(variant)
    result = train_regressor_on_crops(model, inputs.train, inputs.val, replace(config, seed=seed))
    test_mae = float(np.abs(predict_crops(model, inputs.test) - inputs.test.ages.numpy()).mean())
    row = {"recipe": "crops", "variant": name, "seed": seed, "test_mae": test_mae, "val_mae": result.val_mae,
           "epochs": result.epochs, "seconds": time.perf_counter() - t0, "images_per_s": result.images_per_s,
           "n_train": len(inputs.train), "n_val": len(inputs.val), "n_test": len(inputs.test)}
    return VariantRun(row, model)

