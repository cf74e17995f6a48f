"""What people call the settings the code names in snake_case (issue 32, row 10): the settings page labels its fields
with these and says the code's name only in a tooltip, and the explanations' mentions of an option read as its title.
"""
from __future__ import annotations

import re
from typing import Any

TITLES = {
    # review rules
    "model_vs_label": "Model vs label", "label_vs_label": "Label vs label", "mask_vs_mask": "Mask vs mask",
    "model_unsure": "Model unsure", "model_outside": "Outside the model's experience",
    # their options
    "min_months": "Smallest gap (months)", "std_floor_months": "Smallest std counted (months)",
    "max_months": "Largest spread (months)", "reader_sd_months": "One reader's SD (months)",
    "min_dice": "Smallest overlap (Dice)", "ratio": "Times the model's usual std", "max_std_months": "Std above (months)",
    "lease_minutes": "A claim lasts (minutes)",
    # training defaults
    "epochs": "Epochs", "batch_size": "Studies per step", "lr": "Learning rate", "max_seconds": "Time cap (seconds)",
    "uncertainty": "Uncertainty", "auto_retrain_after_labels": "Retrain after this many new labels",
    "next_case_strategy": "Next case",
}

_NAME = re.compile(r"\b(" + "|".join(sorted((k for k in TITLES if "_" in k), key=len, reverse=True)) + r")\b")


def title(name: str) -> str:
    """A setting's title; `rule.option` names take the option's."""
    key = name.rsplit(".", 1)[-1]
    return TITLES.get(key, key.replace("_", " ").capitalize())


def in_words(text: str) -> str:
    """An explanation with each snake_case setting it mentions replaced by its title in quotes."""
    return _NAME.sub(lambda match: f"“{TITLES[match.group(1)]}”", text or "")


def explanations_in_words(explanations: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
    """The review rules' explanations for people: each rule's and option's title, the texts with titles for names;
    the priority formulas stay as they are (an engineer's, shown on request)."""
    return {rule: {"title": title(rule), **{key: text if key == "priority" else in_words(text)
                                            for key, text in texts.items()},
                   "titles": {key: title(key) for key in texts if key not in ("summary", "priority")}}
            for rule, texts in explanations.items()}
