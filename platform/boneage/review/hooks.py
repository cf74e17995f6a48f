"""Where other apps tell the review app that a study changed (a label, a mask, a prediction).

The review app re-runs its disagreement rules here; callers stay unaware of the rules.
"""
from __future__ import annotations


def study_changed(study_id: int, reason: str) -> None:
    """Called on commit after a label, mask or prediction of the study changed. reason: label|mask|prediction."""
