"""A reviewer in a real browser: the queue shows the disagreement, they claim it, decide a new value, and the
gold label is what the study API answers; the open count drops to zero on the page."""
from __future__ import annotations

import numpy as np
import pytest

from tests.live_support import login, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def disagreement(project, owner, make_user):
    """A study labelled 100 months that an out-of-fold model reads as 150 ± 5 months, and a reviewer."""
    from boneage.modeling.models import ModelVersion, Prediction
    from boneage.review.hooks import study_changed
    from boneage.review.models import ReviewItem
    from boneage.studies.actions import IngestFields, do_ingest, do_set_role

    from tests.dicom_factory import png_bytes

    reviewer = make_user("rita_reviewer")
    do_set_role(project, reviewer, "reviewer", actor=owner)
    pixels = np.zeros((96, 80), np.uint8)
    pixels[20:80, 20:60] = 200
    study = do_ingest(project, owner, png_bytes(pixels), "hand.png", IngestFields(sex="F", bone_age_months=100)).study
    version = ModelVersion.objects.create(project=project, name="v1", checkpoint="models/dummy.pt", sha256="0" * 64,
                                          status="active")
    Prediction.objects.create(study=study, model_version=version, age_months=150, std_months=5, out_of_fold=True)
    study_changed(study.pk, "prediction")
    return reviewer, study, ReviewItem.objects.get(study=study)


def test_a_reviewer_claims_decides_and_the_gold_label_is_the_studys_label(live_asgi_server, browser_page, disagreement):
    from boneage.annotations.actions import current_label

    reviewer, study, item = disagreement
    page = browser_page
    login(page, live_asgi_server, reviewer.username, f"{reviewer.username}-Pass-123")
    page.goto(f"{live_asgi_server}/projects/{study.project_id}/review/")
    page.wait_for_selector("#live-state[data-state=live]", timeout=15000)
    page.locator("#review-count").filter(has_text="1").wait_for(timeout=10000)
    page.click(f"#queue tr[data-item='{item.pk}']")
    page.locator("#detail").filter(has_text="150.0 ± 5.0 months").wait_for(timeout=10000)
    page.click("#claim")
    page.locator("#item-state").filter(has_text="claimed by you").wait_for(timeout=10000)
    page.fill("#new-value", "131.5")
    page.click("#decide-new-value")
    page.locator("#outcome").filter(has_text="new_value by rita_reviewer").wait_for(timeout=10000)
    page.locator("#review-count").filter(has_text="0").wait_for(timeout=10000)
    screenshot(page, "review-decided")

    label = page.evaluate(f"fetch('/api/studies/{study.pk}/').then(r => r.json()).then(s => s.label)")
    assert label["months"] == 131.5 and label["source"] == "review"
    gold = current_label(study)
    assert (gold.months, gold.source, gold.author) == (131.5, "review", reviewer)
    history = page.evaluate(f"fetch('/api/studies/{study.pk}/history/').then(r => r.json())")
    assert [event["verb"] for event in history][-2:] == ["label.saved", "review.resolved"]
