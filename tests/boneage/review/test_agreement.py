"""The agreement metrics: expert MAE, model MAE against review decisions, mask Dice, what each rule did."""
from __future__ import annotations

import pytest

from tests.boneage.review.helpers import open_items, rectangle

pytestmark = pytest.mark.django_db


def test_the_agreement_numbers_add_up(api_as, reviewer, member, second_labeler, make_study, model_version, predict,
                                      label, draw_mask, committed):
    version = model_version()
    experts = make_study()
    label(experts, 100, member)
    label(experts, 130, second_labeler)        # experts differ by 30 months
    wrong = make_study(100)
    predict(wrong, version, 150, 5)            # model vs label: 50 months
    masked = make_study()
    predict(masked, version, 100, 30, mask=rectangle((0, 48, 0, 32)))  # model unsure (std 30)
    draw_mask(masked, (0, 48, 16, 48), member)  # Dice 0.5
    client = api_as(reviewer)
    [item] = open_items(wrong)
    with committed():
        client.post(f"/api/review-items/{item.pk}/resolve/", {"decision": "new_value", "months": 140}, format="json")
    [unsure] = open_items(masked, "model_unsure")
    with committed():
        client.post(f"/api/review-items/{unsure.pk}/resolve/", {"decision": "dismiss", "reason": "image is fine"}, format="json")

    body = client.get(f"/api/projects/{version.project_id}/agreement/").json()
    assert body["experts"] == {"mae_months": 30.0, "pairs": 1, "studies": 1}
    assert body["model_vs_review"]["mae_months"] == 10.0 and body["model_vs_review"]["n"] == 1
    assert body["mask_dice"]["model_vs_expert"]["n"] == 1 and body["mask_dice"]["model_vs_expert"]["median"] == 0.5
    assert sum(body["mask_dice"]["model_vs_expert"]["histogram"]) == 1
    rules = body["rules"]
    assert rules["model_vs_label"]["opened"] == 1 and rules["model_vs_label"]["resolved"] == {"new_value": 1}
    assert rules["label_vs_label"] == {"opened": 1, "open": 1, "resolved": {}, "dismissed": 0, "closed": 0}
    assert rules["model_unsure"]["dismissed"] == 1 and rules["mask_vs_mask"]["open"] == 1
    assert body["open_count"] == 2


def test_an_empty_project_has_empty_metrics(api_as, member, project):
    body = api_as(member).get(f"/api/projects/{project.pk}/agreement/").json()
    assert body["experts"]["mae_months"] is None and body["mask_dice"]["model_vs_expert"] == {
        "n": 0, "bins": [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0], "histogram": [0, 0, 0, 0, 0, 0]}
