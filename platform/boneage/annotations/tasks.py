"""The paper's Canny hand mask for every new study (cpu queue); a failure is recorded on the study."""
from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction

from boneage.annotations.actions import do_save_mask
from boneage.annotations.models import MaskSource
from boneage.live.events import publish
from boneage.studies.derive import load_unit
from boneage.studies.models import Study

logger = logging.getLogger(__name__)


@shared_task(name="annotations.automask", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=60, time_limit=120)
def automask_study(study_id: int) -> None:
    with transaction.atomic():
        study = Study.objects.select_for_update(of=("self",)).filter(pk=study_id).select_related("image").first()
        if study is None or study.automask_state == "done":  # idempotent: a second run changes nothing
            return
        study.automask_state = "running"
        study.save(update_fields=["automask_state"])
    try:
        from ml.automask import automask

        result = automask(load_unit(study.image))
        with transaction.atomic():  # the mask and "done" commit together, before any on-commit hook runs
            do_save_mask(study, result.mask > 0, source=MaskSource.CANNY, quality=float(result.quality),
                         note="Canny automask", enforce_base=False)
            Study.objects.filter(pk=study_id).update(automask_state="done", automask_error="")
    except Exception as exc:
        logger.exception("automask failed for study %s", study_id)
        Study.objects.filter(pk=study_id).update(automask_state="failed", automask_error=f"{type(exc).__name__}: {exc}"[:2000])
        publish(study.project_id, "mask.failed", study=study_id, detail=str(exc)[:500])
        return
    _after_automask(study_id)


def _after_automask(study_id: int) -> None:
    """Hand the study on to the gpu queue (the pipeline's next stage: inference)."""
    from boneage.modeling.tasks import enqueue_prediction

    enqueue_prediction(study_id)
