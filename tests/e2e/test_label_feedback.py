"""A labeler in a real browser: an invalid age is never sent, the server's reason stands next to the field, and a
save that opens a review item says so."""
from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def judged_study(project, owner):
    """An unlabelled study that an out-of-fold model reads as 150 ± 5 months."""
    from boneage.modeling.models import ModelVersion, Prediction
    from boneage.studies.actions import IngestFields, do_ingest

    from tests.dicom_factory import png_bytes

    pixels = np.zeros((96, 80), np.uint8)
    pixels[20:80, 20:60] = 200
    study = do_ingest(project, owner, png_bytes(pixels), "hand.png", IngestFields(sex="F")).study
    version = ModelVersion.objects.create(project=project, name="v1", checkpoint="models/dummy.pt", sha256="0" * 64,
                                          status="active")
    Prediction.objects.create(study=study, model_version=version, age_months=150, std_months=5, out_of_fold=True)
    return study


def test_a_labeler_is_told_their_save_opened_a_review_item_and_bad_input_is_not_sent(
        page_as, live_asgi_server, member, project, judged_study):
    from boneage.annotations.models import AgeLabel
    from boneage.studies.actions import do_update_project

    do_update_project(project, {"max_age_months": 200.0})
    page = page_as(member)
    posted: list[str] = []
    page.on("request", lambda request: request.method == "POST" and "/labels/" in request.url and posted.append(request.url))
    page.goto(f"{live_asgi_server}/studies/{judged_study.pk}/")
    page.wait_for_selector("#live-state[data-state=live]", timeout=15000)

    expect(page.locator("#label-range")).to_have_text("This project labels 0–200 months.")
    page.fill("#age-total", "999")  # above this project's range: said on Total months, in months, nothing is sent
    page.click("#label-form button[type=submit]")
    error = "999 months is above this project's range: 0–200 months."
    expect(page.locator("#label-error")).to_have_text(error)
    assert page.eval_on_selector("#age-total", "e => e.validationMessage") == error
    assert page.eval_on_selector("#age-years", "e => e.validity.valid")  # 83 years is the total's problem, not theirs
    expect(page.locator("#age-years")).to_have_value("83")
    assert posted == [] and not AgeLabel.objects.filter(study=judged_study).exists()

    page.fill("#age-total", "100")  # 50 months below the model's 150 ± 5: the rules open a review item
    page.click("#label-form button[type=submit]")
    expect(page.locator("#toasts")).to_contain_text("Your save opened a review item")
    expect(page.locator("#label-error")).to_be_hidden()
    assert AgeLabel.objects.get(study=judged_study).months == 100

    page.fill("#age-total", "104")  # the history tells people what happened, in words
    page.click("#label-form button[type=submit]")
    change = page.locator("#history li[data-verb='label.saved']").first
    expect(change).to_contain_text("max_member changed the bone age 100 → 104 months")
    expect(change.locator("time")).to_have_attribute("title", re.compile(r"\d"))  # the exact time on hover
    expect(change.locator("details pre")).to_be_hidden()  # raw values behind the toggle
