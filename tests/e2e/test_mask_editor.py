"""Labelers correct the Canny hand mask with the brush, undo and redo, save, resolve conflicts, keep drafts."""
from __future__ import annotations

import re

import pytest
from boneage.annotations.models import MaskRevision
from playwright.sync_api import expect

from tests.e2e.conftest import phantom_dicom
from tests.live_support import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def open_study(page, base_url, study):
    page.goto(f"{base_url}/studies/{study.pk}/")
    expect(page.locator("#study")).to_have_attribute("data-ready", "1")


def stroke(page, start, end, steps=12):
    """Drag in the viewport from start to end, given as fractions of its box."""
    box = page.locator("#viewport").bounding_box()
    at = lambda f: (box["x"] + box["width"] * f[0], box["y"] + box["height"] * f[1])
    page.mouse.move(*at(start))
    page.mouse.down()
    page.mouse.move(*at(end), steps=steps)
    page.mouse.up()


def area(page) -> float:
    return page.evaluate("__editor.area")


def test_a_labeler_paints_undoes_redoes_saves_and_gets_an_unsaved_draft_back_after_a_reload(
        celery_worker, live_asgi_server, project, member, ingest, page_as):
    study = ingest(project, member, phantom_dicom(100, False, 21), "hand.dcm")
    page = page_as(member)
    open_study(page, live_asgi_server, study)
    expect(page.locator("#edit-rev")).to_contain_text("canny")  # the worker's Canny mask is the starting point
    canny = area(page)
    assert 0.05 < canny < 0.8

    page.keyboard.press("b")
    expect(page.locator("button[data-tool=brush]")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("]")
    stroke(page, (0.3, 0.1), (0.32, 0.9))  # along the empty left edge of the film
    painted = area(page)
    assert painted > canny + 0.005
    screenshot(page, "04-mask-brush-stroke")
    page.keyboard.press("Control+z")
    assert area(page) == pytest.approx(canny)
    page.keyboard.press("Control+Shift+z")
    assert area(page) == pytest.approx(painted)
    expect(page.locator("[data-action=save-mask]")).to_be_enabled()

    page.get_by_role("button", name="Save mask").click()
    expect(page.locator("#toasts")).to_contain_text("Mask saved as revision")
    expect(page.locator("[data-action=save-mask]")).to_be_disabled()
    saved = MaskRevision.objects.filter(study=study).order_by("-pk").first()
    assert saved.source == "expert" and saved.author == member and saved.parent.source == "canny"
    assert saved.area_fraction == pytest.approx(painted, abs=1e-4)
    expect(page.locator("#edit-rev")).to_contain_text(f"rev {saved.pk}")

    page.keyboard.press("e")
    stroke(page, (0.3, 0.1), (0.32, 0.9))  # erase it again, then "crash" before saving
    erased = area(page)
    assert erased < painted
    expect(page.locator("#study")).to_have_attribute("data-draft", "saved")
    prompts: list[str] = []
    page.once("dialog", lambda dialog: (prompts.append(dialog.type), dialog.accept()))  # leave anyway
    page.reload()
    assert prompts == ["beforeunload"]  # unsaved edits: the browser asked before leaving
    expect(page.locator("#study")).to_have_attribute("data-ready", "1")
    assert area(page) == pytest.approx(painted)  # the saved revision is what loads…
    banner = page.locator("#draft-banner")
    expect(banner).to_be_visible()  # …and the unsaved edit is offered back
    expect(banner).to_contain_text(f"on revision {saved.pk}")
    screenshot(page, "05-mask-draft-offered-after-reload")
    page.get_by_role("button", name="Restore draft").click()
    assert area(page) == pytest.approx(erased)
    expect(page.locator("[data-action=save-mask]")).to_be_enabled()
    page.keyboard.press("Control+z")  # undo goes back to the saved mask
    assert area(page) == pytest.approx(painted)


def test_two_labelers_edit_the_same_mask_and_the_later_one_chooses_how_to_resolve_the_409(
        live_asgi_server, project, owner, member, ingest, page_as):
    study = ingest(project, member, phantom_dicom(60, True, 22), "hand.dcm")
    olivia, max_ = page_as(owner), page_as(member)
    for page in (olivia, max_):
        open_study(page, live_asgi_server, study)
        page.keyboard.press("b")
    stroke(max_, (0.6, 0.6), (0.7, 0.8))  # Max is in the middle of an edit…
    mine = area(max_)
    stroke(olivia, (0.3, 0.3), (0.5, 0.4))  # …when Olivia saves hers
    olivia.keyboard.press("Control+s")
    expect(olivia.locator("#toasts")).to_contain_text("Mask saved")
    first = MaskRevision.objects.get(study=study)
    expect(max_.locator("#toasts")).to_contain_text(f"Someone saved mask revision {first.pk}")
    assert area(max_) == mine  # his edit stays on screen

    max_.keyboard.press("Control+s")
    dialog = max_.locator("#conflict-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"the newest is {first.pk}")
    screenshot(max_, "06-mask-conflict-409")
    stroke(olivia, (0.38, 0.1), (0.42, 0.2))  # Olivia goes on editing while Max decides
    dialog.get_by_role("button", name="Keep mine as a new revision").click()
    expect(max_.locator("#toasts")).to_contain_text("Mask saved as revision")
    kept = MaskRevision.objects.filter(study=study).order_by("-pk").first()
    assert kept.author == member and kept.parent == first and kept.area_fraction == pytest.approx(mine, abs=1e-4)

    expect(olivia.locator("#edit-rev")).to_contain_text(f"newer: rev {kept.pk}")
    olivia.get_by_role("button", name="Save mask").click()  # her base is stale now: she takes Max's instead
    expect(olivia.locator("#conflict-dialog")).to_be_visible()
    olivia.get_by_role("button", name="Reload theirs (drop my edits)").click()
    expect(olivia.locator("#edit-rev")).to_have_text(re.compile(rf"^rev {kept.pk} · expert · max_member$"))
    assert area(olivia) == pytest.approx(mine, abs=1e-4)
    expect(olivia.locator("[data-action=save-mask]")).to_be_disabled()
    assert MaskRevision.objects.filter(study=study).count() == 2
