"""The promotion gate: is a candidate better than the active model on the same held-out studies, by a margin its
uncertainty supports?

Paired comparison: per held-out study, gain = |active error| − |candidate error| (months, positive = the candidate
is closer to the label). The mean gain's bootstrap interval over the studies (seeded, so a decision can be
replayed) must lie wholly above `min_gain_months`, on at least `min_held_out` studies. An equal candidate (a
fine-tune that kept its start weights) has gain 0 everywhere and never passes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class GatePolicy:
    min_held_out: int = 20
    confidence: float = 0.9
    min_gain_months: float = 0.0


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str               # better | not_better | too_few_held_out | first_model
    n_held_out: int
    candidate_mae: float | None
    active_mae: float | None
    mean_gain_months: float | None
    interval_months: tuple[float, float] | None
    confidence: float
    summary: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["interval_months"] = list(self.interval_months) if self.interval_months else None
        return data


def bootstrap_interval(gains: np.ndarray, confidence: float, seed: int = 0,
                       resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of `gains` (resampling studies with replacement)."""
    rng = np.random.default_rng(seed)
    means = gains[rng.integers(0, len(gains), size=(resamples, len(gains)))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def decide(candidate_errors: Sequence[float], active_errors: Sequence[float] | None, policy: GatePolicy, *,
           candidate_name: str = "the candidate", active_name: str = "the active model", seed: int = 0) -> GateDecision:
    """The gate's decision from absolute errors (months) on the same held-out studies, in the same order.

    `active_errors` None: there is no active model, the candidate is the first and passes."""
    candidate = np.abs(np.asarray(candidate_errors, dtype=np.float64))
    n = len(candidate)
    candidate_mae = round(float(candidate.mean()), 3) if n else None
    level = f"{policy.confidence:.0%}"
    if active_errors is None:
        return GateDecision(True, "first_model", n, candidate_mae, None, None, None, policy.confidence,
                            f"{candidate_name} is the project's first model")
    active = np.abs(np.asarray(active_errors, dtype=np.float64))
    if len(active) != n:
        raise ValueError(f"paired comparison needs the same studies: {n} candidate errors, {len(active)} active")
    active_mae = round(float(active.mean()), 3) if n else None
    if n < policy.min_held_out:
        return GateDecision(False, "too_few_held_out", n, candidate_mae, active_mae, None, None, policy.confidence,
                            f"no promotion: only {n} held-out studies, the gate needs {policy.min_held_out}; "
                            f"kept {active_name}")
    gains = active - candidate
    low, high = bootstrap_interval(gains, policy.confidence, seed)
    mean_gain = round(float(gains.mean()), 3)
    interval = (round(low, 3), round(high, 3))
    passed = low > policy.min_gain_months
    comparison = (f"on {n} held-out studies {candidate_name} {candidate_mae:.2f} vs {active_name} {active_mae:.2f} "
                  f"months, gain {mean_gain:+.2f} ({level} interval {interval[0]:+.2f} to {interval[1]:+.2f})")
    if passed:
        return GateDecision(True, "better", n, candidate_mae, active_mae, mean_gain, interval, policy.confidence,
                            f"better: {comparison}")
    return GateDecision(False, "not_better", n, candidate_mae, active_mae, mean_gain, interval, policy.confidence,
                        f"no improvement, kept {active_name}: {comparison}")
