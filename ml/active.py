"""Active learning: which unlabelled study to label next, and the label-efficiency experiment.

Strategies (higher score = ask for a label sooner):
- `uncertainty`: the model's MC-dropout std in months (calibrated);
- `random`: a stable pseudo-random number per (study, seed) — the baseline;
- `diverse`: uncertainty × novelty, novelty = distance in (predicted age, sex) space to the nearest
  labelled study (so a batch does not spend its labels on near-duplicates of what is known).

    python -m ml.active simulate [--quick] [--seeds 3] [--out docs/active-learning.png]
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

STRATEGIES = ("uncertainty", "random", "diverse")
AGE_SCALE_MONTHS = 24.0   # one unit of novelty = two years of predicted age
SEX_DISTANCE = 1.0        # a male and a female of the same age are one unit apart


def stable_random(key: str, seed: int = 0) -> float:
    """A number in [0, 1) that depends only on (key, seed): the random strategy, reproducible."""
    return int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / float(16 ** 12)


def features(pred_age: Sequence[float], male: Sequence[bool | None]) -> np.ndarray:
    """(predicted age / AGE_SCALE, sex ∈ {-½, 0, ½}·SEX_DISTANCE) per study → [N, 2]."""
    age = np.asarray(pred_age, float) / AGE_SCALE_MONTHS
    sex = np.array([0.0 if m is None else (0.5 if m else -0.5) for m in male]) * SEX_DISTANCE
    return np.stack([age, sex], axis=1) if len(age) else np.zeros((0, 2))


def novelty(candidates: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """Distance of each candidate to its nearest labelled point (all ones when nothing is labelled)."""
    if len(labelled) == 0:
        return np.ones(len(candidates))
    d = np.sqrt(((candidates[:, None, :] - labelled[None, :, :]) ** 2).sum(-1))
    return d.min(axis=1)


def scores(strategy: str, keys: Sequence[str], std: Sequence[float], feats: np.ndarray | None = None,
           labelled_feats: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """One score per candidate for `strategy` (see the module docstring)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    std = np.asarray(std, float)
    if strategy == "random":
        return np.array([stable_random(k, seed) for k in keys])
    if strategy == "uncertainty":
        return std
    assert feats is not None
    lab = labelled_feats if labelled_feats is not None else np.zeros((0, 2))
    return std * (0.5 + np.minimum(novelty(feats, lab), 2.0))


def select_batch(strategy: str, keys: Sequence[str], std: Sequence[float], feats: np.ndarray,
                 labelled_feats: np.ndarray, k: int, seed: int = 0) -> list[int]:
    """Indices of the k candidates to label next. `diverse` is greedy: each pick counts as labelled for the next."""
    k = min(k, len(keys))
    if strategy != "diverse":
        s = scores(strategy, keys, std, seed=seed)
        return [int(i) for i in np.argsort(-s, kind="stable")[:k]]
    chosen: list[int] = []
    lab = np.asarray(labelled_feats, float).reshape(-1, 2)
    std = np.asarray(std, float)
    available = np.ones(len(keys), bool)
    for _ in range(k):
        s = scores("diverse", keys, std, feats, lab)
        s[~available] = -np.inf
        i = int(np.argmax(s))
        chosen.append(i)
        available[i] = False
        lab = np.vstack([lab, feats[i:i + 1]])
    return chosen
