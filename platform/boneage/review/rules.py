"""The disagreement rules: per-project settings with defaults, their explanations, and pure rule functions.

Settings live in `Project.settings["review"]`; anything missing takes the default below. Each rule
turns the evidence of one study (its labels, the prediction to judge it by, its masks) into at most
one Finding. The priority of every rule is in the same unit — "how many standard deviations of the
expected noise is this?" — so one queue can order them together.

Which prediction judges a study (docs/benchmarks.md, label-error detection): a model trained on a study leans
towards that study's label, wrong or not, so a *labelled* study is judged only by an out-of-fold
prediction (a model that did not train on it: k-fold models, the validation split, or labels that
arrived after training); an *unlabelled* study by the active model's prediction.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

UNSURE_CAP = 1.4
Z90 = 1.6448536269514722  # a prediction row without its interval (tests, old rows): the normal 90% one

RULES = ("model_vs_label", "label_vs_label", "mask_vs_mask", "model_unsure", "model_outside")
# model_outside ranks above every disagreement (the others stay below 2,400: 240 months over the smallest std floor, 0.1):
# a reading the model cannot vouch for is looked at before the readings it can (issue 29)
OUTSIDE_PRIORITY = 10_000.0

DEFAULTS: dict[str, Any] = {
    # min_months 20, not 12: on 1,000-study audits of two cohorts it cut false alarms at the same recall
    # (docs/benchmarks.md, "The product's own audit"); wrong labels here are 24+ months off
    "model_vs_label": {"enabled": True, "min_months": 20.0, "std_floor_months": 2.0},
    "label_vs_label": {"enabled": True, "max_months": 12.0, "reader_sd_months": 6.0},
    "mask_vs_mask": {"enabled": True, "min_dice": 0.90},
    "model_unsure": {"enabled": True, "ratio": 2.0, "max_std_months": 18.0},
    "model_outside": {"enabled": True},
    "blind": False,
    "lease_minutes": 15,
}

# Shown next to each setting on the review page (GET /api/projects/{p}/review-settings/).
EXPLANATIONS: dict[str, dict[str, str]] = {
    "model_vs_label": {
        "summary": "The study's current label lies outside the model's out-of-fold interval — the same interval "
                   "every page states, at the project's one interval level (90% unless an admin changed it on the "
                   "project settings) — and differs from the model's age by more than min_months. A calibrated model "
                   "flags about 1 correct label in 10 at 90% before min_months filters the small ones; raise the "
                   "project's level (95%, 99%) for fewer false alarms and fewer small errors caught. Catches wrong "
                   "labels and model failures. Labelled studies are only judged by models that did not train on "
                   "them (a model leans towards the labels it learned, wrong ones included).",
        "min_months": "never flag differences smaller than this, however sure the model is",
        "std_floor_months": "the smallest std used for the priority, so an over-confident model cannot blow it up",
        "priority": "|prediction − label| / max(std, std_floor_months)",
    },
    "label_vs_label": {
        "summary": "Two experts' latest ages for the same study differ by more than max_months. Usual inter-reader "
                   "disagreement in bone age is about 6 months (one SD); 12 months is twice that.",
        "max_months": "flag when the highest and lowest expert ages differ by more than this",
        "reader_sd_months": "the expected SD of one reader, used to weigh the priority",
        "priority": "spread / (√2 × reader_sd_months)",
    },
    "mask_vs_mask": {
        "summary": "The newest expert (or review) hand mask and the model's mask — or two experts' masks — overlap "
                   "with a Dice below min_dice. Catches bad masks before they teach the segmentation subnet.",
        "min_dice": "flag when Dice = 2|A∩B| / (|A| + |B|) falls below this (0..1)",
        "priority": "1.96 × (1 − Dice) / (1 − min_dice)",
    },
    "model_unsure": {
        "summary": "The model is unsure of this study relative to what it usually is: its calibrated std is more "
                   "than `ratio` times the median std it showed on its own validation studies — unusual anatomy, a "
                   "bad image, or an age band it has not learned yet. A model that is vague everywhere therefore "
                   "does not flood the queue; a model without that record (trained before it was kept) is judged by "
                   "max_std_months instead.",
        "ratio": "flag when the std exceeds this many times the model's usual (median validation) std",
        "max_std_months": "the threshold for a model without a validation record of its std",
        "priority": "1.4 × (1 − e^(−std / threshold)): always below a disagreement that passed its threshold",
    },
    "model_outside": {
        "summary": "The film is outside this model's experience: its features are farther from the model's training "
                   "films than all but 1 in 100 of the films it was validated on, or no hand was found on it. Its "
                   "reading is a guess (the interval shown is the project's whole age range), so these studies come "
                   "first in the queue: label them, or dismiss the ones that are not hand radiographs.",
        "priority": "10,000 + the distance over the model's threshold: above every other rule",
    },
    "blind": {"summary": "Blind review: the reviewer sees the image alone, enters an age, and only then sees the "
                         "labelers' and the model's values (less anchoring). Labelers never see other labelers' "
                         "values in the review queue while this is on."},
    "lease_minutes": {"summary": "A claim holds an item for this many minutes; after that anyone may take it, so "
                                 "nothing stays stuck with a reviewer who left."},
}

_BOUNDS: dict[tuple[str, str], tuple[float, float]] = {
    ("model_vs_label", "min_months"): (0.0, 240.0),
    ("model_vs_label", "std_floor_months"): (0.1, 60.0),
    ("label_vs_label", "max_months"): (0.0, 240.0),
    ("label_vs_label", "reader_sd_months"): (0.5, 60.0),
    ("mask_vs_mask", "min_dice"): (0.0, 0.999),
    ("model_unsure", "ratio"): (1.0, 20.0),
    ("model_unsure", "max_std_months"): (0.5, 240.0),
}

OPTION_BOUNDS = _BOUNDS  # public for the settings page, which puts the bounds on its inputs


class SettingsError(ValueError):
    pass


def review_settings(project) -> dict[str, Any]:
    """The project's review settings, defaults filled in."""
    stored = (project.settings or {}).get("review") or {}
    merged = copy.deepcopy(DEFAULTS)
    for key, value in stored.items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key].update(value)
        elif key in merged:
            merged[key] = value
    return merged


