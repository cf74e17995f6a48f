"""MC dropout (dropout modules only; BatchNorm stays in eval mode), the std calibration and conformal intervals.

Only the MC-dropout functions need torch, and they import it themselves: the platform's web process states
intervals with the numpy half of this module and stays without torch (docs/scaling.md, "The web process").
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor, nn

Z90 = 1.6448536269514722  # two-sided 90% normal quantile
UNCERTAINTY_METHODS = ("mc", "both")  # mc: MC dropout around the plain reading; both: the TTA mean, MC and TTA spreads


def check_method(name: str) -> str:
    if name not in UNCERTAINTY_METHODS:
        raise ValueError(f"unknown uncertainty method {name!r}; known: {', '.join(UNCERTAINTY_METHODS)}")
    return name


@contextmanager
def mc_dropout(model: nn.Module, seed: int = 0) -> Iterator[None]:
    """Switch only nn.Dropout* modules to train mode, with a fixed RNG seed (same input → same std)."""
    import torch
    from torch import nn

    drops = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    previous = [m.training for m in drops]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in drops:
            m.train(True)
        try:
            yield
        finally:
            for m, was in zip(drops, previous):
                m.train(was)


def mc_std(regressor: nn.Module, crops: Tensor, sex: Tensor, samples: int) -> Tensor:
    """Std over `samples` dropout masks of the regressor's age, crops [B, 1, S, S] → [B] months.

    The crops are repeated along the batch (one forward pass); BatchNorm uses its running statistics.
    """
    import torch

    with torch.no_grad():
        return _mc_std(regressor, crops, sex, samples)


def _mc_std(regressor: nn.Module, crops: Tensor, sex: Tensor, samples: int) -> Tensor:
    from torch import nn

    if samples < 2:
        return crops.new_zeros(crops.shape[0])
    b = crops.shape[0]
    head = getattr(regressor, "head", None)
    drops = [m for m in regressor.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    embed = getattr(regressor, "embed", None)
    if embed is not None and head is not None and all(any(m is d for d in head.modules()) for m in drops):
        # Every dropout module sits in the head: run the trunk once and sample only the head (~samples× cheaper).
        feats = embed(crops)
        with mc_dropout(head):
            ages = head(feats.repeat(samples, 1), sex.repeat(samples)).view(samples, b)
    else:
        with mc_dropout(regressor):
            ages = regressor(crops.repeat(samples, 1, 1, 1), sex.repeat(samples)).age.view(samples, b)
    return ages.float().std(dim=0)


def fit_calibration(errors: np.ndarray, raw_std: np.ndarray) -> dict[str, float]:
    """std = scale · (raw_std + floor), floor = mean raw std, scale so that ±Z90·std covers 90% of |errors|.

    With no dropout signal (raw std all 0) this is a constant std equal to the 90% error quantile / Z90.
    """
    errors, raw_std = np.abs(np.asarray(errors, float)), np.asarray(raw_std, float)
    floor = float(raw_std.mean()) if raw_std.size and raw_std.mean() > 0 else 1.0
    if errors.size == 0:
        return {"scale": 1.0, "floor": floor}
    ratio = errors / (raw_std + floor)
    scale = float(np.quantile(ratio, 0.9, method="higher")) / Z90
    return {"scale": max(scale, 1e-3), "floor": floor}


def calibrated_std(raw_std: np.ndarray | float, calibration: dict[str, float]) -> np.ndarray:
    scale, floor = calibration.get("scale", 1.0), calibration.get("floor", 0.0)
    return scale * (np.asarray(raw_std, float) + floor)


def coverage90(errors: np.ndarray, std: np.ndarray) -> float:
    """Fraction of |errors| inside ±Z90·std."""
    errors = np.abs(np.asarray(errors, float))
    return float(np.mean(errors <= Z90 * np.asarray(std, float))) if errors.size else float("nan")


# --- conformal prediction intervals ------------------------------------------------------------------------------
# Split conformal with normalised scores: s_i = |error_i| / std_i on studies the model did not train on. For a new
# study, age ± q·std covers the truth with probability ≥ level when q is the ⌈(n+1)·level⌉-th smallest score
# (exchangeability; the +1 is the finite-sample correction). The std makes the width adaptive: a study the model is
# unsure of gets a wider interval.

def conformal_scores(errors: np.ndarray, std: np.ndarray) -> list[float]:
    """Sorted normalised scores |error| / std (std floored at 1e-6), rounded to 4 decimals for storage."""
    errors, std = np.abs(np.asarray(errors, float)), np.maximum(np.asarray(std, float), 1e-6)
    return [round(float(s), 4) for s in np.sort(errors / std)]


def heldout_points(pred: np.ndarray, label: np.ndarray, std: np.ndarray) -> dict[str, list[float]]:
    """The held-out readings an age-aware interval is fitted on (ml.age_intervals), rounded for storage: the model's
    age, the label and the calibrated std of every study it did not train on, in one order."""
    return {"pred": [round(float(v), 2) for v in np.asarray(pred, float)],
            "label": [round(float(v), 2) for v in np.asarray(label, float)],
            "std": [round(float(v), 3) for v in np.asarray(std, float)]}


FAR_OUT = 3.0  # Tukey's far-out fence, in interquartile ranges above the upper quartile


def inlier_scores(scores: list[float], fence: float | None = FAR_OUT) -> list[float]:
    """The scores without the far-out ones (above Q3 + fence · IQR), sorted. Why: the scores come from held-out
    studies judged against their labels, and a project's labels hold errors — the very ones the review queue looks
    for. A wrong label 24–60 months off scores 3–7 where the model's own errors score up to ~2.5, so five wrong labels
    in a hundred would widen every interval: on a 1,000-study audit with 5 % wrong labels the 90 % interval covered
    0.969 of the true ages, 0.942 with the fence (docs/benchmarks.md). For clean half-normal scores the fence sits at
    ≈ 3.6, where it leaves out 0.03 % of them. None keeps every score."""
    ordered = sorted(float(v) for v in scores)
    if fence is None or len(ordered) < 4:
        return ordered
    q1, q3 = (float(v) for v in np.quantile(ordered, [0.25, 0.75]))
    return [v for v in ordered if v <= q3 + fence * (q3 - q1)]


def interval_multiplier(scores: list[float] | None, level: float, fence: float | None = FAR_OUT) -> float:
    """q for `level` from stored scores (far-out ones left out, see inlier_scores); inf when there are too few of them
    for that level (the honest answer: the whole age range); the normal quantile when there are none (an uncalibrated
    model: said so where it is shown)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level}")
    if not scores:
        from statistics import NormalDist

        return NormalDist().inv_cdf(0.5 + level / 2)
    kept = inlier_scores(scores, fence)
    n = len(kept)
    k = math.ceil((n + 1) * level)
    return math.inf if k > n else kept[k - 1]


