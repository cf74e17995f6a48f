"""cpu-queue tasks of the review app. Thin: take ids, call one action; idempotent (a re-run finds the same state)."""
from __future__ import annotations

from celery import shared_task

from boneage.review import actions


@shared_task(name="review.evaluate_study", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=60, time_limit=90)
def evaluate_study(study_id: int, cause: str = "retry") -> None:
    actions.evaluate_study(study_id, cause=cause)


@shared_task(name="review.evaluate_studies", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=600, time_limit=660)
def evaluate_studies(study_ids: list[int], cause: str = "prediction") -> None:
    for study_id in study_ids:
        actions.evaluate_study(study_id, cause=cause)


@shared_task(name="review.reevaluate_project", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=1800, time_limit=1900)
def reevaluate_project(project_id: int) -> None:
    actions.evaluate_project(project_id, cause="settings")
