"""A film on its side that the check is sure of opens fingers-up, and the study page says what the platform did; a
labeler undoes it with one click, and the page then shows the film as stored with the check's suggestion to apply
again (issue 29; annotations.frame)."""
from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import expect

from ml.phantoms import render
from tests.dicom_factory import png_bytes
from tests.live_support import in_a_thread

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def a_turned_film_through_the_pipeline(project, owner):
    from boneage.annotations.actions import do_automask
    from boneage.studies.actions import IngestFields, do_ingest
    from boneage.studies.derive import do_derive

    film = np.rot90(render(100, False, seed=11, size=320).image).copy()  # fingers to the left, 245 × 320
    study = do_ingest(project, owner, png_bytes(film), "turned.png", IngestFields(sex="F")).study
    assert do_derive(study.pk) and do_automask(study.pk)
    return study


def test_a_labeler_sees_the_film_read_fingers_up_and_reads_it_as_stored_with_one_click(
        live_asgi_server, project, owner, member, page_as):
    from boneage.studies.models import Image

    study = in_a_thread(a_turned_film_through_the_pipeline, project, owner)
    page = page_as(member)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/")  # the worklist: read corrected, not "check this film"
    row = page.locator(f"tr[data-study='{study.pk}']")
    expect(row.locator(".film-read-corrected")).to_have_text("read corrected")
    expect(row.locator(".film-read-corrected")).to_have_attribute("title", re.compile("turned 90° clockwise"))
    expect(row.locator(".film-check")).to_have_count(0)
    page.goto(f"{live_asgi_server}/studies/{study.pk}/")
    note = page.locator("#film-check")
    expect(note).to_contain_text("The platform reads this film turned 90° clockwise (fingers-up, bright bone): "
                                 "the film check was sure.")
    expect(page.locator("#study")).to_have_attribute("data-width", "245")  # the viewer and the editor: fingers-up
    expect(page.locator("#study")).to_have_attribute("data-ready", "1")
    expect(page.locator("#history")).to_contain_text("The film check was sure: the film is read turned 90° clockwise")

    with page.expect_response(lambda r: r.url.endswith(f"/api/studies/{study.pk}/frame/"), timeout=60_000) as answer:
        page.locator("#frame-as-stored").click()
    assert answer.value.status == 200, answer.value.text()
    expect(page.locator("#film-frame")).to_have_text("The platform reads the film as stored.")
    expect(page.locator("#study")).to_have_attribute("data-width", "320")
    expect(page.locator("#frame-as-stored")).to_have_count(0)
    expect(page.locator("#frame-suggested")).to_have_text("Read it turned 90° clockwise")
    expect(page.locator("#history")).to_contain_text("max_member had the film read as stored (was turned 90° clockwise)")
    image = Image.objects.get(study_id=study.pk)
    assert (image.turns, image.frame_source) == (0, "")