def merge_settings(current: dict[str, Any], patch: Any) -> dict[str, Any]:
    """`current` with `patch` applied, validated; raises SettingsError naming the bad key and why."""
    if not isinstance(patch, dict) or not patch:
        raise SettingsError("Send a JSON object with the settings to change, e.g. {\"model_unsure\": {\"max_std_months\": 20}}.")
    merged = copy.deepcopy(current)
    for key, value in patch.items():
        if key not in DEFAULTS:
            raise SettingsError(f"Unknown setting {key!r}; known: {', '.join(DEFAULTS)}.")
        if key == "blind":
            if not isinstance(value, bool):
                raise SettingsError("blind must be true or false.")
            merged[key] = value
        elif key == "lease_minutes":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 24 * 60:
                raise SettingsError("lease_minutes must be a whole number of minutes between 1 and 1440.")
            merged[key] = value
        else:
            if not isinstance(value, dict):
                raise SettingsError(f"{key} must be an object of its options, e.g. {{\"enabled\": false}}.")
            for option, option_value in value.items():
                if option not in DEFAULTS[key]:
                    raise SettingsError(f"Unknown option {key}.{option}; known: {', '.join(DEFAULTS[key])}.")
                if option == "enabled":
                    if not isinstance(option_value, bool):
                        raise SettingsError(f"{key}.enabled must be true or false.")
                else:
                    low, high = _BOUNDS[(key, option)]
                    if isinstance(option_value, bool) or not isinstance(option_value, (int, float)) \
                            or not math.isfinite(option_value) or not low <= option_value <= high:
                        raise SettingsError(f"{key}.{option} must be a number between {low:g} and {high:g}, "
                                            f"not {option_value!r}.")
                    option_value = float(option_value)
                merged[key][option] = option_value
    return merged


# --- evidence and findings ----------------------------------------------------------------------------

@dataclass
class LabelRow:
    id: int
    months: float
    source: str
    author: str | None
    author_id: int | None
    created_at: Any


