"""Worker benchmarks (issue 5): ingest → prediction.ready latency, and batch re-prediction throughput as a
ratio to the bare Predictor on the same images in the same run. Run with `make bench`.

The model has the starter architecture (boneage.modeling.training.default_model(): ml's light preset); its weights are
untrained because speed does not depend on them (a trained starter takes minutes to make).
"""
from __future__ import annotations

import asyncio
import cProfile
import hashlib
import os
import pstats
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.files.storage import default_storage

pytestmark = [pytest.mark.bench, pytest.mark.live, pytest.mark.django_db(transaction=True)]

LATENCY_STUDIES = 20
THROUGHPUT_BATCH = 8


def starter_checkpoint(folder: Path) -> Path:
    from boneage.modeling.training import default_model

    from ml.checkpoint import save_checkpoint
    from ml.models import ModelConfig, build_model

    config = ModelConfig.from_dict(default_model())
    path = folder / "starter-arch.pt"
    save_checkpoint(path, build_model(config), config, train_config={"mc_samples": 8}, calibration={"scale": 1.0, "floor": 1.0})
    return path


def register(project, path: Path, name: str, status: str = "active"):
    from boneage.modeling.models import ModelVersion

    storage_name = f"models/{project.pk}/{name}.pt"
    target = Path(default_storage.path(storage_name))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return ModelVersion.objects.create(project=project, name=name, checkpoint=storage_name, status=status,
                                       sha256=hashlib.sha256(target.read_bytes()).hexdigest())


def phantom_png(i: int) -> bytes:
    from ml.phantoms import render
    from tests.dicom_factory import png_bytes

    return png_bytes(render(24 + (i * 41) % 190, i % 2 == 0, seed=900 + i, size=512).image)


def ingest_until_ready(project, owner, data: bytes, name: str) -> tuple[float, int]:
    from boneage.live.events import project_group
    from boneage.studies.actions import IngestFields, do_ingest
    from channels.db import database_sync_to_async

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(project_group(project.pk), channel)
        started = time.perf_counter()
        result = await database_sync_to_async(do_ingest)(project, owner, data, name, IngestFields(sex="M"))
        deadline, pending = time.monotonic() + 180, None
        while time.monotonic() < deadline:
            if pending is None:  # one receive at a time, never cancelled: a cancelled receive can lose a message
                pending = asyncio.ensure_future(layer.receive(channel))
            done, _ = await asyncio.wait({pending}, timeout=5)
            if not done:
                continue
            task, pending = pending, None
            try:
                event = task.result()["event"]
            except redis.exceptions.TimeoutError:
                continue
            if event["type"] in ("prediction.failed", "mask.failed"):
                raise AssertionError(f"the pipeline failed: {event}")
            if event["type"] == "prediction.ready" and event["study"] == result.study.pk:
                return time.perf_counter() - started, result.study.pk
        raise AssertionError("no prediction.ready within 180 s")

    return async_to_sync(scenario)()


def test_ingest_to_prediction_latency_and_batch_repredict_throughput(celery_worker, project, owner, tmp_path):
    from boneage.modeling.actions import do_repredict_project
    from boneage.modeling.models import ModelVersion, Prediction
    from boneage.studies.derive import load_unit
    from boneage.studies.models import Study

    from ml.infer import Predictor

    checkpoint = starter_checkpoint(tmp_path)
    register(project, checkpoint, "v1")
    ingest_until_ready(project, owner, phantom_png(999), "warm-up.png")  # the worker loads the model once
    latencies, parts = [], []
    for i in range(LATENCY_STUDIES):
        seconds, study_id = ingest_until_ready(project, owner, phantom_png(i), f"hand-{i}.png")
        latencies.append(seconds)
        parts.append(Prediction.objects.get(study_id=study_id).timings)
    p50 = statistics.median(latencies)
    p95 = float(np.percentile(latencies, 95))
    model_ms = statistics.median(t["total"] for t in parts)
    task_ms = statistics.median(t["task_total"] for t in parts)

    # Batch re-prediction (the promotion path) vs the bare Predictor on the same, already decoded images.
    studies = list(Study.objects.filter(project=project).select_related("image").order_by("pk"))
    units = [load_unit(s.image) for s in studies]
    predictor = Predictor(checkpoint)
    predictor.predict_batch(units[:2], [True, True])  # warm-up

    def bare_throughput() -> float:
        started = time.perf_counter()
        for i in range(0, len(units), THROUGHPUT_BATCH):
            chunk = units[i:i + THROUGHPUT_BATCH]
            predictor.predict_batch(chunk, [True] * len(chunk))
        return len(units) / (time.perf_counter() - started)

    bare_before = bare_throughput()
    ModelVersion.objects.filter(project=project).update(status="retired")
    v2 = register(project, checkpoint, "v2")
    from boneage.modeling.actions import get_predictor

    get_predictor(v2)  # load outside the timing, as the bare Predictor was
    profiler = cProfile.Profile() if os.environ.get("WORKER_BENCH_PROFILE") else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    made = do_repredict_project(v2.pk, batch_size=THROUGHPUT_BATCH)
    platform = made / (time.perf_counter() - started)
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats(os.environ["WORKER_BENCH_PROFILE"] if os.environ["WORKER_BENCH_PROFILE"] in ("cumulative", "tottime") else "tottime").print_stats(40)
    assert made == len(studies)
    bare_after = bare_throughput()  # the machine is shared: bracket the platform run with two baselines
    bare = (bare_before + bare_after) / 2

    print(f"\n| measure | value |\n|---|---|\n"
          f"| ingest → prediction.ready p50 | {p50:.2f} s |\n| ingest → prediction.ready p95 | {p95:.2f} s |\n"
          f"| of which model (median) | {model_ms / 1000:.2f} s |\n| of which predict task (median) | {task_ms / 1000:.2f} s |\n"
          f"| bare Predictor.predict_batch (before / after) | {bare_before:.2f} / {bare_after:.2f} studies/s |\n| batch re-prediction task | {platform:.2f} studies/s |\n"
          f"| ratio | {platform / bare:.2f} |\n| studies | {LATENCY_STUDIES} latency, {len(studies)} throughput, 512 px phantoms |")
    assert made == len(studies)
