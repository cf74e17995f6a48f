"""A study an admin deletes leaves every open worklist at once: its row, and the count with it."""
from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _hands(project, owner, count: int):
    from boneage.studies.actions import IngestFields, do_ingest

    from tests.dicom_factory import png_bytes

    hand = np.zeros((96, 80), np.uint8)
    hand[20:80, 20:60] = 200
    return [do_ingest(project, owner, png_bytes(hand + k), f"hand-{k}.png", IngestFields(sex="F")).study
            for k in range(1, count + 1)]


def test_a_members_worklist_drops_the_row_of_a_study_the_owner_deletes_and_counts_one_fewer(
        live_asgi_server, project, owner, member, page_as):
    from boneage.studies.actions import do_delete_study

    kept, gone = _hands(project, owner, 2)
    page = page_as(member)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/")
    expect(page.locator("#live-state")).to_have_text("live")
    rows = page.locator("#worklist-body tr[data-study]")
    expect(rows).to_have_count(2)
    expect(page.locator("#study-count")).to_have_text("2 studies")

    do_delete_study(gone, actor=owner)  # publishes study.deleted once the deletion commits

    expect(page.locator(f'#worklist-body tr[data-study="{gone.pk}"]')).to_have_count(0)
    expect(rows).to_have_count(1)
    expect(page.locator(f'#worklist-body tr[data-study="{kept.pk}"]')).to_have_count(1)
    expect(page.locator("#study-count")).to_have_text("1 study")


def test_when_the_last_study_is_deleted_the_worklist_says_it_is_empty(live_asgi_server, project, owner, member, page_as):
    from boneage.studies.actions import do_delete_study

    (only,) = _hands(project, owner, 1)
    page = page_as(member)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/")
    expect(page.locator("#live-state")).to_have_text("live")
    expect(page.locator("#worklist-body tr[data-study]")).to_have_count(1)

    do_delete_study(only, actor=owner)

    expect(page.locator("#worklist-body tr[data-study]")).to_have_count(0)
    expect(page.locator("#worklist-body td.empty")).to_contain_text("No studies match")
    expect(page.locator("#study-count")).to_have_text("0 studies")