@dataclass
class PredictionRow:
    id: int
    model_version_id: int
    model_version: str
    age_months: float
    std_months: float
    out_of_fold: bool
    created_at: Any
    mask: str = ""
    interval: tuple[float, float] | None = None    # the project's interval (boneage.modeling.intervals)
    interval_level: float | None = None
    usual_std: float | None = None                 # the model's median calibrated std on its validation studies
    outside: bool = False                          # outside the model's experience (ml.ood) and why
    outside_reason: str = ""
    ood_score: float | None = None
    interval_note: str = ""                        # why the interval is not calibrated (too few held-out studies …)


@dataclass
class Evidence:
    """What the rules look at for one study; gathered by boneage.review.actions.gather_evidence."""

    label: LabelRow | None                       # the current label (review > expert > import)
    expert_labels: list[LabelRow]                # each expert's newest label
    newest_review_label: LabelRow | None
    prediction: PredictionRow | None             # the one that may judge this study (see the module docstring)
    dice_model: float | None = None              # Dice(newest expert/review mask, the prediction's mask)
    dice_model_revision: int | None = None
    dice_model_review_after_prediction: bool = False
    dice_experts: float | None = None            # lowest Dice between experts' newest masks
    dice_experts_revisions: tuple[int, ...] = ()
    review_mask_after_experts: bool = False


@dataclass
class Finding:
    reason: str
    magnitude: float
    unit: str
    priority: float
    key: str
    evidence: dict[str, Any] = field(default_factory=dict)


def _label_json(label: LabelRow) -> dict[str, Any]:
    return {"id": label.id, "months": round(label.months, 2), "source": label.source, "author": label.author}


def _prediction_json(prediction: PredictionRow) -> dict[str, Any]:
    return {"id": prediction.id, "model_version": prediction.model_version_id, "model": prediction.model_version,
            "age_months": round(prediction.age_months, 2), "std_months": round(prediction.std_months, 2),
            "interval_months": list(prediction.interval) if prediction.interval else None,
            "interval_level": prediction.interval_level, "out_of_fold": prediction.out_of_fold,
            **({"interval_note": prediction.interval_note} if prediction.interval_note else {})}


def model_vs_label(ev: Evidence, cfg: dict[str, Any]) -> Finding | None:
    label, prediction = ev.label, ev.prediction
    if label is None or prediction is None:
        return None
    if label.source == "review" and label.created_at >= prediction.created_at:
        return None  # a reviewer decided this study after seeing this prediction
    delta = prediction.age_months - label.months
    std = max(prediction.std_months, 0.0)
    low, high = prediction.interval or (prediction.age_months - Z90 * std, prediction.age_months + Z90 * std)
    # The interval need not be centred on the reading (an age-aware one reaches higher where the model reads low):
    # the label must lie outside it, and differ from the reading by more than min_months.
    if low <= label.months <= high or abs(delta) <= cfg["min_months"]:
        return None
    edge = low if label.months < low else high  # the end the label lies beyond
    side = 1.0 if label.months > prediction.age_months else -1.0
    beyond = (label.months - edge) * side > 0  # the label is past that end, seen from the reading
    threshold = max(cfg["min_months"], (edge - prediction.age_months) * side) if beyond else cfg["min_months"]
    priority = abs(delta) / max(std, cfg["std_floor_months"])
    return Finding("model_vs_label", abs(delta), "months", priority, f"p{prediction.id}:l{label.id}", {
        "label": _label_json(label), "prediction": _prediction_json(prediction), "delta_months": round(delta, 2),
        "threshold_months": round(threshold, 2)})


def label_vs_label(ev: Evidence, cfg: dict[str, Any]) -> Finding | None:
    experts = ev.expert_labels
    if len(experts) < 2:
        return None
    low = min(experts, key=lambda label: label.months)
    high = max(experts, key=lambda label: label.months)
    spread = high.months - low.months
    if spread <= cfg["max_months"]:
        return None
    review = ev.newest_review_label
    if review is not None and all(review.created_at >= label.created_at for label in experts):
        return None  # a review decision came after every one of these readings
    priority = spread / (math.sqrt(2) * cfg["reader_sd_months"])
    key = "l" + ",".join(str(label.id) for label in sorted(experts, key=lambda label: label.id))
    return Finding("label_vs_label", spread, "months", priority, key[:160], {
        "labels": [_label_json(label) for label in experts], "spread_months": round(spread, 2)})


