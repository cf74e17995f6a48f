"""Where other apps tell the review app that a study changed (a label, a mask, a prediction).

The review app re-runs its disagreement rules here; callers stay unaware of the rules.
"""
from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

REASONS = ("label", "mask", "prediction")


def study_changed(study_id: int, reason: str) -> None:
    """Called on commit after a label, mask or prediction of the study changed. reason: label|mask|prediction.

    The rules run right here (a few queries; a mask Dice at most two PNG reads), so the queue is current
    when the caller's response leaves. They must never break the caller's committed change: on any error
    the run is retried on the cpu queue instead.
    """
    from boneage.review.actions import evaluate_study

    try:
        evaluate_study(study_id, cause=reason if reason in REASONS else "change")
    except Exception:
        logger.exception("review rules failed for study %s after a %s change; retrying on the cpu queue", study_id, reason)
        try:
            from boneage.review.tasks import evaluate_study as task

            task.delay(study_id, reason)
        except Exception:
            logger.exception("could not enqueue the review rules for study %s", study_id)


def studies_changed(study_ids: list[int], reason: str) -> None:
    """Many studies changed at once (a batch re-prediction after a promotion): one cpu-queue task re-runs their
    rules, so the caller — a gpu worker — is not held up. If the broker refuses the task, the rules run here."""
    try:
        from boneage.review.tasks import evaluate_studies

        evaluate_studies.delay(list(study_ids), reason)
    except Exception:
        logger.exception("could not enqueue the review rules of %s studies; running them here", len(study_ids))
        for study_id in study_ids:
            study_changed(study_id, reason)
