"""The interval stated with every model reading: the project's one level (Project.interval_level, 90% unless changed),
split-conformal per model version, clipped to the project's age range.

A version trained by this code carries `metrics["interval_heldout"]` (age, label and std of every study it did not
train on): with METHOD set its interval is age-aware (ml.age_intervals: where the model reads low it reaches higher).
An older version with only `metrics["interval_scores"]` (|error| / std) keeps the one symmetric multiplier of
ml.uncertainty; one without either falls back to the normal quantile, and `calibrated` says so. A version whose
held-out scores are too few for the project's level (ml.uncertainty.scores_needed: 90 %: 9, 95 %: 19) pools them with
the held-out scores stored with it at registration (`metrics["interval_fallback"]`, `fallback_calibration`: the models it
was fine-tuned from, the shipped starter's when its line began there, then the project's other versions), whole sources
in that order until there are enough (ml.uncertainty.pool_scores); `calibration` says which was used and `note` says so
in words. Only with no source left does it state the whole age range, `calibrated` false, and its `note` says why and how
many studies the level needs (issue 32). Build an IntervalRule
once per (version, project) — e.g. once per worklist page — and apply it to each reading.

A reading outside the model's experience (ml.ood: `Prediction.outside`) gets no narrow interval: it is widened to the
project's whole age range (`widened`). Why widen and not withhold: the interval's promise is "holds the truth 90 % of
the time", and a model's calibration says nothing about films unlike those it was validated on (measured, issue 29,
ml/weights/README.md: on the 763 of 1,000 real films the phantom starter flags, its 90 % interval, 26 months wide,
held the truth for 18 %; the whole range holds it for all); the whole range is
the only interval that still keeps that promise, so every consumer keeps one meaning for one field — the pages, the
API, the SR export and the model-vs-label rule, which with a withheld interval would fall back to the narrow normal
one (age ± 1.645σ, review.rules) and accuse correct labels on the strength of a reading the model cannot vouch for.
Shown as the whole range beside "outside this model's experience" and its reason, it reads as what it is: no
information, which a user sees at a glance without a special case in every client.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from boneage.modeling.models import ModelVersion
from ml.age_intervals import MIN_POINTS, AgeInterval, Method, fit_age_interval
from ml.uncertainty import inlier_scores, interval_multiplier, pool_scores, prediction_interval, scores_needed

# None: every version keeps the one symmetric multiplier (the interval before issue 13) until the product-path
# measurement in docs/benchmarks.md (issue 13, "age-aware intervals") picks a method; `manage.py review_rescore`
# compares them on a finished benchmark project.
METHOD: Method | None = None
# which scores an interval was read from (`Interval.calibration`, `interval_calibration` in the API)
OWN, POOLED, NORMAL, WHOLE_RANGE = "own", "pooled", "normal", "whole_range"
STARTER = "the shipped starter"  # the fallback source's name for ml.checkpoint.SHIPPED_STARTER's own held-out scores


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    calibrated: bool
    widened: bool = False  # the reading is outside the model's experience: the project's whole age range
    note: str = ""  # when not calibrated on the model's own scores: why, in words (`interval_note` in the API)
    calibration: str = OWN  # OWN, POOLED (with earlier models' scores), NORMAL (none stored) or WHOLE_RANGE


@dataclass(frozen=True)
class IntervalRule:
    multiplier: float
    level: float
    calibrated: bool
    low: float
    high: float
    age_aware: AgeInterval | None = None
    note: str = ""
    calibration: str = OWN
    pooled_with: tuple[tuple[str, int], ...] = ()  # POOLED: the earlier sources used and their held-out counts

    @classmethod
    def of(cls, version_metrics: dict | None, project) -> IntervalRule:
        metrics = version_metrics or {}
        scores, heldout = metrics.get("interval_scores"), metrics.get("interval_heldout")
        level = project.interval_level
        aware = None
        if METHOD is not None and heldout and len(heldout.get("pred") or ()) >= MIN_POINTS:
            aware = fit_age_interval(heldout["pred"], heldout["label"], heldout["std"], level, METHOD)
        multiplier = interval_multiplier(scores, level)
        calibrated, note, calibration = bool(scores) or aware is not None, "", OWN
        pooled_with: tuple[tuple[str, int], ...] = ()
        if aware is None and scores and math.isinf(multiplier):  # too few held-out studies for this level
            sources = [(source["source"], source["scores"]) for source in metrics.get("interval_fallback") or ()]
            pooled, used = pool_scores(scores, sources, level)
            multiplier = interval_multiplier(pooled, level)
            own = len(inlier_scores(scores))
            pooled_with = tuple((name, len(values)) for name, values in sources if name in used)
            if math.isinf(multiplier):
                calibrated, note, calibration = False, calibration_shortfall(own, level), WHOLE_RANGE
            else:
                note, calibration = pooled_note(own, level, pooled_with), POOLED
        elif not calibrated:
            note, calibration = "This model has no held-out calibration: the interval assumes normal errors.", NORMAL
        return cls(multiplier, level, calibrated, project.min_age_months, project.max_age_months, aware, note,
                   calibration, pooled_with if calibration == POOLED else ())

    def around(self, age_months: float, std_months: float, outside: bool = False) -> Interval:
        if outside:
            return Interval(self.low, self.high, self.level, self.calibrated, widened=True, note=self.note,
                            calibration=self.calibration)
        if self.age_aware is not None:
            low, high = self.age_aware.around(age_months, std_months, self.low, self.high)
        else:
            low, high = prediction_interval(age_months, std_months, self.multiplier, self.low, self.high)
        return Interval(low, high, self.level, self.calibrated, note=self.note, calibration=self.calibration)


def pooled_note(own: int, level: float, used: tuple[tuple[str, int], ...]) -> str:
    """Which calibration an interval read from pooled scores used, in words."""
    return (f"This model's {_held_out_studies(own)} are too few for a {level:.0%} interval alone (it needs "
            f"{scores_needed(level)}), so it is calibrated on them pooled with {_sources(used)}.")


def _sources(used: tuple[tuple[str, int], ...]) -> str:
    return " and ".join(f"{name}'s {_held_out_studies(n)}" for name, n in used)


def calibration_shortfall(held_out: int, level: float) -> str:
    """Why an interval is the project's whole age range: the model's held-out studies cannot support the level."""
    return (f"{_held_out_studies(held_out)} cannot calibrate a {level:.0%} interval "
            f"(it needs {scores_needed(level)}), so it is the project's whole age range: lower the interval level "
            f"or train on more labelled studies.")


def held_out_count(version_metrics: dict | None) -> int | None:
    """How many held-out studies calibrate this version's interval (None: it has no calibration)."""
    scores = (version_metrics or {}).get("interval_scores")
    return len(inlier_scores(scores)) if scores else None