def scores_needed(level: float) -> int:
    """The fewest (kept) scores a split-conformal interval at `level` can be read from: the n with ceil((n+1)·level)
    <= n (90 %: 9, 95 %: 19, 99 %: 99). With fewer, interval_multiplier is inf: the interval is the whole age range."""
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level}")
    n = max(1, math.floor(level / (1 - level)) - 1)
    while math.ceil((n + 1) * level) > n:
        n += 1
    return n


def pool_scores(own: list[float], earlier: list[tuple[str, list[float]]], level: float,
                fence: float | None = FAR_OUT) -> tuple[list[float], list[str]]:
    """The scores a `level` interval is read from when a model's own held-out scores are too few for it: its own, then
    whole earlier sources (name, scores) in the order given until the pooled inliers reach scores_needed(level);
    returns the scores and the names of the sources added ([] when its own suffice). A source is taken whole: its scores
    are stored sorted, so a part of one would be its lowest. Why pooling is sound: every model's std is scaled on its
    own held-out readings so that ±Z90·std covers 90 % of them (fit_calibration), so every model's scores share their
    90th percentile by construction; how well the tails agree is measured (ml.interval_coverage, docs/benchmarks.md).
    With every source added and still too few, interval_multiplier of the result is inf."""
    pooled, used = list(own), list[str]()
    for name, scores in earlier:
        if len(inlier_scores(pooled, fence)) >= scores_needed(level):
            break
        pooled, used = pooled + list(scores), used + [name]
    return pooled, used


def prediction_interval(age: float, std: float, multiplier: float, low: float, high: float) -> tuple[float, float]:
    """age ± multiplier·std, clipped to [low, high] (the project's age range): never below 0 months."""
    half = multiplier * max(float(std), 0.0)
    lo = low if math.isinf(half) else max(low, age - half)
    hi = high if math.isinf(half) else min(high, age + half)
    return round(float(lo), 1), round(float(hi), 1)
