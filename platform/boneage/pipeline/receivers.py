"""The pipeline's receivers of the core's signals: each enqueues the next stage once the sender's transaction commits."""
from __future__ import annotations

from django.db import transaction

from boneage.modeling.tasks import repredict_project, train_run
from boneage.pipeline.tasks import post_ingest


def derive_on_commit(sender, study, **kwargs) -> None:
    study_id = study.pk
    transaction.on_commit(lambda: post_ingest.delay(study_id))


def repredict_on_commit(sender, version_id: int, **kwargs) -> None:
    transaction.on_commit(lambda: repredict_project.delay(version_id))


def train_on_commit(sender, run_id: int, **kwargs) -> None:
    transaction.on_commit(lambda: train_run.delay(run_id))
