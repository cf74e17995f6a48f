"""The worklist says how far a re-prediction is, from the live events alone; a removed member's page goes offline."""
from __future__ import annotations

import pytest
from boneage.live.events import publish
from playwright.sync_api import expect

from tests.e2e.conftest import two_studies_mid_reprediction

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


def test_a_page_that_missed_an_event_notices_the_gap_and_reloads_what_it_shows(
        live_asgi_server, project, owner, member, page_as):
    from boneage.core.events import _sequence_key, redis_client
    from boneage.studies.models import Image, Study

    page = page_as(member)
    page.get_by_role("link", name="Hands").click()
    expect(page.locator("#live-state")).to_have_text("live")
    expect(page.locator("#worklist-body tr[data-study]")).to_have_count(0)

    # A study arrives and its study.ingested event is lost on the way (as channels-redis drops what a slow
    # consumer does not read in time): the row is in the database, the event's number is spent, nothing is sent.
    study = Study.objects.create(project=project, instance_key="k-lost", original_name="lost-event.png",
                                 checksum="0" * 64, created_by=owner)
    Image.objects.create(study=study, original="studies/lost.png", width=64, height=64, media_type="image/png")
    redis_client().incr(_sequence_key(project.pk))
    publish(project.pk, "model.repredict.progress", model_version=1, done=1, total=2)  # the next event: a gap
    expect(page.locator("#worklist-body tr[data-study]")).to_have_count(1)
    expect(page.locator("#worklist-body")).to_contain_text("lost-event.png")
    assert page.evaluate("window.__live.gaps") == 1


def test_a_worklist_opened_mid_re_prediction_says_how_far_it_is_and_keeps_the_old_readings_marked(
        live_asgi_server, project, owner, member, page_as):
    """Issue 32, row 3: v2 was promoted and has read one of two studies; the other still shows v1's reading."""
    _v2, done, waiting = two_studies_mid_reprediction(project, owner, {"state": "running"})

    page = page_as(member)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/")
    expect(page.locator("#repredict-progress")).to_have_text("predicting 1 / 2")  # no live event needed
    expect(page.locator(f"tr[data-study='{waiting.pk}']")).to_contain_text("100.0")
    expect(page.locator(f"tr[data-study='{waiting.pk}'] .previous-model-tag")).to_have_text("from v1, the previous model")
    expect(page.locator(f"tr[data-study='{done.pk}']")).to_contain_text("120.0")
    expect(page.locator(f"tr[data-study='{done.pk}'] .previous-model-tag")).to_have_count(0)

    page.goto(f"{live_asgi_server}/studies/{waiting.pk}/")
    expect(page.locator("#pred-model")).to_have_text("· v1")
    expect(page.locator("#pred-age")).to_have_text("8 y 4 m")
    expect(page.locator("#pred-previous")).to_contain_text("Read by v1, the previous model")
