"""A reviewer in a real browser: the queue shows the disagreement, they claim it, decide a new value, and the
gold label is what the study API answers and what the open study page shows, with the decision in its history
panel and the header's open count dropping to zero. A mask disagreement is decided from the mask editor."""
from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.boneage.review.helpers import mask_file, rectangle
from tests.e2e.conftest import disagreeing_study
from tests.live_support import login, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def disagreement(project, owner, make_user):
    """A study labelled 100 months that an out-of-fold model reads as 150 ± 5 months, and a reviewer."""
    from boneage.review.models import ReviewItem
    from boneage.studies.actions import do_set_role

    reviewer = make_user("rita_reviewer")
    do_set_role(project, reviewer, "reviewer", actor=owner)
    study = disagreeing_study(project, owner)
    return reviewer, study, ReviewItem.objects.get(study=study)


def test_a_reviewer_claims_decides_and_the_gold_label_is_the_studys_label(live_asgi_server, browser_page, disagreement):
    from boneage.annotations.actions import current_label

    reviewer, study, item = disagreement
    page = browser_page
    login(page, live_asgi_server, reviewer.username, f"{reviewer.username}-Pass-123")
    study_page = page.context.new_page()  # the study stays open in another tab and follows the decision live
    study_page.goto(f"{live_asgi_server}/studies/{study.pk}/")
    study_page.wait_for_selector("#live-state[data-state=live]", timeout=15000)
    expect(study_page.locator("#review-counter")).to_have_text("1")
    expect(study_page.locator("#history li[data-verb='review.queued']")).to_contain_text(
        "The model vs label rule put this study in the review queue")  # in words (issue 32, row 10)
    expect(study_page.locator("#label-current")).to_contain_text("(100 mo) · import")

    page.bring_to_front()
    page.goto(f"{live_asgi_server}/projects/{study.project_id}/review/")
    page.wait_for_selector("#live-state[data-state=live]", timeout=15000)
    page.locator("#review-count").filter(has_text="1").wait_for(timeout=10000)
    expect(page.locator("#review-counter")).to_have_text("1")  # the header's counter, on every project page
    expect(page.locator(f"#queue tr[data-item='{item.pk}']")).to_contain_text("hand.png")  # the name every page uses
    page.click(f"#queue tr[data-item='{item.pk}']")
    page.locator("#detail").filter(has_text="150.0 months (90% interval 141.8–158.2)").wait_for(timeout=10000)
    assert page.url.endswith(f"/review/?item={item.pk}")  # the address follows the selected item
    expect(page.locator("#decide-new-value")).to_be_disabled()  # deciding waits for the claim
    page.reload()
    page.locator("#detail").filter(has_text="150.0 months (90% interval 141.8–158.2)").wait_for(timeout=10000)  # reopened from the URL
    page.click("#claim")
    expect(page.locator("#decide-new-value")).to_be_enabled()
    page.locator("#item-state").filter(has_text="claimed by you").wait_for(timeout=10000)
    page.fill("#new-value", "131.5")
    page.click("#decide-new-value")
    expect(page.locator("#outcome")).to_have_text("rita_reviewer set a new gold value: 131.5 months.")
    page.locator("#review-count").filter(has_text="0").wait_for(timeout=10000)
    expect(page.locator("#review-counter")).to_have_text("0")
    screenshot(page, "review-decided")

    study_page.bring_to_front()
    expect(study_page.locator("#review-counter")).to_have_text("0")
    expect(study_page.locator("#label-current")).to_contain_text("10 y 11.5 m (131.5 mo) · review · rita_reviewer")
    decision = study_page.locator("#history li[data-verb='review.resolved']")
    expect(decision.locator(".history-sentence")).to_have_text("rita_reviewer set a new gold value: 131.5 months")
    rules = page.locator("#rules")
    expect(rules).to_contain_text("Smallest gap (months)")
    assert "min_months" not in rules.inner_text() and "priority =" not in rules.inner_text()
    screenshot(study_page, "review-decided-study-page")

    label = page.evaluate(f"fetch('/api/studies/{study.pk}/').then(r => r.json()).then(s => s.label)")
    assert label["months"] == 131.5 and label["source"] == "review"
    gold = current_label(study)
    assert (gold.months, gold.source, gold.author) == (131.5, "review", reviewer)
    history = page.evaluate(f"fetch('/api/studies/{study.pk}/history/').then(r => r.json())")
    assert [event["verb"] for event in history][-2:] == ["label.saved", "review.resolved"]