def mask_vs_mask(ev: Evidence, cfg: dict[str, Any]) -> Finding | None:
    candidates = []
    if ev.dice_model is not None and ev.dice_model < cfg["min_dice"] and not ev.dice_model_review_after_prediction:
        candidates.append((ev.dice_model, "model", f"m{ev.dice_model_revision}:p{ev.prediction.id if ev.prediction else ''}"))
    if ev.dice_experts is not None and ev.dice_experts < cfg["min_dice"] and not ev.review_mask_after_experts:
        candidates.append((ev.dice_experts, "experts", "m" + ",".join(map(str, ev.dice_experts_revisions))))
    if not candidates:
        return None
    dice, between, key = min(candidates)
    priority = 1.96 * (1 - dice) / max(1 - cfg["min_dice"], 1e-3)
    evidence: dict[str, Any] = {"dice": round(dice, 4), "between": between, "min_dice": cfg["min_dice"]}
    if between == "model" and ev.prediction is not None:
        evidence.update(revision=ev.dice_model_revision, prediction=_prediction_json(ev.prediction))
    elif between == "experts":
        evidence["revisions"] = list(ev.dice_experts_revisions)
    return Finding("mask_vs_mask", 1 - dice, "dice", priority, key[:160], evidence)


def model_unsure(ev: Evidence, cfg: dict[str, Any]) -> Finding | None:
    prediction = ev.prediction
    if prediction is None:
        return None
    threshold = cfg["ratio"] * prediction.usual_std if prediction.usual_std else cfg["max_std_months"]
    if prediction.std_months <= threshold:
        return None
    review = ev.newest_review_label
    if review is not None and review.created_at >= prediction.created_at:
        return None  # a reviewer has given the gold value since
    # Bounded below 1.4: an unsure model never outranks a disagreement that passed its own threshold (every
    # other rule starts at ≥ 1.41), so a weak model's flood of unsure items cannot bury the real ones.
    priority = UNSURE_CAP * (1 - math.exp(-prediction.std_months / threshold))
    return Finding("model_unsure", prediction.std_months, "months", priority,
                   f"p{prediction.id}", {"prediction": _prediction_json(prediction),
                                         "threshold_std_months": round(threshold, 2),
                                         "usual_std_months": prediction.usual_std})


def model_outside(ev: Evidence, cfg: dict[str, Any]) -> Finding | None:
    prediction = ev.prediction
    if prediction is None or not prediction.outside:
        return None
    review = ev.newest_review_label
    if review is not None and review.created_at >= prediction.created_at:
        return None  # a reviewer has read the film since
    score = prediction.ood_score if prediction.ood_score is not None and math.isfinite(prediction.ood_score) else 0.0
    return Finding("model_outside", score, "ratio", OUTSIDE_PRIORITY + min(score, 999.0), f"p{prediction.id}",
                   {"prediction": _prediction_json(prediction), "outside_reason": prediction.outside_reason,
                    "ood_score": round(score, 3)})


RULE_FUNCTIONS = {"model_vs_label": model_vs_label, "label_vs_label": label_vs_label,
                  "mask_vs_mask": mask_vs_mask, "model_unsure": model_unsure, "model_outside": model_outside}


def run_rules(ev: Evidence, settings: dict[str, Any]) -> dict[str, Finding]:
    """Every enabled rule's finding for this evidence, by reason."""
    found = {}
    for reason in RULES:
        cfg = settings[reason]
        if cfg.get("enabled", True):
            finding = RULE_FUNCTIONS[reason](ev, cfg)
            if finding is not None:
                found[reason] = finding
    return found


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks; b is resized (nearest) to a's shape when they differ. Two empty masks agree."""
    if a.shape != b.shape:
        ys = (np.arange(a.shape[0]) * b.shape[0] // a.shape[0]).clip(0, b.shape[0] - 1)
        xs = (np.arange(a.shape[1]) * b.shape[1] // a.shape[1]).clip(0, b.shape[1] - 1)
        b = b[ys][:, xs]
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total
