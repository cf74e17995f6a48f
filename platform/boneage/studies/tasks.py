"""cpu-queue work after a study is committed: derived images, then the Canny mask."""
from __future__ import annotations

import logging

from celery import shared_task

from boneage.live.events import publish
from boneage.studies.derive import ensure_derived_images, record_failure
from boneage.studies.models import Image

logger = logging.getLogger(__name__)


@shared_task(name="studies.post_ingest", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=120, time_limit=180)
def post_ingest(study_id: int) -> None:
    image = Image.objects.filter(study_id=study_id).select_related("study").first()
    if image is None:  # rolled back or deleted: nothing to do
        return
    try:
        ensure_derived_images(image)
    except Exception as exc:  # recorded on the study, never lost in a worker log
        logger.exception("could not derive the images of study %s", study_id)
        detail = f"could not derive images: {type(exc).__name__}: {exc}"[:2000]
        record_failure(study_id, detail)
        publish(image.study.project_id, "mask.failed", study=study_id, detail=detail[:500])
        return
    from boneage.annotations.tasks import automask_study

    automask_study.delay(study_id)
