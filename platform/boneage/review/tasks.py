"""cpu-queue tasks of the review app. Thin: take ids, call one action; idempotent (a re-run finds the same state)."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="review.evaluate_study", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=60, time_limit=90)
def evaluate_study(study_id: int, cause: str = "retry") -> None:
    from boneage.review.actions import evaluate_study as run

    run(study_id, cause=cause)


@shared_task(name="review.evaluate_studies", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=600, time_limit=660)
def evaluate_studies(study_ids: list[int], cause: str = "prediction") -> None:
    from boneage.review.actions import evaluate_study as run

    for study_id in study_ids:
        run(study_id, cause=cause)


@shared_task(name="review.reevaluate_project", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=1800, time_limit=1900)
def reevaluate_project(project_id: int) -> None:
    from boneage.review.actions import evaluate_project

    evaluate_project(project_id, cause="settings")
