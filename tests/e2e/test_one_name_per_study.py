"""One name per study in the browser (issue 32, row 11): the worklist row, the study page's title and the upload list
all say the study's external id (else its file name), never a second number; a study with a chronological age shows
the model's reading against it."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def a_read_study(project, owner):
    """Study "1159", 120 months old, that v1 reads as 126."""
    from boneage.modeling.models import ModelVersion, Prediction
    from boneage.studies.actions import IngestFields, do_ingest
    from django.db import connection

    from tests.dicom_factory import png_bytes

    hand = np.zeros((96, 80), np.uint8)
    hand[20:80, 20:60] = 200
    try:
        study = do_ingest(project, owner, png_bytes(hand), "hand.png", IngestFields(
            sex="F", external_id="1159", chronological_age_months=120)).study
        version = ModelVersion.objects.create(project=project, name="v1", checkpoint="models/v1.pt", sha256="0" * 64,
                                              status="active")
        Prediction.objects.create(study=study, model_version=version, age_months=126, std_months=5)
        return study
    finally:
        connection.close()


def test_the_worklist_and_the_study_page_name_a_study_once_and_read_it_against_its_age(
        live_asgi_server, project, owner, member, page_as):
    with ThreadPoolExecutor(1) as pool:  # ingest publishes live events: not beside Playwright's loop
        study = pool.submit(a_read_study, project, owner).result()
    page = page_as(member)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/")
    row = page.locator(f"tr[data-study='{study.pk}']")
    expect(row.locator("a")).to_have_text("1159")
    expect(row).not_to_contain_text(f"#{study.pk}")

    row.locator("a").click()
    expect(page).to_have_title("1159 · Bone age platform")
    expect(page.locator(".study-head h1")).to_have_text("1159")
    expect(page.locator("#pred-interval")).to_contain_text("+6.0 mo vs chronological")