@pytest.fixture
def mask_disagreement(project, owner, make_user):
    """A blind-review project; a study whose expert mask and the model's mask overlap with Dice 0.5; a reviewer."""
    from boneage.annotations.actions import do_save_mask
    from boneage.modeling.models import ModelVersion, Prediction
    from boneage.review.hooks import study_changed
    from boneage.review.models import ReviewItem
    from boneage.studies.actions import IngestFields, do_ingest, do_set_role

    from tests.dicom_factory import png_bytes

    project.settings = {"review": {"blind": True}}
    project.save()
    reviewer = make_user("rita_reviewer")
    do_set_role(project, reviewer, "reviewer", actor=owner)
    pixels = np.zeros((96, 80), np.uint8)
    pixels[20:80, 20:60] = 200
    study = do_ingest(project, owner, png_bytes(pixels), "hand.png", IngestFields(sex="F")).study
    do_save_mask(study, rectangle((20, 80, 20, 60), (96, 80)), source="expert", author=owner, enforce_base=False)
    version = ModelVersion.objects.create(project=project, name="v1", checkpoint="models/dummy.pt", sha256="0" * 64,
                                          status="active")
    Prediction.objects.create(study=study, model_version=version, age_months=120, std_months=5, out_of_fold=True,
                              mask=mask_file(rectangle((20, 40, 20, 60), (96, 80))))
    study_changed(study.pk, "prediction")
    return reviewer, study, ReviewItem.objects.get(study=study, reason="mask_vs_mask", state="open")


def test_saving_a_corrected_mask_from_the_review_link_decides_the_item_and_a_refusal_loses_nothing(
        live_asgi_server, browser_page, mask_disagreement):
    from boneage.annotations.models import MaskRevision

    reviewer, study, item = mask_disagreement
    page = browser_page
    login(page, live_asgi_server, reviewer.username, f"{reviewer.username}-Pass-123")
    page.goto(f"{live_asgi_server}/studies/{study.pk}/?review_item={item.pk}#mask")  # review.js's "correct the mask" link
    expect(page.locator("#study")).to_have_attribute("data-ready", "1")
    expect(page.locator("#study")).to_have_attribute("data-review", "active")
    expect(page.locator("#review-banner")).to_contain_text(f"Review item {item.pk} (mask vs mask)")
    save = page.locator("[data-action=save-mask]")
    expect(save).to_have_text("Save mask & decide")

    page.evaluate("""() => {  // the model's region only: rows 20–40 of the 80×96 image
        const mask = new Uint8Array(80 * 96);
        for (let y = 20; y < 40; y++) for (let x = 20; x < 60; x++) mask[y * 80 + x] = 1;
        __editor.replace(mask, { label: "correct to the model" });
    }""")
    save.click()  # blind review: the server wants the reviewer's own reading first
    banner = page.locator("#review-banner")
    expect(banner).to_have_attribute("data-state", "error")
    expect(banner).to_contain_text("Not decided")
    expect(banner).to_contain_text("blind_read_required")
    expect(page.locator("#study")).to_have_attribute("data-draft", "saved")  # nothing lost: the edit is a local draft
    expect(save).to_be_enabled()
    expect(page.locator("[data-action=save-mask-plain]")).to_be_visible()
    assert not MaskRevision.objects.filter(study=study, source="review").exists()
    screenshot(page, "review-mask-refused")

    status = page.evaluate(f"""() => fetch("/api/review-items/{item.pk}/blind-read/", {{method: "POST",
        headers: {{"Content-Type": "application/json", "X-CSRFToken": document.cookie.match(/csrftoken=([^;]+)/)[1]}},
        body: JSON.stringify({{months: 120}})}}).then((r) => r.status)""")
    assert status == 200
    save.click()
    expect(banner).to_have_attribute("data-state", "ok")
    expect(banner).to_contain_text(f"review item {item.pk} is resolved")
    expect(save).to_be_disabled()
    expect(save).to_have_text("Save mask")
    item.refresh_from_db()
    gold = MaskRevision.objects.get(pk=item.outcome["gold_mask"])
    assert (item.state, item.decision, item.resolved_by) == ("resolved", "mask", reviewer)
    assert (gold.source, gold.author, gold.study_id) == ("review", reviewer, study.pk)
    assert gold.area_fraction == pytest.approx(20 * 40 / (80 * 96))
    expect(page.locator("#edit-rev")).to_contain_text(f"rev {gold.pk} · review")
    expect(page.locator("#history li[data-verb='review.resolved']")).to_contain_text("rita_reviewer drew a corrected mask; it is the gold mask")
    assert page.evaluate("__study.dirty") is False
    screenshot(page, "review-mask-decided")
