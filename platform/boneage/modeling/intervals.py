"""The interval stated with every model reading: the project's one level (Project.interval_level, 90% unless changed),
split-conformal per model version (ml.uncertainty), clipped to the project's age range.

A version trained by this code carries `metrics["interval_scores"]` (|error| / std on studies it did not train on);
an older one without them falls back to the normal quantile, and `calibrated` says so.
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


def reading_interval(age_months: float, std_months: float, version_metrics: dict | None, project) -> Interval:
    scores = (version_metrics or {}).get("interval_scores")
    level = project.interval_level
    multiplier = interval_multiplier(scores, level)
    low, high = prediction_interval(age_months, std_months, multiplier, project.min_age_months, project.max_age_months)
    return Interval(low, high, level, bool(scores))
