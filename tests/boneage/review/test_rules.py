"""Each disagreement rule opens an item, keeps it current while the cause lasts and closes it (with an
audit event) when the cause disappears."""
from __future__ import annotations

import math

import pytest
from boneage.audit.models import AuditEvent
from boneage.review.actions import evaluate_study
from boneage.review.models import ReviewItem
from boneage.studies.models import Project

from tests.boneage.review.helpers import open_items

pytestmark = pytest.mark.django_db


def closed_events(item):
    return AuditEvent.objects.filter(verb="review.closed", object_type="review.reviewitem", object_id=str(item.pk))


# --- model vs label ----------------------------------------------------------------------------------

def test_a_label_outside_the_models_95_percent_interval_opens_a_model_vs_label_item(make_study, model_version, predict):
    study = make_study(100)
    predict(study, model_version(), 150, 5)
    [item] = open_items(study, "model_vs_label")
    assert item.magnitude == pytest.approx(50)
    assert item.priority == pytest.approx(50 / 5)
    assert item.evidence["label"]["months"] == 100 and item.evidence["prediction"]["age_months"] == 150
    assert AuditEvent.objects.filter(verb="review.queued", study=study).count() == 1


def test_a_difference_inside_the_interval_opens_nothing(make_study, model_version, predict):
    study = make_study(100)
    predict(study, model_version(), 115, 10)  # 15 months < 1.645 × 10: inside the 90% interval
    assert open_items(study) == []


def test_the_rule_uses_the_projects_one_interval_level(make_study, model_version, predict, project):
    project.interval_level = 0.95
    project.save()
    study = make_study(100)
    predict(study, model_version(), 124, 13)  # 24 months: inside 1.96 × 13 (95%), outside 1.645 × 13 (90%)
    assert open_items(study) == []
    project.interval_level = 0.9
    project.save()
    evaluate_study(study.pk)
    [item] = open_items(study, "model_vs_label")
    assert item.evidence["prediction"]["interval_level"] == 0.9
    assert item.evidence["prediction"]["interval_months"] == [102.6, 145.4]  # what the study page states: 124 ∓ 21.4


def test_a_model_that_trained_on_the_study_does_not_judge_its_label(make_study, model_version, predict):
    study = make_study(100)
    predict(study, model_version(trained_on=[study]), 150, 5, out_of_fold=False)
    assert open_items(study, "model_vs_label") == []


def test_an_unlabelled_study_is_judged_by_the_active_models_prediction_once_labelled(make_study, model_version, predict, label, member):
    study = make_study()
    predict(study, model_version(), 150, 5)
    assert open_items(study, "model_vs_label") == []
    label(study, 90, member)
    assert len(open_items(study, "model_vs_label")) == 1


def test_the_item_closes_itself_with_an_audit_event_when_the_label_is_corrected(make_study, model_version, predict, label, member):
    study = make_study(100)
    predict(study, model_version(), 150, 5)
    [item] = open_items(study)
    label(study, 148, member)
    item.refresh_from_db()
    assert item.state == "closed" and "label" in item.closed_reason
    [event] = closed_events(item)
    assert event.before["reason"] == "model_vs_label" and event.after["state"] == "closed"


def test_a_new_label_that_still_disagrees_updates_the_open_item_instead_of_opening_another(make_study, model_version, predict, label, member):
    study = make_study(100)
    predict(study, model_version(), 150, 5)
    label(study, 80, member)
    [item] = open_items(study)
    assert item.magnitude == pytest.approx(70) and item.evidence["label"]["months"] == 80
    assert ReviewItem.objects.filter(study=study).count() == 1


def test_a_new_model_version_that_agrees_closes_the_item(make_study, model_version, predict):
    study = make_study(100)
    old = model_version()
    predict(study, old, 150, 5)
    old.status = "retired"
    old.save()
    predict(study, model_version(), 104, 5)
    assert open_items(study) == []
    assert ReviewItem.objects.get(study=study).state == "closed"


# --- label vs label ------------------------------------------------------------------------------------

def test_two_experts_who_differ_by_more_than_12_months_open_a_label_vs_label_item(make_study, label, member, second_labeler):
    study = make_study()
    label(study, 100, member)
    assert open_items(study) == []
    label(study, 130, second_labeler)
    [item] = open_items(study, "label_vs_label")
    assert item.magnitude == pytest.approx(30)
    assert sorted(row["months"] for row in item.evidence["labels"]) == [100, 130]


