"""One interval level per project: the latest prediction and the worklist state it, calibrated per model version and
clipped to the project's age range; an admin changes the level and every reading follows."""
from __future__ import annotations

import pytest
from boneage.modeling.models import ModelVersion, Prediction

pytestmark = pytest.mark.django_db

SCORES = [round(0.1 * i, 1) for i in range(1, 40)]  # n = 39: the 90 % multiplier is the 36th score, 3.6


@pytest.fixture
def predicted(project, owner, add_studies):
    study = add_studies(project, owner, 1, labelled=False)[0]
    version = ModelVersion.objects.create(project=project, name="v1", checkpoint="x", sha256="0" * 64, status="active",
                                          metrics={"val_mae": 9.0, "interval_scores": SCORES})
    Prediction.objects.create(study=study, model_version=version, age_months=10.0, std_months=5.0)
    return study


def test_the_latest_prediction_states_the_projects_interval_clipped_to_its_age_range(api_as, member, predicted):
    body = api_as(member).get(f"/api/studies/{predicted.pk}/predictions/latest/").json()
    assert body["interval_level"] == 0.9 and body["interval_calibrated"] is True
    assert body["interval_months"] == [0.0, 28.0]  # 10 ± 3.6 · 5 = −8 … 28, never below 0 months


def test_the_worklist_shows_the_same_interval(api_as, member, project, predicted):
    rows = api_as(member).get(f"/api/projects/{project.pk}/worklist/").json()["results"]
    assert rows[0]["prediction"]["interval_months"] == [0.0, 28.0] and rows[0]["prediction"]["interval_level"] == 0.9


def test_an_admin_changes_the_level_and_every_reading_follows(api_as, owner, member, project, predicted):
    response = api_as(owner).patch(f"/api/projects/{project.pk}/", {"interval_level": 0.5}, format="json")
    assert response.status_code == 200 and response.json()["interval_level"] == 0.5
    body = api_as(member).get(f"/api/studies/{predicted.pk}/predictions/latest/").json()
    assert body["interval_level"] == 0.5 and body["interval_months"] == [0.0, 20.0]  # the 20th score: 2.0


@pytest.mark.parametrize("level", [0.3, 1.0, "ninety"])
def test_a_level_out_of_range_is_refused_and_nothing_changes(api_as, owner, project, level):
    response = api_as(owner).patch(f"/api/projects/{project.pk}/", {"interval_level": level}, format="json")
    assert response.status_code == 400 and "interval_level" in response.content.decode()
    project.refresh_from_db()
    assert project.interval_level == 0.9


def test_a_model_without_calibration_scores_says_its_interval_assumes_normal_errors(api_as, member, predicted):
    ModelVersion.objects.update(metrics={"val_mae": 9.0})
    body = api_as(member).get(f"/api/studies/{predicted.pk}/predictions/latest/").json()
    assert body["interval_calibrated"] is False and body["interval_months"] == [1.8, 18.2]  # 10 ± 1.645 · 5


# A model that reads every held-out hand 18–22 months low, with a std of 5: its age-aware interval sits above it.
READS_LOW = {"pred": [100.0 + 3 * i for i in range(40)], "label": [120.0 + 3 * i + (i % 5) - 2 for i in range(40)],
             "std": [5.0] * 40}


@pytest.fixture
def age_aware(monkeypatch):
    """Age-aware intervals switched on (bias correction and signed multipliers) for versions with held-out readings."""
    from boneage.modeling import intervals

    from ml.age_intervals import Method

    monkeypatch.setattr(intervals, "METHOD", Method(correct_bias=True, signed=True))


def test_a_version_without_held_out_readings_keeps_the_one_symmetric_multiplier_exactly(project, age_aware):
    from boneage.modeling.intervals import IntervalRule

    from ml.uncertainty import interval_multiplier, prediction_interval

    for metrics in ({"interval_scores": SCORES}, {"interval_scores": SCORES, "interval_heldout": {
            key: values[:9] for key, values in READS_LOW.items()}}):  # 9 readings: too few to fit anything on
        rule = IntervalRule.of(metrics, project)
        assert rule.age_aware is None and rule.calibrated
        for age, std in ((10.0, 5.0), (120.0, 8.0), (225.0, 12.0)):
            interval = rule.around(age, std)
            assert (interval.low, interval.high) == prediction_interval(age, std, interval_multiplier(SCORES, 0.9),
                                                                        0.0, 240.0)


