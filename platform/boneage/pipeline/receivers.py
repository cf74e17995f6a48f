"""The pipeline's receivers of the core's signals: each enqueues the next stage once the sender's transaction commits."""
from __future__ import annotations

import logging

from django.db import transaction

from boneage.modeling.coreset import schedule_ranking
from boneage.modeling.tasks import enqueue_prediction, rank_coreset, repredict_project, train_run
from boneage.pipeline.tasks import post_ingest
from boneage.studies.models import Study

logger = logging.getLogger(__name__)


def derive_on_commit(sender, study, **kwargs) -> None:
    study_id = study.pk
    transaction.on_commit(lambda: post_ingest.delay(study_id))


def predict_after_reframe(sender, study_id: int, read_again: bool = True, **kwargs) -> None:
    """A study read in a new frame (annotations.frame) is predicted again once the change commits."""
    if read_again:
        enqueue_prediction(study_id)


def repredict_on_commit(sender, version_id: int, **kwargs) -> None:
    transaction.on_commit(lambda: repredict_project.delay(version_id))


def train_on_commit(sender, run_id: int, **kwargs) -> None:
    transaction.on_commit(lambda: train_run.delay(run_id))


def rank_after_change(sender, study_id: int, reason: str, **kwargs) -> None:
    """A label or a new prediction changes the core-set order: re-rank the project on the cpu queue (at most one
    waiting per project). study_changed is sent on commit; a broker that refuses must not fail the caller's change."""
    if reason not in ("label", "prediction"):
        return
    project_id = Study.objects.filter(pk=study_id).values_list("project_id", flat=True).first()
    if project_id is None:
        return
    try:
        schedule_ranking(project_id, lambda pk: rank_coreset.apply_async((pk,), countdown=1))
    except Exception:
        logger.exception("could not schedule the core-set ranking of project %s after a %s", project_id, reason)
