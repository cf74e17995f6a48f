"""After commit, a real Celery worker derives the images and the paper's Canny mask, live."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest
from asgiref.sync import async_to_sync
from boneage.annotations.models import MaskRevision
from boneage.live.events import project_group
from boneage.studies.actions import do_ingest
from boneage.studies.models import Image, Study
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from ml.phantoms import render
from tests.dicom_factory import png_bytes
from tests.live_support import wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def ingest_and_listen(project, owner, data: bytes, until: str, timeout: float = 60.0):
    """Ingest while subscribed to the project's group; return the study id and the event types seen."""

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(project_group(project.pk), channel)
        result = await database_sync_to_async(do_ingest)(project, owner, data, "hand.png")
        types: list[str] = []
        while until not in types:
            message = await asyncio.wait_for(layer.receive(channel), timeout)
            types.append(message["event"]["type"])
        return result.study.pk, types

    return async_to_sync(scenario)()


def test_an_ingested_study_gets_derived_images_and_a_canny_mask_from_the_worker(celery_worker, project, owner):
    phantom = render(96, True, seed=3, size=384)
    study_id, types = ingest_and_listen(project, owner, png_bytes(phantom.image), until="mask.generated")
    assert types[:2] == ["study.ingested", "mask.generated"]

    def canny_mask():
        """the Canny MaskRevision"""
        return MaskRevision.objects.filter(study_id=study_id, source="canny").first()

    revision = wait_for(canny_mask)
    image = Image.objects.get(study_id=study_id)
    assert image.normalized and image.display and image.work
    assert Study.objects.get(pk=study_id).automask_state == "done"
    assert 0.05 < revision.area_fraction < 0.8 and revision.quality is not None
    import io

    from boneage.studies.derive import read_bytes
    from PIL import Image as PILImage

    mask = np.asarray(PILImage.open(io.BytesIO(read_bytes(revision.mask)))) > 127
    truth = phantom.mask > 127
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice > 0.85


def test_a_study_whose_processing_fails_has_the_failure_recorded(celery_worker, project, owner, temporary_media):
    result = do_ingest(project, owner, png_bytes(np.zeros((64, 64), np.uint8)), "blank.png")
    study_id = result.study.pk
    for name in (result.study.image.original,):
        (temporary_media / name).write_bytes(b"corrupted after ingest")  # the worker will fail to decode it

    def failed():
        """automask_state == failed"""
        return Study.objects.filter(pk=study_id, automask_state="failed").exists()

    wait_for(failed)
    assert "could not derive images" in Study.objects.get(pk=study_id).automask_error
    assert not MaskRevision.objects.filter(study_id=study_id).exists()


def test_a_task_enqueued_in_a_rolled_back_transaction_never_reaches_the_broker(project, owner, settings):
    import redis
    from django.db import transaction

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("cpu", "gpu")
    with pytest.raises(RuntimeError), transaction.atomic():
        do_ingest(project, owner, png_bytes(render(30, False, seed=4, size=256).image), "lost.png")
        raise RuntimeError("rollback")
    assert broker.llen("cpu") == 0 and Study.objects.count() == 0
    do_ingest(project, owner, png_bytes(render(30, False, seed=4, size=256).image), "kept.png")
    assert broker.llen("cpu") == 1  # the same call outside a rolled-back transaction does enqueue
    broker.delete("cpu")
