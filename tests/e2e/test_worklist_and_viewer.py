"""A labeler logs in, uploads radiographs, watches them arrive in the worklist and reads one in the viewer."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import phantom_dicom
from tests.live_support import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_labeler_uploads_several_files_and_sees_each_outcome_and_the_new_rows_live(
        celery_worker, live_asgi_server, project, member, page_as):
    page = page_as(member)
    expect(page.get_by_role("link", name="Hands")).to_be_visible()
    page.get_by_role("link", name="Hands").click()
    expect(page.locator("#live-state")).to_have_text("live")
    expect(page.locator("#active-model")).to_contain_text("No model yet")

    page.set_input_files("#upload input[type=file]", files=[
        {"name": "girl-7y.dcm", "mimeType": "application/dicom", "buffer": phantom_dicom(84, False, 11)},
        {"name": "boy-12y.dcm", "mimeType": "application/dicom", "buffer": phantom_dicom(144, True, 12)},
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"this is not a radiograph"},
    ])
    uploads = page.locator("#uploads li")
    expect(uploads.filter(has_text="girl-7y.dcm")).to_have_attribute("data-outcome", "stored")
    expect(uploads.filter(has_text="boy-12y.dcm")).to_have_attribute("data-outcome", "stored")
    rejected = uploads.filter(has_text="notes.txt")
    expect(rejected).to_have_attribute("data-outcome", "error")
    expect(rejected.locator(".status")).to_have_text(re.compile(r"^Not a DICOM, PNG or JPEG file: (?!.*HTTP).*$"))  # the API's reason
    expect(rejected.locator(".status")).to_have_attribute("title", re.compile(r"^HTTP 415 "))  # the code, for engineers

    rows = page.locator("#worklist-body tr[data-study]")
    expect(rows).to_have_count(2)  # arrived over the websocket: no reload
    expect(rows.first).to_contain_text("unlabeled")
    expect(page.locator("#worklist-body")).to_contain_text("7 y 0 m")
    page.wait_for_function("[...document.querySelectorAll('img.thumb')].every((i) => i.complete && i.naturalWidth > 0)")
    screenshot(page, "01-worklist-after-upload")

    page.select_option("select[name=sex]", "M")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("12 y 0 m")
    page.select_option("select[name=sex]", "")
    page.select_option("#ordering", "chronological_age_months")
    expect(rows.first).to_contain_text("7 y 0 m")

    page.get_by_role("button", name="Next case →").click()  # without a model: the oldest unlabelled study
    page.wait_for_url(f"{live_asgi_server}/studies/**")
    expect(page.locator("#chosen-by")).to_have_text(
        "Next case by oldest, because the project has no model yet: the oldest unlabelled study.")
    expect(page.locator("#viewport")).to_have_attribute("data-first-image", "shown")


def test_a_2500_by_2048_radiograph_shows_at_once_and_loads_full_resolution_only_when_zoomed(
        live_asgi_server, project, member, ingest, page_as):
    study = ingest(project, member, phantom_dicom(120, True, 3, size=2500, width=2048), "big.dcm")
    assert (study.image.width, study.image.height) == (2048, 2500)
    from boneage.studies.derive import ensure_derived_images

    image = ensure_derived_images(study.image)  # what the pipeline does right after ingest
    span = image.value_white - image.value_black  # the file's own values at black and white
    page = page_as(member)
    page.goto(f"{live_asgi_server}/studies/{study.pk}/")
    viewport = page.locator("#viewport")
    expect(viewport).to_have_attribute("data-first-image", "shown")
    assert viewport.get_attribute("data-full") is None  # not loaded up front
    assert page.evaluate("document.querySelector('.image-layer').width") <= 1024
    screenshot(page, "02-viewer-fit")

    box = viewport.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.35)
    for _ in range(6):
        page.mouse.wheel(0, -300)
    expect(viewport).to_have_attribute("data-full", "shown")
    assert page.evaluate("document.querySelector('.image-layer').width") == 2048
    zoom = page.locator("#zoom-level").inner_text()
    assert int(zoom.rstrip("%")) > 100

    page.select_option("#wl-preset", "bone")
    expect(page.locator("#status-wl")).to_contain_text(f"W {round(0.55 * abs(span))} ")  # in stored values, not 0–1
    page.keyboard.press("i")
    expect(page.locator("[data-action=invert]")).to_have_attribute("aria-pressed", "true")
    before = page.evaluate("[__study, document.querySelector('.stage').style.transform][1]")
    page.mouse.move(box["x"] + 300, box["y"] + 300)
    page.mouse.down()
    page.mouse.move(box["x"] + 200, box["y"] + 250, steps=5)
    page.mouse.up()
    assert page.evaluate("document.querySelector('.stage').style.transform") != before  # dragged = panned
    screenshot(page, "03-viewer-zoomed-bone-window-inverted")
    page.keyboard.press("f")
    page.keyboard.press("i")


def test_an_upload_refusal_keeps_its_sentence_and_leaves_the_exception_text_to_its_tooltip(
        live_asgi_server, project, member, page_as):
    """Issue 32, row 10: "…: OSError: Truncated File Read (HTTP 422)" was shown as it came."""
    page = page_as(member)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/")
    split = page.evaluate("import('/static/js/words.js').then((w) => w.forPeople("
                          "'The image data is truncated or corrupt: OSError: Truncated File Read'))")
    assert split == {"text": "The image data is truncated or corrupt.", "technical": "OSError: Truncated File Read"}
    plain = page.evaluate("import('/static/js/words.js').then((w) => w.forPeople('Only DICOM, PNG or JPEG.'))")
    assert plain == {"text": "Only DICOM, PNG or JPEG.", "technical": ""}
