"""Worker-side bookkeeping: each task's duration goes to the shared metrics, and a starting worker says which
device it runs on (a gpu-queue worker is pinned to one GPU by CUDA_VISIBLE_DEVICES, see deploy/)."""
from __future__ import annotations

import logging
import time

import redis
from celery.signals import task_postrun, task_prerun, worker_init, worker_shutdown
from django.conf import settings

from boneage.core.device import describe_device
from boneage.ops.metrics import WORKERS_KEY, _redis, record_task

log = logging.getLogger("boneage.worker")
_STARTED: dict[str, float] = {}


@task_prerun.connect
def _start_clock(task_id=None, **_kwargs) -> None:
    if settings.METRICS_ENABLED and task_id:
        _STARTED[task_id] = time.perf_counter()


@task_postrun.connect
def _record_duration(task_id=None, task=None, state=None, **_kwargs) -> None:
    started = _STARTED.pop(task_id, None) if task_id else None
    if started is None or task is None:
        return
    try:
        record_task(task.name, state or "UNKNOWN", time.perf_counter() - started)
    except redis.RedisError:
        log.warning("could not record the duration of %s in Redis", task.name)


@worker_init.connect
def _announce(sender=None, **_kwargs) -> None:
    hostname = getattr(sender, "hostname", "worker")
    device = describe_device()
    log.info("worker %s ready on %s", hostname, device)
    try:
        with _redis() as client:
            client.hset(WORKERS_KEY, hostname, device)
    except redis.RedisError:
        log.warning("could not register worker %s in Redis", hostname)


@worker_shutdown.connect
def _retire(sender=None, **_kwargs) -> None:
    try:
        with _redis() as client:
            client.hdel(WORKERS_KEY, getattr(sender, "hostname", "worker"))
    except redis.RedisError:
        pass
