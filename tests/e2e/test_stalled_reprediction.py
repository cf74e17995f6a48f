"""The worklist of a project whose re-prediction's worker died says so and why, keeps the earlier model's readings,
and offers a trainer to run it again (issue 32, row 3)."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import two_studies_mid_reprediction

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WHY = ("The worker re-predicting with v2 stopped (no sign of life for 60 s) after 1 of 2 studies; the others keep "
       "v1's reading. Run it again to finish.")


@pytest.fixture
def stopped_after_one_of_two(project, owner, settings):
    """v2 was promoted and read one of two studies before its worker died; the watchdog ended it failed."""
    import redis

    v2, _done, waiting = two_studies_mid_reprediction(project, owner, {"state": "failed", "error": WHY})
    yield v2, waiting
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("cpu", "gpu")  # the task the button enqueued


def test_a_labeler_reads_why_it_stopped_and_the_old_reading_stays_but_gets_no_button(
        live_asgi_server, project, member, page_as, stopped_after_one_of_two):
    _v2, waiting = stopped_after_one_of_two
    page = page_as(member)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/")
    expect(page.locator("#repredict-stopped")).to_be_visible()
    expect(page.locator("#repredict-stopped-why")).to_have_text(WHY)
    expect(page.locator("#repredict-progress")).to_be_hidden()
    expect(page.locator(f"tr[data-study='{waiting.pk}'] .previous-model-tag")).to_have_text("from v1, the previous model")
    expect(page.locator("#repredict-again")).to_have_count(0)


def test_a_trainer_runs_it_again_and_the_page_says_how_far_it_is(
        live_asgi_server, project, owner, page_as, stopped_after_one_of_two):
    from boneage.modeling.models import ModelVersion

    v2, _waiting = stopped_after_one_of_two
    page = page_as(owner)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/")
    page.get_by_role("button", name="Run it again").click()
    expect(page.locator("#repredict-stopped")).to_be_hidden()
    expect(page.locator("#repredict-progress")).to_have_text("predicting 0 / 1")  # the one study v2 has not read
    assert ModelVersion.objects.get(pk=v2.pk).reprediction["state"] == "queued"
