"""A worker killed in the middle of a training run or a re-prediction: either ends FAILED soon after; a training run
registers nothing half-written, a re-prediction keeps the earlier model's readings."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from boneage.modeling.models import ModelVersion, TrainingRun
from django.core.files.storage import default_storage
from django.db import connection

from tests.boneage.modeling.conftest import wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[3]
HEARTBEAT_S, STALE_S = 1, 4


def start_worker(settings) -> subprocess.Popen:
    """A real `celery -A boneage worker` process on the test database, broker and media folder."""
    db = connection.settings_dict
    env = {**os.environ, "BONEAGE_PROFILE": "test", "REDIS_URL": settings.REDIS_URL,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "MEDIA_ROOT": str(settings.MEDIA_ROOT), "MODELING_HEARTBEAT_S": str(HEARTBEAT_S),
           "MODELING_STALE_S": str(STALE_S), "PYTHONPATH": os.pathsep.join([str(REPO / "platform"), str(REPO)])}
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "boneage", "worker", "-Q", "gpu", "-P", "solo",
                             "--loglevel", "WARNING", "-n", f"crash-{uuid.uuid4().hex[:6]}@%h"],
                            cwd=REPO, env=env, start_new_session=True)


def stop(process: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_sigkill_in_the_middle_of_training_ends_the_run_failed_and_registers_nothing(
        tiny_project, owner, add_studies, settings):
    import redis
    from boneage.modeling.training import do_start_training

    add_studies(tiny_project, owner, 8)
    config = {**tiny_project.settings["training"], "epochs": 200, "batch_size": 2, "init": "fresh"}
    run = do_start_training(tiny_project, actor=owner, config=config)
    worker = start_worker(settings)
    second = None
    try:
        wait_for(lambda: (TrainingRun.objects.get(pk=run.pk).progress or {}).get("step", 0) > 0, 120,
                 "the worker to be in the middle of training")
        stop(worker, signal.SIGKILL)  # the whole worker, like an OOM kill or a lost machine
        assert TrainingRun.objects.get(pk=run.pk).state == "running"
        second = start_worker(settings)  # the next worker to start watches for runs of dead workers
        ended = wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, state="failed").first(), STALE_S + 60,
                         "the run to end failed")
        assert "stopped" in ended.error and "no heartbeat" in ended.error
        assert not ModelVersion.objects.exists()
        assert not Path(default_storage.path(f"models/{tiny_project.pk}/run-{run.pk}.pt")).exists()
    finally:
        stop(worker, signal.SIGKILL)
        if second is not None:
            stop(second)
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("cpu", "gpu")


def test_sigkill_in_the_middle_of_a_re_prediction_ends_it_failed_with_why_and_the_old_readings_stay(
        project, owner, member, add_studies, register_model, settings, api_as):
    import redis
    from boneage.modeling.actions import do_promote, do_repredict_project
    from boneage.modeling.models import Prediction
    from django.db import transaction

    v1 = register_model(project, name="v1")
    studies = add_studies(project, owner, 3, labelled=False)
    assert do_repredict_project(v1.pk) == 3
    v2 = register_model(project, status="candidate", name="v2")
    do_promote(v2)  # its re-prediction is queued for the gpu worker
    worker = start_worker(settings)
    second = None
    try:
        # This test's open transaction holds the key of v2's first reading: the worker's insert of it waits, so the
        # worker is caught mid-run however fast it reads, and is killed there.
        with transaction.atomic():
            Prediction.objects.create(study=studies[0], model_version=v2, age_months=1.0, std_months=1.0)
            wait_for(lambda: ModelVersion.objects.get(pk=v2.pk).reprediction.get("state") == "running", 120,
                     "the worker to be in the middle of the re-prediction")
            stop(worker, signal.SIGKILL)
            transaction.set_rollback(True)
        assert ModelVersion.objects.get(pk=v2.pk).reprediction["state"] == "running"
        second = start_worker(settings)  # the next worker to start watches for re-predictions of dead workers
        ended = wait_for(lambda: ModelVersion.objects.filter(pk=v2.pk, reprediction__state="failed").first(),
                         STALE_S + 60, "the re-prediction to end failed")
        assert ended.reprediction["error"].startswith(
            f"The worker re-predicting with v2 stopped (no sign of life for {STALE_S} s) after 0 of 3 studies")
        body = api_as(member).get(f"/api/projects/{project.pk}/worklist/").json()
        assert body["reprediction"] is None and body["reprediction_stopped"]["error"] == ended.reprediction["error"]
        assert {row["prediction"]["model_name"] for row in body["results"]} == {"v1"}  # the old readings stay
    finally:
        stop(worker, signal.SIGKILL)
        if second is not None:
            stop(second)
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("cpu", "gpu")