def test_the_label_vs_label_item_closes_when_one_expert_comes_closer(make_study, label, member, second_labeler):
    study = make_study()
    label(study, 100, member)
    label(study, 130, second_labeler)
    [item] = open_items(study)
    label(study, 108, second_labeler)  # each expert's newest reading counts
    item.refresh_from_db()
    assert item.state == "closed" and closed_events(item).exists()


def test_one_expert_changing_their_own_mind_is_not_a_disagreement(make_study, label, member):
    study = make_study()
    label(study, 100, member)
    label(study, 150, member)
    assert open_items(study) == []


# --- mask vs mask --------------------------------------------------------------------------------------

def test_an_expert_mask_far_from_the_models_mask_opens_a_mask_vs_mask_item(make_study, model_version, predict, draw_mask, member):
    from tests.boneage.review.helpers import rectangle

    study = make_study()
    predict(study, model_version(), 100, 5, mask=rectangle((0, 48, 0, 32)))
    draw_mask(study, (0, 48, 16, 48), member)  # overlaps half: Dice 0.5
    [item] = open_items(study, "mask_vs_mask")
    assert item.evidence["dice"] == pytest.approx(0.5) and item.evidence["between"] == "model"
    assert item.unit == "dice" and item.magnitude == pytest.approx(0.5)


def test_the_mask_item_closes_when_the_expert_mask_is_fixed(make_study, model_version, predict, draw_mask, member):
    from tests.boneage.review.helpers import rectangle

    study = make_study()
    predict(study, model_version(), 100, 5, mask=rectangle((0, 48, 0, 32)))
    draw_mask(study, (0, 48, 16, 48), member)
    [item] = open_items(study)
    draw_mask(study, (0, 48, 0, 33), member)
    item.refresh_from_db()
    assert item.state == "closed" and closed_events(item).exists()


def test_two_experts_masks_that_disagree_open_a_mask_item(make_study, draw_mask, member, second_labeler):
    study = make_study()
    draw_mask(study, (0, 24, 0, 64), member)
    draw_mask(study, (24, 48, 0, 64), second_labeler)  # no overlap: Dice 0
    [item] = open_items(study, "mask_vs_mask")
    assert item.evidence["between"] == "experts" and item.evidence["dice"] == 0


def test_canny_masks_are_never_compared(make_study, model_version, predict, draw_mask, member):
    from tests.boneage.review.helpers import rectangle

    study = make_study()
    predict(study, model_version(), 100, 5, mask=rectangle((0, 48, 0, 32)))
    draw_mask(study, (0, 48, 32, 64), member, source="canny")
    assert open_items(study) == []


# --- model unsure --------------------------------------------------------------------------------------

def test_a_prediction_with_a_std_above_the_threshold_opens_a_model_unsure_item(make_study, model_version, predict):
    study = make_study()
    predict(study, model_version(), 100, 25)
    [item] = open_items(study, "model_unsure")
    assert item.magnitude == 25 and item.priority == pytest.approx(1.4 * (1 - math.exp(-25 / 18)))


def test_unsure_is_measured_against_what_the_model_usually_is(make_study, model_version, predict):
    version = model_version()
    version.metrics = {"std_median": 20.0}  # a vague model: ± 20 months is its usual self
    version.save()
    usual, unusual = make_study(), make_study()
    predict(usual, version, 100, 30)     # 1.5 × its usual std: not flagged, though above the absolute 18
    predict(unusual, version, 100, 45)   # 2.25 × its usual std
    assert open_items(usual) == []
    [item] = open_items(unusual, "model_unsure")
    assert item.evidence["threshold_std_months"] == 40.0 and item.evidence["usual_std_months"] == 20.0


def test_an_unsure_model_never_outranks_a_disagreement_past_its_threshold(make_study, model_version, predict):
    version = model_version()
    very_unsure, wrong = make_study(), make_study(100)
    predict(very_unsure, version, 100, 200)
    predict(wrong, version, 160, 12)  # 60 months, just past max(12, 2.24 × 12 = 26.9)
    [unsure] = open_items(very_unsure, "model_unsure")
    [disagreement] = open_items(wrong, "model_vs_label")
    assert unsure.priority < 1.41 < disagreement.priority


def test_the_unsure_item_closes_when_a_newer_active_model_is_sure(make_study, model_version, predict):
    study = make_study()
    old = model_version()
    predict(study, old, 100, 25)
    old.status = "retired"
    old.save()
    predict(study, model_version(), 100, 4)
    assert open_items(study) == []
    assert closed_events(ReviewItem.objects.get(study=study)).exists()


# --- settings and re-runs ------------------------------------------------------------------------------

