"""Tunables of the modeling app, typed and read once (env overrides; settings.py keeps the Celery ones)."""
from __future__ import annotations

import os

from django.conf import settings

from boneage.env import env_int


def _setting(name: str, default: int, minimum: int = 1) -> int:
    value = getattr(settings, name, None)
    return int(value) if value is not None else env_int(name, default, minimum=minimum)


def heartbeat_seconds() -> int:
    """How often a training worker says it is alive."""
    return _setting("MODELING_HEARTBEAT_S", 5)


def stale_seconds() -> int:
    """A running training run without a heartbeat for this long belongs to a dead worker: it ends FAILED."""
    return max(_setting("MODELING_STALE_S", 60), 2 * heartbeat_seconds())


def repredict_threads() -> int:
    """torch's threads while a worker re-predicts a project: every core. The decoding, files and rows take turns with
    the network rather than running beside it (docs/benchmarks.md, re-prediction third pass)."""
    return _setting("REPREDICT_THREADS", os.cpu_count() or 1)


def repredict_overlaps(device_type: str) -> bool:
    """Whether a re-prediction writes batch k's files and rows while the network predicts batch k+1: settings.
    REPREDICT_OVERLAP "on", "off", or "auto" (the default: on an accelerator, where the network leaves the cores free)."""
    choice = settings.REPREDICT_OVERLAP
    return choice == "on" or (choice == "auto" and device_type != "cpu")


def training_hard_limit() -> int:
    return int(settings.TRAINING_HARD_TIME_LIMIT_S)


# After its budget a run scores its validation studies, calibrates and writes the checkpoint (about a minute for
# 1,000 films on 2 cores): a budget must leave this much before the worker's soft limit (hard limit − 30 s).
TRAINING_WRAP_UP_S = 300


def training_max_seconds() -> int:
    """The longest budget a run may ask for, so that it always ends by itself before the worker's time limit ends it
    (a run cut by the limit keeps nothing)."""
    return max(60, training_hard_limit() - 30 - TRAINING_WRAP_UP_S)


def max_seconds_reason() -> str:
    return (f"the worker stops a run at {training_hard_limit()} s (TRAINING_HARD_TIME_LIMIT_S) and a run needs "
            f"{TRAINING_WRAP_UP_S} s after its budget to score, calibrate and write its checkpoint")


PREDICT_SOFT_LIMIT_S = 120
PREDICT_HARD_LIMIT_S = 180
PREDICT_TIME_LIMIT_RETRIES = 2   # a prediction cut by its time limit is tried again (a busy worker, not a bad film)
PREDICT_RETRY_AFTER_S = 60       # then 120 s
REPREDICT_SOFT_LIMIT_S = 3000
REPREDICT_HARD_LIMIT_S = 3300
REPREDICT_BATCH = 64             # 87 vs 82 studies/s at 32 on the 2-core box (docs/benchmarks.md, re-prediction third pass)
HEATMAP_MAX_SIDE = 128          # attention maps are coarse (8×8 to 16×16 on the crop): small RGBA overlays
NEXT_CASE_TOP_K = 10
NEXT_CASE_SETTING = "next_case_strategy"  # a project setting beside `training` (boneage.modeling.defaults)
# coreset: the one strategy that saved labels in any measured regime (40 % on a two-site archive) and tied random in
# the others; uncertainty was the worst in every one (docs/active-learning.md)
NEXT_CASE_DEFAULT_STRATEGY = "coreset"
