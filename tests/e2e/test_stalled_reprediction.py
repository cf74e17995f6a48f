"""The worklist of a project whose re-prediction's worker died says so and why, keeps the earlier model's readings,
and offers a trainer to run it again (issue 32, row 3)."""
from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WHY = ("The worker re-predicting with v2 stopped (no sign of life for 60 s) after 1 of 2 studies; the others keep "
       "v1's reading. Run it again to finish.")


@pytest.fixture
def stopped_after_one_of_two(project, owner, settings):
    """v2 was promoted and read one of two studies before its worker died; the watchdog ended it failed."""
    import redis
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
                                     status="active", reprediction={"state": "failed", "done": 1, "total": 2,
                                                                    "replaces": v1.pk, "error": WHY})
    for study in (done, waiting):
        Prediction.objects.create(study=study, model_version=v1, age_months=100, std_months=5)
    Prediction.objects.create(study=done, model_version=v2, age_months=120, std_months=5)
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
