"""How the review app hears that a study changed (a label, a mask, a prediction): the receivers of the core's
study_changed / studies_changed signals (connected in ReviewConfig.ready). The senders stay unaware of the rules.
"""
from __future__ import annotations

import logging

from django.db import transaction

from boneage.review import tasks
from boneage.review.actions import evaluate_study

logger = logging.getLogger(__name__)

REASONS = ("label", "mask", "prediction")


def on_study_changed(sender, study_id: int, reason: str, **kwargs) -> None:
    study_changed(study_id, reason)


def on_studies_changed(sender, study_ids: list[int], reason: str, **kwargs) -> None:
    studies_changed(study_ids, reason)


def on_settings_changed(sender, project_id: int, **kwargs) -> None:
    """New review settings: the whole project's rules re-run in a cpu-queue task once they commit."""
    transaction.on_commit(lambda: tasks.reevaluate_project.delay(project_id))


def study_changed(study_id: int, reason: str) -> None:
    """Run on commit after a label, mask or prediction of the study changed. reason: label|mask|prediction.

    The rules run right here (a few queries; a mask Dice at most two PNG reads), so the queue is current
    when the caller's response leaves. They must never break the caller's committed change: on any error
    the run is retried on the cpu queue instead.
    """
    try:
        evaluate_study(study_id, cause=reason if reason in REASONS else "change")
    except Exception:
        logger.exception("review rules failed for study %s after a %s change; retrying on the cpu queue", study_id, reason)
        try:
            tasks.evaluate_study.delay(study_id, reason)
        except Exception:
            logger.exception("could not enqueue the review rules for study %s", study_id)


def studies_changed(study_ids: list[int], reason: str) -> None:
    """Many studies changed at once (a batch re-prediction after a promotion): one cpu-queue task re-runs their
    rules, so the caller — a gpu worker — is not held up. If the broker refuses the task, the rules run here."""
    try:
        tasks.evaluate_studies.delay(list(study_ids), reason)
    except Exception:
        logger.exception("could not enqueue the review rules of %s studies; running them here", len(study_ids))
        for study_id in study_ids:
            study_changed(study_id, reason)