def test_a_version_with_held_out_readings_states_an_interval_that_reaches_where_its_model_reads_low(api_as, member,
                                                                                                    predicted, age_aware):
    ModelVersion.objects.update(metrics={"val_mae": 9.0, "interval_scores": SCORES, "interval_heldout": READS_LOW})
    body = api_as(member).get(f"/api/studies/{predicted.pk}/predictions/latest/").json()
    low, high = body["interval_months"]
    assert body["interval_calibrated"] is True and body["interval_level"] == 0.9
    assert 10.0 < low < high <= 240.0  # the reading is 10 months; its model reads ~20 low, so the interval starts above


TWELVE = SCORES[:12]  # the demo's first model: 12 held-out studies (a 10 % split of ~120 labelled)


def test_twelve_held_out_studies_cannot_calibrate_a_95_percent_interval_and_the_api_says_so_and_how_many_it_needs(
        api_as, owner, member, project, predicted):
    ModelVersion.objects.update(metrics={"val_mae": 9.0, "interval_scores": TWELVE})
    api_as(owner).patch(f"/api/projects/{project.pk}/", {"interval_level": 0.95}, format="json")
    client = api_as(member)
    body = client.get(f"/api/studies/{predicted.pk}/predictions/latest/").json()
    assert body["interval_months"] == [0.0, 240.0] and body["interval_calibrated"] is False
    assert body["interval_note"].startswith("12 held-out studies cannot calibrate a 95% interval (it needs 19)")
    row = client.get(f"/api/projects/{project.pk}/worklist/").json()["results"][0]["prediction"]
    assert row["interval_calibrated"] is False and row["interval_note"] == body["interval_note"]


def test_at_90_percent_the_same_twelve_studies_calibrate_the_interval_and_nothing_is_noted(api_as, member, predicted):
    ModelVersion.objects.update(metrics={"val_mae": 9.0, "interval_scores": TWELVE})
    body = api_as(member).get(f"/api/studies/{predicted.pk}/predictions/latest/").json()
    assert body["interval_calibrated"] is True and body["interval_note"] == ""
    assert body["interval_months"] != [0.0, 240.0]


def test_the_settings_page_warns_when_the_level_needs_more_held_out_studies_than_the_active_model_has(
        api_as, owner, project, predicted):
    from django.test import Client

    ModelVersion.objects.update(metrics={"val_mae": 9.0, "interval_scores": TWELVE})
    browser = Client()
    browser.force_login(owner)
    assert 'id="interval-warning"' not in browser.get(f"/projects/{project.pk}/settings/").content.decode()
    api_as(owner).patch(f"/api/projects/{project.pk}/", {"interval_level": 0.95}, format="json")
    page = browser.get(f"/projects/{project.pk}/settings/").content.decode()
    assert ("The active model v1 is calibrated on 12 held-out studies: a 95% interval needs 19, so every interval reads "
            "as the whole age range and the model-vs-label rule cannot flag a label. 12 held-out studies support "
            "levels up to 92%.") in page


EARLIER = [round(0.05 * i, 2) for i in range(1, 41)]  # an earlier model's 40 held-out scores: the 95 % one is 1.95


def test_twelve_held_out_studies_pool_with_the_earlier_models_and_the_95_percent_interval_says_which_it_used(
        api_as, owner, member, project, predicted):
    ModelVersion.objects.update(metrics={"val_mae": 9.0, "interval_scores": TWELVE,
                                         "interval_fallback": [{"source": "v1", "scores": EARLIER}]})
    api_as(owner).patch(f"/api/projects/{project.pk}/", {"interval_level": 0.95}, format="json")
    client = api_as(member)
    body = client.get(f"/api/studies/{predicted.pk}/predictions/latest/").json()
    # 52 pooled scores, none far out: the 95 % multiplier is the ⌈53 · 0.95⌉ = 51st, 1.95; 10 ± 1.95 · 5
    assert body["interval_months"] == [0.2, 19.8] and body["interval_calibrated"] is True
    assert body["interval_calibration"] == "pooled"
    assert body["interval_note"] == ("This model's 12 held-out studies are too few for a 95% interval alone (it needs "
                                     "19), so it is calibrated on them pooled with v1's 40 held-out studies.")
    row = client.get(f"/api/projects/{project.pk}/worklist/").json()["results"][0]["prediction"]
    assert row["interval_months"] == [0.2, 19.8] and row["interval_calibration"] == "pooled"
    assert row["interval_note"] == body["interval_note"]


