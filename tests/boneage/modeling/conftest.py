"""Fixtures of the modeling tests: a tiny real checkpoint, phantom studies, a registered model, event capture.

Everything is small (64 px, width 0.125, no Mask R-CNN in the tiny model) so the folder stays fast on a CPU.
"""
from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from pathlib import Path

import pytest
import redis

from tests.live_support import wait_for  # noqa: F401  (re-exported for the modeling tests)

TINY_MODEL = {"width": 0.125, "segmenter": None, "work_size": 64, "crop_size": 64, "dropout": 0.2}
TINY_TRAINING = {"model": TINY_MODEL, "epochs": 2, "batch_size": 8, "mc_samples": 4, "precise_bn_batches": 1,
                 "teacher_epochs": 0, "teacher_decay_epochs": 0, "threads": 1}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A real checkpoint of the tiny architecture, trained for one epoch on 12 phantoms (a few seconds)."""
    from ml.data import read_folder
    from ml.models import ModelConfig
    from ml.phantoms import generate_cohort
    from ml.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("tiny-cohort")
    generate_cohort(folder, 12, seed=5, size=128, progress=False)
    config = TrainConfig(model=ModelConfig.from_dict(TINY_MODEL), epochs=1, batch_size=6, mc_samples=4,
                         precise_bn_batches=1, teacher_epochs=0, teacher_decay_epochs=0, threads=1)
    out = folder / "tiny.pt"
    train(read_folder(folder), config, out)
    return out


@pytest.fixture
def tiny_project(project):
    """The `project` persona fixture, set to train the tiny architecture quickly."""
    project.settings = {**project.settings, "training": TINY_TRAINING}
    project.save(update_fields=["settings"])
    return project


@pytest.fixture
def register_model(tiny_checkpoint):
    """Put a checkpoint into the project's storage and register it (active by default)."""
    from boneage.modeling.models import ModelVersion
    from django.core.files import File
    from django.core.files.storage import default_storage

    def register(project, *, status="active", name=None, path: Path | None = None, val_mae=30.0):
        source = path or tiny_checkpoint
        count = ModelVersion.objects.filter(project=project).count()
        with source.open("rb") as handle:  # through the storage API: the same on local media and on S3
            storage_name = default_storage.save(f"models/{project.pk}/seed-{count + 1}.pt", File(handle))
        return ModelVersion.objects.create(
            project=project, name=name or f"v{count + 1}", checkpoint=storage_name,
            sha256=hashlib.sha256(source.read_bytes()).hexdigest(), status=status, metrics={"val_mae": val_mae},
            config={"model": TINY_MODEL})

    return register


@pytest.fixture
def add_studies():
    """Ingest phantom studies (PNG, 128 px) through the real ingest action; labelled = imported bone age."""
    from boneage.studies.actions import IngestFields, do_ingest

    from ml.phantoms import render
    from tests.dicom_factory import png_bytes

    counter = {"seed": 100}

    def add(project, user, n: int, *, labelled: bool = True, size: int = 128):
        studies = []
        for _ in range(n):
            counter["seed"] += 1
            seed = counter["seed"]
            age, male = 12 + (seed * 37) % 200, seed % 2 == 0
            phantom = render(age, male, seed=seed, size=size)
            fields = IngestFields(sex="M" if male else "F", bone_age_months=float(age) if labelled else None)
            result = do_ingest(project, user, png_bytes(phantom.image), f"hand-{seed}.png", fields)
            assert result.study is not None, result.error
            studies.append(result.study)
        return studies

    return add


@pytest.fixture
def events():
    """Subscribe to a project's live group; `.until(type)` collects messages up to that type.

    Subscribing and receiving run on one event loop of the listener's own (a thread): the pub/sub channel layer keeps
    its subscriptions per event loop, so a receive on another loop (a new one per async_to_sync call) hears nothing.
    """
    from boneage.live.events import project_group
    from channels.layers import get_channel_layer

    class Listener:
        def __init__(self):
            self.layer = get_channel_layer()
            self.loop = asyncio.new_event_loop()
            threading.Thread(target=self.loop.run_forever, name="test-listener", daemon=True).start()
            self.channel = None
            self.seen: list[dict] = []

        def _run(self, coroutine):
            return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

        def subscribe(self, project_id: int):
            async def go():
                self.channel = await self.layer.new_channel()
                await self.layer.group_add(project_group(project_id), self.channel)
            self._run(go())
            return self

        def until(self, predicate, timeout: float = 90.0) -> list[dict]:
            if isinstance(predicate, str):
                wanted = predicate
                predicate = lambda event: event["type"] == wanted

            async def go():
                deadline = time.monotonic() + timeout
                pending = None  # one receive at a time, never cancelled: a cancelled receive can lose a message
                try:
                    while True:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise AssertionError(f"no matching event within {timeout:.0f} s; "
                                                 f"saw {[e['type'] for e in self.seen]}")
                        if pending is None:
                            pending = asyncio.ensure_future(self.layer.receive(self.channel))
                        done, _ = await asyncio.wait({pending}, timeout=min(left, 5))
                        if not done:
                            continue
                        task, pending = pending, None
                        try:
                            message = task.result()
                        except redis.exceptions.TimeoutError:  # an idle read hit the client's socket timeout
                            continue
                        self.seen.append(message["event"])
                        if predicate(message["event"]):
                            return self.seen
                finally:
                    if pending is not None:
                        pending.cancel()
            return self._run(go())

        def close(self):
            self.loop.call_soon_threadsafe(self.loop.stop)

    listener = Listener()
    yield listener
    listener.close()
