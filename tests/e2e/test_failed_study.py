"""A study whose derive step failed is visible with its reason (issue 32, row 12): an open worklist shows it as the
failure happens (mask.failed), and the study page says why."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.boneage.test_failed_study import a_study_whose_stored_film_is_damaged
from tests.live_support import in_a_thread

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_worklist_and_the_study_page_say_why_a_study_stopped(live_asgi_server, project, owner, member, page_as):
    study = in_a_thread(a_study_whose_stored_film_is_damaged, project, owner)
    page = page_as(member)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/")
    expect(page.locator("#live-state")).to_have_text("live")
    row = page.locator(f"tr[data-study='{study.pk}']")
    expect(row).to_be_visible()
    expect(row.locator(".failure-tag")).to_have_count(0)

    from boneage.studies.derive import do_derive

    assert in_a_thread(do_derive, study.pk) is False
    expect(row.locator(".failure-tag")).to_have_text("processing stopped")  # from the live event, no reload
    expect(row.locator(".failure-reason")).to_contain_text("The stored film could not be read")

    page.goto(f"{live_asgi_server}/studies/{study.pk}/")
    note = page.locator("#study-failure")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Processing stopped. The stored film could not be read, so it has no images")
