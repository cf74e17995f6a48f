"""A film outside the model's experience (issue 29): the study page says so with the reason, the worklist marks the
row, the review queue has it first with the reason, and the worklist carries the project banner when most films are
outside."""
from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.live_support import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FAR = "the film's features are unlike anything this model was trained on (distance 38.1, threshold 11.8)"


@pytest.fixture
def unfamiliar_film(project, owner, make_user):
    """An unlabelled study that the active model (the starter) reads as 175 ± 6 but flags as outside its experience."""
    from boneage.modeling.models import ModelVersion, Prediction
    from boneage.review.hooks import study_changed
    from boneage.studies.actions import IngestFields, do_ingest, do_set_role

    from tests.dicom_factory import png_bytes

    reviewer = make_user("rita_reviewer")
    do_set_role(project, reviewer, "reviewer", actor=owner)
    pixels = np.zeros((96, 80), np.uint8)
    pixels[20:80, 20:60] = 200
    study = do_ingest(project, owner, png_bytes(pixels), "inverted.png", IngestFields(sex="F")).study
    version = ModelVersion.objects.create(project=project, name="starter", checkpoint="models/dummy.pt",
                                          sha256="0" * 64, status="active", metrics={"val_mae": 7.0})
    Prediction.objects.create(study=study, model_version=version, age_months=175, std_months=6, outside=True,
                              outside_reason=FAR, ood_score=3.2)
    study_changed(study.pk, "prediction")
    return reviewer, study


def test_the_study_page_the_worklist_and_the_review_queue_say_outside_this_models_experience(
        live_asgi_server, browser_page, unfamiliar_film):
    reviewer, study = unfamiliar_film
    page = browser_page
    login(page, live_asgi_server, reviewer.username, f"{reviewer.username}-Pass-123")

    page.goto(f"{live_asgi_server}/studies/{study.pk}/")
    expect(page.locator("#pred-outside")).to_be_visible()
    expect(page.locator("#pred-outside")).to_contain_text(f"Outside this model's experience: {FAR}")
    expect(page.locator("#pred-interval")).to_contain_text("0.0–240.0")  # the whole age range, not 175 ± 10

    page.goto(f"{live_asgi_server}/projects/{study.project_id}/")
    tag = page.locator(f"tr[data-study='{study.pk}'] .outside-tag")
    expect(tag).to_have_text("outside this model's experience")
    expect(tag).to_have_attribute("title", FAR)
    expect(page.locator("#outside-banner")).to_contain_text("1 of 1 predicted films are outside the experience")

    page.goto(f"{live_asgi_server}/projects/{study.project_id}/review/")
    first = page.locator("#queue tr[data-item]").first
    expect(first).to_contain_text("outside this model's experience")
    first.click()
    page.locator("#detail").filter(has_text=FAR).wait_for(timeout=10000)
