"""The parts /healthz checks: each returns a CheckResult, none raises."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import connection

PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    ms: float
    error: str = ""


def _timed(check: Callable[[], None]) -> CheckResult:
    start = time.perf_counter()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 (a probe reports every failure, it never raises)
        return CheckResult(False, round((time.perf_counter() - start) * 1000, 1), f"{type(exc).__name__}: {exc}")
    return CheckResult(True, round((time.perf_counter() - start) * 1000, 1))


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=PROBE_TIMEOUT_S,
                                  socket_connect_timeout=PROBE_TIMEOUT_S)
    try:
        client.ping()
    finally:
        client.close()


def _storage() -> None:
    if isinstance(default_storage, FileSystemStorage):
        root = default_storage.location
        os.makedirs(root, exist_ok=True)  # a fresh install has no media folder until the first upload
        if not os.access(root, os.W_OK):
            raise OSError(f"media folder {root} is not writable")
        return
    default_storage.exists("healthz-probe")  # one HEAD request to the bucket


CHECKS: dict[str, Callable[[], None]] = {"database": _database, "redis": _redis, "storage": _storage}


def run_checks() -> dict[str, CheckResult]:
    return {name: _timed(check) for name, check in CHECKS.items()}