def test_a_disabled_rule_closes_its_items_when_the_rules_re_run(make_study, model_version, predict, project):
    study = make_study()
    predict(study, model_version(), 100, 25)
    project.settings = {"review": {"model_unsure": {"enabled": False}}}
    project.save()
    assert evaluate_study(study.pk, cause="settings")["closed"]
    assert open_items(study) == []


def test_a_lower_floor_from_the_project_settings_opens_more(make_study, model_version, predict, project):
    study = make_study(100)
    predict(study, model_version(), 115, 4)  # 15 months: outside 100 ± 1.645 × 4, but under the default 20-month floor
    assert open_items(study, "model_vs_label") == []
    project.settings = {"review": {"model_vs_label": {"min_months": 12}}}
    project.save()
    evaluate_study(study.pk)
    assert len(open_items(study, "model_vs_label")) == 1


def test_re_running_the_rules_twice_changes_nothing(make_study, model_version, predict):
    study = make_study(100)
    predict(study, model_version(), 150, 5)
    assert evaluate_study(study.pk) == {"opened": [], "updated": [], "closed": []}
    assert ReviewItem.objects.filter(study=study).count() == 1


# A model that reads every held-out hand 18–22 months low, with a std of 5 (its version's stored held-out readings).
READS_LOW = {"pred": [100.0 + 3 * i for i in range(40)], "label": [120.0 + 3 * i + (i % 5) - 2 for i in range(40)],
             "std": [5.0] * 40}


@pytest.fixture
def age_aware(monkeypatch):
    """Age-aware intervals switched on (bias correction and signed multipliers) for versions with held-out readings."""
    from boneage.modeling import intervals

    from ml.age_intervals import Method

    monkeypatch.setattr(intervals, "METHOD", Method(correct_bias=True, signed=True))


def test_a_label_where_the_model_usually_reads_it_is_not_flagged_however_far_from_the_reading(make_study, model_version,
                                                                                             predict, age_aware):
    version = model_version()
    version.metrics = {"interval_heldout": READS_LOW}
    version.save()
    study = make_study(170)
    predict(study, version, 150, 5)  # 20 months low, as this model reads every hand: inside its interval (168–172)
    assert open_items(study, "model_vs_label") == []


def test_a_label_below_an_interval_that_sits_above_the_reading_is_flagged_past_min_months(make_study, model_version,
                                                                                         predict, age_aware):
    version = model_version()
    version.metrics = {"interval_heldout": READS_LOW}
    version.save()
    near, far = make_study(160), make_study(125)
    predict(near, version, 150, 5)  # below the interval, but only 10 months from the reading: under min_months
    predict(far, version, 150, 5)
    assert open_items(near, "model_vs_label") == []
    [item] = open_items(far, "model_vs_label")
    low, high = item.evidence["prediction"]["interval_months"]
    assert 150 < low < high and item.evidence["threshold_months"] == 20.0 and item.magnitude == pytest.approx(25)


def test_a_second_rescore_of_a_project_being_rescored_is_refused_and_changes_nothing(project, tmp_path):
    from boneage.review.management.commands.review_rescore import rescore_lock
    from django.core.management import CommandError, call_command

    settings_before = Project.objects.get(pk=project.pk).settings
    held = rescore_lock(project.pk)
    assert held.acquire(blocking=False)
    try:
        with pytest.raises(CommandError, match="is being re-scored by another review_rescore run"):
            call_command("review_rescore", project=project.name, workdir=str(tmp_path), methods="plain", levels="0.9",
                         min_months="20")
    finally:
        held.release()
    assert Project.objects.get(pk=project.pk).settings == settings_before
    after = rescore_lock(project.pk)
    assert after.acquire(blocking=False)  # the holder's release freed it: the refused run took nothing
    after.release()


def test_at_95_percent_twelve_held_out_studies_pooled_with_an_earlier_model_still_let_the_rule_flag_a_far_label(
        make_study, model_version, predict, project):
    from boneage.modeling.models import ModelVersion

    project.interval_level = 0.95
    project.save()
    version = model_version()
    twelve, earlier = [0.1 * i for i in range(1, 13)], [round(0.05 * i, 2) for i in range(1, 41)]
    ModelVersion.objects.filter(pk=version.pk).update(metrics={
        "interval_scores": twelve, "interval_fallback": [{"source": "v0", "scores": earlier}]})
    study = make_study(100)
    predict(study, version, 175, 6)  # pooled 95 % interval 175 ± 1.95 · 6: the label, 75 months off, is outside
    [item] = open_items(study, "model_vs_label")
    assert item.evidence["prediction"]["interval_months"] == [163.3, 186.7]
    assert "pooled with v0's 40 held-out studies" in item.evidence["prediction"]["interval_note"]
