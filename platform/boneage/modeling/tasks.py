"""gpu-queue tasks of the modeling app. Thin: take ids, call one action (docs/architecture.md). Tasks import the
actions, never the other way round: an action that wants a task run sends a signal (boneage.core.signals) and the
pipeline enqueues it.

All are idempotent (they lock their row and check its state), so acks_late + reject_on_worker_lost
is safe: a task whose worker died is delivered again and either finishes the job or finds it done.
"""
from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import connection, transaction

from boneage.core.events import publish
from boneage.modeling import conf, reprediction
from boneage.modeling.actions import do_predict_study, do_rank_project, do_repredict_project
from boneage.modeling.coreset import take_pending
from boneage.modeling.training import reap_stale_runs, run_training
from boneage.studies.models import Study

logger = logging.getLogger(__name__)


@shared_task(name="modeling.predict_study", bind=True, acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=conf.PREDICT_SOFT_LIMIT_S, time_limit=conf.PREDICT_HARD_LIMIT_S,
             max_retries=conf.PREDICT_TIME_LIMIT_RETRIES)
def predict_study(self, study_id: int, version_id: int | None = None) -> None:
    try:
        do_predict_study(study_id, version_id)
    except SoftTimeLimitExceeded:
        # A worker starved of CPU (a training run beside it) ends a prediction at its time limit although the film is
        # fine: it is tried again later, and only then reported failed (it used to end silently: no reading, no retry).
        if self.request.retries < self.max_retries:
            raise self.retry(countdown=conf.PREDICT_RETRY_AFTER_S * (self.request.retries + 1)) from None
        project_id = Study.objects.filter(pk=study_id).values_list("project_id", flat=True).first()
        if project_id:
            publish(project_id, "prediction.failed", study=study_id, reason="time_limit",
                    detail=f"The prediction took longer than {conf.PREDICT_SOFT_LIMIT_S} s, "
                           f"{self.max_retries + 1} times.")


def enqueue_prediction(study_id: int, version_id: int | None = None) -> None:
    """Predict the study once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: predict_study.delay(study_id, version_id))


@shared_task(name="modeling.train", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=max(30, settings.TRAINING_HARD_TIME_LIMIT_S - 30),
             time_limit=settings.TRAINING_HARD_TIME_LIMIT_S)
def train_run(run_id: int) -> None:
    run_training(run_id)


@shared_task(name="modeling.repredict", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=conf.REPREDICT_SOFT_LIMIT_S, time_limit=conf.REPREDICT_HARD_LIMIT_S)
def repredict_project(version_id: int) -> None:
    do_repredict_project(version_id)  # ends with the new next-case scores


@shared_task(name="modeling.rank_coreset", acks_late=True, reject_on_worker_lost=True, soft_time_limit=300,
             time_limit=360)
def rank_coreset(project_id: int) -> None:
    """cpu queue (numpy only): the project's core-set order after labels or predictions (boneage.modeling.coreset)."""
    take_pending(project_id)  # before reading: a label that commits from here on schedules the next ranking
    do_rank_project(project_id)


def _reap_once() -> None:
    try:
        reaped = reap_stale_runs()
        if reaped:
            logger.warning("marked %s training run(s) of a dead worker as failed", reaped)
        for version in reprediction.reap_stale():
            logger.warning("marked the re-prediction with %s of a dead worker as failed", version.name)
            publish(version.project_id, "model.repredict.failed", model_version=version.pk,
                    detail=version.reprediction.get("error", ""))
    except Exception:
        logger.exception("could not check for training runs or re-predictions of dead workers")
    finally:
        connection.close()  # this thread's own connection: never left open between checks


def _watchdog(stop: threading.Event) -> None:
    period = max(1.0, conf.stale_seconds() / 4)
    while not stop.wait(period):
        _reap_once()


_watchdogs: list[threading.Event] = []


@worker_ready.connect
def _start_watchdog(sender=None, **kwargs) -> None:
    """Every worker watches for training runs and re-predictions whose worker died (heartbeat gone) and ends them FAILED:
    once at start, then every stale/4 seconds for as long as it lives."""
    stop = threading.Event()
    _watchdogs.append(stop)
    def watch() -> None:
        _reap_once()
        _watchdog(stop)

    thread = threading.Thread(target=watch, daemon=True, name="training-watchdog")
    thread.start()


@worker_shutdown.connect
def _stop_watchdog(sender=None, **kwargs) -> None:
    while _watchdogs:
        _watchdogs.pop().set()