def reading_interval(age_months: float, std_months: float, version_metrics: dict | None, project,
                     outside: bool = False) -> Interval:
    return IntervalRule.of(version_metrics, project).around(age_months, std_months, outside)


def calibration_warning(version, project) -> str:
    """The settings page's warning when the active model's held-out studies cannot support the project's level."""
    held_out = held_out_count(version.metrics) if version is not None else None
    level = project.interval_level
    if held_out is None or held_out >= scores_needed(level):
        return ""
    supported = math.floor(100 * held_out / (held_out + 1))  # the highest level n held-out scores support: n/(n+1)
    rule = IntervalRule.of(version.metrics, project)
    consequence = (f"its intervals are calibrated on them pooled with {_sources(rule.pooled_with)}"
                   if rule.calibration == POOLED else
                   "every interval reads as the whole age range and the model-vs-label rule cannot flag a label")
    return (f"The active model {version.name} is calibrated on {_held_out_studies(held_out)}: a {level:.0%} interval "
            f"needs {scores_needed(level)}, so {consequence}. "
            f"{_held_out_studies(held_out)} {'supports' if held_out == 1 else 'support'} levels up to {supported}%.")


# the most held-out scores any level the settings allow (at most 99 %) needs: a fallback never stores more sources
MOST_NEEDED = scores_needed(0.99)


def fallback_calibration(project_id: int, own_scores: list[float], parent: ModelVersion | None,
                         config: dict) -> list[dict]:
    """The held-out scores a new version's interval falls back on (`metrics["interval_fallback"]`), in the order they
    are pooled: the versions it was fine-tuned from (its parent first), the shipped starter's when that line began
    there, then the project's other versions, newest first; whole sources until with its own they hold MOST_NEEDED."""
    sources: list[dict] = []

    def add(name: str, scores: list[float] | None) -> bool:  # True: enough for every level
        if scores:
            sources.append({"source": name, "scores": list(scores)})
        return len(own_scores) + sum(len(source["scores"]) for source in sources) >= MOST_NEEDED

    if len(own_scores) >= MOST_NEEDED:
        return []
    lineage, root_config, seen = parent, config, set()
    while lineage is not None and lineage.pk not in seen:
        seen.add(lineage.pk)
        if add(lineage.name, (lineage.metrics or {}).get("interval_scores")):
            return sources
        lineage, root_config = lineage.parent, lineage.config or {}
    if root_config.get("init") == "starter" and add(STARTER, _starter_scores()):
        return sources
    for version in ModelVersion.objects.filter(project_id=project_id).exclude(pk__in=seen).order_by("-created_at", "-id"):
        if add(version.name, (version.metrics or {}).get("interval_scores")):
            break
    return sources


def _starter_scores() -> list[float] | None:
    from ml.checkpoint import SHIPPED_STARTER, CheckpointError, interval_calibration_scores

    try:
        return interval_calibration_scores(SHIPPED_STARTER)
    except CheckpointError:
        return None


def _held_out_studies(n: int) -> str:
    return f"{n} held-out {'study' if n == 1 else 'studies'}"
