"""Browser fixtures: phantom radiographs as DICOM, studies ingested through the real action, pages per persona.

Personas: olivia_owner (admin), max_member (labeler), tina_trainer (trainer). The modeling fixtures
(a tiny real checkpoint, registered as the active model) come from tests/boneage/modeling.
"""
from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.boneage.modeling.conftest import TINY_TRAINING, add_studies, register_model, tiny_checkpoint  # noqa: F401
from tests.dicom_factory import dicom_bytes, make_dicom_dataset
from tests.live_support import login

PASSWORD = "{}-Pass-123"
expect.set_options(timeout=15_000)  # the 2-core CI box is shared: 5 s is too tight under load


@functools.lru_cache(maxsize=8)
def phantom_dicom(age_months: float, male: bool, seed: int, size: int = 512, width: int | None = None) -> bytes:
    """A realistic synthetic hand radiograph (ml.phantoms) as a 12-bit MONOCHROME2 DICOM."""
    from ml.phantoms import render

    image = render(age_months, male, seed=seed, size=size).image
    if width is not None and image.shape[1] > width:  # centre crop or pad to the requested width (2500×2048)
        start = (image.shape[1] - width) // 2
        image = image[:, start:start + width]
    elif width is not None and image.shape[1] < width:
        extra = width - image.shape[1]
        image = np.pad(image, ((0, 0), (extra // 2, extra - extra // 2)), mode="edge")
    pixels = (image.astype(np.float64) / 65535 * 4095).round().astype(np.uint16)
    age = f"{int(age_months // 12):03d}Y"
    return dicom_bytes(make_dicom_dataset(pixels, sex="M" if male else "F", age=age))


def disagreeing_study(project, owner, version_metrics: dict | None = None):
    """A study labelled 100 months that the active model (v1) reads out of fold as 150 ± 5: a review item."""
    from boneage.modeling.models import ModelVersion, Prediction
    from boneage.review.hooks import study_changed
    from boneage.studies.actions import IngestFields, do_ingest

    from tests.dicom_factory import png_bytes

    pixels = np.zeros((96, 80), np.uint8)
    pixels[20:80, 20:60] = 200
    study = do_ingest(project, owner, png_bytes(pixels), "hand.png", IngestFields(sex="F", bone_age_months=100)).study
    version = ModelVersion.objects.create(project=project, name="v1", checkpoint="models/dummy.pt", sha256="0" * 64,
                                          status="active", metrics=version_metrics or {})
    Prediction.objects.create(study=study, model_version=version, age_months=150, std_months=5, out_of_fold=True)
    study_changed(study.pk, "prediction")
    return study


def two_studies_mid_reprediction(project, owner, reprediction: dict):
    """Two studies both read by v1; v2 (active, re-predicting with `reprediction` as its state) has read the first:
    (v2, the study it read, the study still waiting)."""
    from boneage.modeling.models import ModelVersion, Prediction
    from boneage.studies.actions import IngestFields, do_ingest

    from tests.dicom_factory import png_bytes

    hand = np.zeros((96, 80), np.uint8)
    hand[20:80, 20:60] = 200
    done, waiting = (do_ingest(project, owner, png_bytes(hand + k), f"hand-{k}.png", IngestFields(sex="F")).study
                     for k in (1, 2))
    v1 = ModelVersion.objects.create(project=project, name="v1", checkpoint="models/v1.pt", sha256="0" * 64,
                                     status="retired")
    v2 = ModelVersion.objects.create(project=project, name="v2", checkpoint="models/v2.pt", sha256="1" * 64,
                                     status="active", reprediction={**reprediction, "done": 1, "total": 2,
                                                                    "replaces": v1.pk})
    for study in (done, waiting):
        Prediction.objects.create(study=study, model_version=v1, age_months=100, std_months=5)
    Prediction.objects.create(study=done, model_version=v2, age_months=120, std_months=5)
    return v2, done, waiting


@pytest.fixture
def ingest():
    """Store a study through the real ingest action (as an upload would), return it."""
    from boneage.studies.actions import IngestFields, do_ingest

    def run(project, user, data: bytes, name: str = "hand.dcm", **fields):
        # In a thread of its own: Playwright's sync API keeps an event loop running in this one, and
        # the live-event helper (async_to_sync) refuses to run beside it.
        with ThreadPoolExecutor(1) as pool:
            result = pool.submit(do_ingest, project, user, data, name, IngestFields(**fields)).result()
        assert result.study is not None, result.error
        return result.study

    return run


@pytest.fixture
def page_as(chromium, live_asgi_server):
    """A fresh browser context per persona, logged in through the real login form."""
    contexts = []

    def open_page(user):
        context = chromium.new_context(viewport={"width": 1280, "height": 800})
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{user.username}: {error}"))
        login(page, live_asgi_server, user.username, PASSWORD.format(user.username))
        return page

    errors: list[str] = []
    open_page.errors = errors
    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"
