"""A film outside the model's experience (ml.ood, issue 29) goes to the review queue first, with the reason in words,
and its reading, a guess, accuses no label."""
from __future__ import annotations

import pytest
from boneage.review import rules

from tests.boneage.review.helpers import open_items

pytestmark = pytest.mark.django_db

FAR = "the film's features are unlike anything this model was trained on (distance 38.1, threshold 11.8)"


def test_a_reading_outside_the_models_experience_opens_a_model_outside_item_with_the_reason(
        make_study, model_version, predict):
    study = make_study()
    predict(study, model_version(), 100, 6, outside=True, outside_reason=FAR, ood_score=3.2)
    [item] = open_items(study, "model_outside")
    assert item.evidence["outside_reason"] == FAR and item.magnitude == pytest.approx(3.2) and item.unit == "ratio"
    assert item.priority == pytest.approx(rules.OUTSIDE_PRIORITY + 3.2)


def test_a_reading_inside_the_models_experience_opens_nothing(make_study, model_version, predict):
    study = make_study()
    predict(study, model_version(), 100, 6, outside=False, outside_reason="", ood_score=0.4)
    assert open_items(study) == []


def test_a_version_without_a_reference_does_not_flag_its_films(make_study, model_version, predict):
    study = make_study()
    predict(study, model_version(), 100, 6, outside=False, outside_reason="no reference: this model version …")
    assert open_items(study, "model_outside") == []


def test_the_outside_film_comes_before_every_disagreement_in_the_queue(make_study, model_version, predict, api_as,
                                                                       reviewer, project):
    version = model_version()
    wrong, unfamiliar = make_study(10), make_study()
    predict(wrong, version, 230, 0.5)  # a 220-month disagreement with a tiny std: the largest priority it can reach
    predict(unfamiliar, version, 100, 6, outside=True, outside_reason="no hand found (detection score 0.12)",
            ood_score=None)
    items = api_as(reviewer).get(f"/api/projects/{project.pk}/review-items/").json()["results"]
    assert [item["reason"] for item in items][:2] == ["model_outside", "model_vs_label"]
    assert items[0]["study"] == unfamiliar.pk


def test_an_outside_reading_does_not_accuse_its_label_its_interval_is_the_whole_age_range(
        make_study, model_version, predict):
    study = make_study(20)
    predict(study, model_version(), 175, 6, outside=True, outside_reason=FAR, ood_score=2.0)
    assert open_items(study, "model_vs_label") == []
    [item] = open_items(study, "model_outside")
    assert item.evidence["prediction"]["interval_months"] == [0.0, 240.0]


def test_a_project_may_switch_the_rule_off(make_study, model_version, predict, api_as, owner, project):
    response = api_as(owner).patch(f"/api/projects/{project.pk}/review-settings/", {"model_outside": {"enabled": False}},
                                   format="json")
    assert response.status_code == 200, response.content
    study = make_study()
    predict(study, model_version(), 100, 6, outside=True, outside_reason=FAR, ood_score=3.0)
    assert open_items(study, "model_outside") == []


def test_a_review_item_whose_interval_too_few_held_out_studies_calibrate_says_why_in_its_evidence(
        make_study, model_version, predict, project):
    from boneage.modeling.models import ModelVersion

    project.interval_level = 0.95
    project.save()
    version = model_version()
    ModelVersion.objects.filter(pk=version.pk).update(metrics={"interval_scores": [0.1 * i for i in range(1, 13)]})
    study = make_study(20)
    predict(study, version, 175, 6, outside=True, outside_reason=FAR, ood_score=2.0)
    [item] = open_items(study, "model_outside")
    assert item.evidence["prediction"]["interval_note"].startswith(
        "12 held-out studies cannot calibrate a 95% interval (it needs 19)")
