"""cpu-queue stages after ingest. Thin (docs/architecture.md): each calls one action of the app that owns the rows and,
when that stage is done, enqueues the next. Task names are the public contract (settings.CELERY_TASK_ROUTES)."""
from __future__ import annotations

from celery import shared_task

from boneage.annotations.actions import do_automask
from boneage.modeling.tasks import enqueue_prediction
from boneage.studies.derive import do_derive


@shared_task(name="studies.post_ingest", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=120, time_limit=180)
def post_ingest(study_id: int) -> None:
    """derive → automask."""
    if do_derive(study_id):
        automask_study.delay(study_id)


@shared_task(name="annotations.automask", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=60, time_limit=120)
def automask_study(study_id: int) -> None:
    """automask → predict (gpu queue). Idempotent: a study whose mask is done changes nothing and goes no further."""
    if do_automask(study_id):
        enqueue_prediction(study_id)
