"""The interval stated with every model reading: the project's one level (Project.interval_level, 90% unless changed),
split-conformal per model version (ml.uncertainty), clipped to the project's age range.

A version trained by this code carries `metrics["interval_scores"]` (|error| / std on studies it did not train on);
an older one without them falls back to the normal quantile, and `calibrated` says so. Build an IntervalRule once per
(version, project) — e.g. once per worklist page — and apply it to each reading.
"""
from __future__ import annotations

from dataclasses import dataclass

from ml.uncertainty import interval_multiplier, prediction_interval


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    calibrated: bool


@dataclass(frozen=True)
class IntervalRule:
    multiplier: float
    level: float
    calibrated: bool
    low: float
    high: float

    @classmethod
    def of(cls, version_metrics: dict | None, project) -> IntervalRule:
        scores = (version_metrics or {}).get("interval_scores")
        level = project.interval_level
        return cls(interval_multiplier(scores, level), level, bool(scores), project.min_age_months,
                   project.max_age_months)

    def around(self, age_months: float, std_months: float) -> Interval:
        low, high = prediction_interval(age_months, std_months, self.multiplier, self.low, self.high)
        return Interval(low, high, self.level, self.calibrated)


def reading_interval(age_months: float, std_months: float, version_metrics: dict | None, project) -> Interval:
    return IntervalRule.of(version_metrics, project).around(age_months, std_months)
