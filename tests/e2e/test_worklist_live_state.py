"""The worklist says how far a re-prediction is, from the live events alone; a removed member's page goes offline."""
from __future__ import annotations

import pytest
from boneage.live.events import publish
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_worklist_shows_re_prediction_progress_until_it_is_done(live_asgi_server, project, member, page_as):
    page = page_as(member)
    page.get_by_role("link", name="Hands").click()
    expect(page.locator("#live-state")).to_have_text("live")
    progress = page.locator("#repredict-progress")
    expect(progress).to_be_hidden()

    publish(project.pk, "model.repredict.progress", model_version=1, done=37, total=160)
    expect(progress).to_have_text("predicting 37 / 160")
    publish(project.pk, "model.repredicted", model_version=1, predicted=160, total=160)
    expect(progress).to_be_hidden()


def test_a_removed_members_open_page_goes_offline_at_once(live_asgi_server, project, member, page_as):
    from boneage.studies.models import Membership

    page = page_as(member)
    page.get_by_role("link", name="Hands").click()
    expect(page.locator("#live-state")).to_have_text("live")

    Membership.objects.filter(project=project, user=member).delete()
    expect(page.locator("#live-state")).to_have_text("offline (no access to this project)", timeout=5_000)
