"""cpu-queue work after a study is committed: derived images, then the Canny mask."""
from __future__ import annotations

from celery import shared_task

from boneage.studies.derive import ensure_derived_images
from boneage.studies.models import Image


@shared_task(name="studies.post_ingest", queue="cpu", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=120, time_limit=180)
def post_ingest(study_id: int) -> None:
    image = Image.objects.filter(study_id=study_id).first()
    if image is None:  # rolled back or deleted: nothing to do
        return
    ensure_derived_images(image)
    from boneage.annotations.tasks import automask_study

    automask_study.delay(study_id)
