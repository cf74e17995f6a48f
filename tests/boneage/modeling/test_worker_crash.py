"""A worker killed in the middle of a training run: the run ends FAILED soon after, nothing half-written is registered."""
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