def test_each_interval_says_which_calibration_it_used(api_as, member, predicted):
    for metrics, calibration in (({"interval_scores": SCORES}, "own"), ({}, "normal"),
                                 ({"interval_scores": TWELVE[:3]}, "whole_range")):
        ModelVersion.objects.update(metrics={"val_mae": 9.0, **metrics})
        body = api_as(member).get(f"/api/studies/{predicted.pk}/predictions/latest/").json()
        assert body["interval_calibration"] == calibration


def test_the_settings_page_says_the_intervals_pool_with_an_earlier_model_when_they_can(api_as, owner, project,
                                                                                      predicted):
    from django.test import Client

    ModelVersion.objects.update(metrics={"val_mae": 9.0, "interval_scores": TWELVE,
                                         "interval_fallback": [{"source": "v0", "scores": EARLIER}]})
    api_as(owner).patch(f"/api/projects/{project.pk}/", {"interval_level": 0.95}, format="json")
    browser = Client()
    browser.force_login(owner)
    page = browser.get(f"/projects/{project.pk}/settings/").content.decode()
    assert ("The active model v1 is calibrated on 12 held-out studies: a 95% interval needs 19, so its intervals are "
            "calibrated on them pooled with v0&#x27;s 40 held-out studies.") in page


def _version(project, name, scores, parent=None, init="active"):
    return ModelVersion.objects.create(project=project, name=name, checkpoint="x", sha256="0" * 64, status="retired",
                                       metrics={"interval_scores": scores}, parent=parent, config={"init": init})


def test_a_new_version_falls_back_on_the_models_it_was_fine_tuned_from_then_the_starter_then_the_rest(project):
    from boneage.modeling.intervals import STARTER, fallback_calibration

    from ml.checkpoint import SHIPPED_STARTER, interval_calibration_scores

    first = _version(project, "v1", [1.0] * 12, init="starter")
    _version(project, "v2", [1.1] * 12, parent=first)  # a sibling: not in the new version's line
    second = _version(project, "v3", [1.2] * 12, parent=first)
    sources = fallback_calibration(project.pk, [0.9] * 12, parent=second, config={"init": "active"})
    starter = interval_calibration_scores(SHIPPED_STARTER)
    assert [s["source"] for s in sources] == ["v3", "v1", STARTER]  # 12 + 12 + 12 + 200 ≥ 99: v2 is not needed
    assert sources[2]["scores"] == starter and len(starter) == 200


def test_a_line_begun_from_scratch_skips_the_starter_and_takes_the_projects_other_versions_newest_first(project):
    from boneage.modeling.intervals import fallback_calibration

    older, newer = _version(project, "v1", [1.0] * 30, init="fresh"), _version(project, "v2", [1.1] * 30, init="fresh")
    sources = fallback_calibration(project.pk, [0.9] * 12, parent=None, config={"init": "fresh"})
    assert [s["source"] for s in sources] == [newer.name, older.name]
    assert fallback_calibration(project.pk, [0.9] * 99, parent=None, config={"init": "fresh"}) == []  # enough alone


@pytest.mark.django_db(transaction=True)
def test_a_trained_version_is_registered_with_the_scores_its_interval_falls_back_on(
        tiny_project, owner, add_studies, register_model, temporary_media):
    from boneage.modeling.training import check_run_request, do_start_training, run_training

    add_studies(tiny_project, owner, 14)
    earlier = register_model(tiny_project, name="v1")
    ModelVersion.objects.filter(pk=earlier.pk).update(metrics={"val_mae": 30.0, "interval_scores": EARLIER})
    run = do_start_training(tiny_project, actor=owner, config=check_run_request(tiny_project, {"init": "fresh"}),
                            enqueue=False)
    run_training(run.pk)
    version = ModelVersion.objects.exclude(pk=earlier.pk).get()
    assert len(version.metrics["interval_scores"]) < 19  # a tiny project's own held-out studies: too few for 95 %
    assert version.metrics["interval_fallback"] == [{"source": "v1", "scores": EARLIER}]
