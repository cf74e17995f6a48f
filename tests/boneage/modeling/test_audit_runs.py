"""The label audit: k fold models, each study predicted by the one fold model that never trained on it, nothing
promotable, live progress per fold, and requests that would leak labels into the audit are refused."""
from __future__ import annotations

import pytest
from boneage.modeling.models import ModelVersion, Prediction, TrainingRun

live = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_an_audit_predicts_every_labelled_study_with_a_fold_model_that_never_trained_on_it(
        celery_worker, tiny_project, owner, add_studies, events, api_as):
    labelled = add_studies(tiny_project, owner, 12)
    events.subscribe(tiny_project.pk)
    response = api_as(owner).post(f"/api/projects/{tiny_project.pk}/training-runs/",
                                  {"kind": "audit", "folds": 3, "init": "fresh", "epochs": 1}, format="json")
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]
    finished = events.until(lambda e: e["type"] == "training.finished" and e["run"] == run_id, timeout=240)[-1]
    assert finished["state"] == "succeeded", TrainingRun.objects.get(pk=run_id).error
    assert "12 out-of-fold predictions from 3 fold models" in finished["outcome"]
    assert {e.get("fold") for e in events.seen if e["type"] == "training.progress"} >= {1, 2, 3}

    folds = ModelVersion.objects.filter(project=tiny_project, status="audit")
    assert folds.count() == 3
    for study in labelled:
        [prediction] = Prediction.objects.filter(study=study, model_version__in=folds)
        version = prediction.model_version
        assert prediction.out_of_fold
        assert study.pk not in version.training_study_ids and study.pk in version.validation_study_ids
    assert sorted(i for v in folds for i in v.validation_study_ids) == sorted(s.pk for s in labelled)  # each once
    for version in folds:  # its interval is calibrated on the other folds' readings, never on its own studies
        others = Prediction.objects.filter(model_version__in=folds).exclude(model_version=version)
        assert sorted(version.metrics["interval_heldout"]["pred"]) == sorted(round(p.age_months, 2) for p in others)
        assert len(version.metrics["interval_scores"]) == 12 - len(version.validation_study_ids)

    client = api_as(owner)
    assert client.get(f"/api/projects/{tiny_project.pk}/models/").json()["results"] == []  # nothing to promote
    refused = client.post(f"/api/models/{folds[0].pk}/promote/")
    assert refused.status_code == 409 and refused.json()["error"] == "audit_model"


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "message"), [
    ({"kind": "audit", "init": "active"}, "cannot start from the active model"),
    ({"folds": 5}, "belongs to an audit run"),
    ({"kind": "audit", "folds": 1}, "folds must be a number between 2 and 10"),
    ({"kind": "census"}, "kind must be one of train, audit"),
])
def test_an_audit_that_would_leak_labels_or_makes_no_sense_is_refused(tiny_project, owner, api_as, body, message):
    response = api_as(owner).post(f"/api/projects/{tiny_project.pk}/training-runs/", body, format="json")
    assert response.status_code == 400 and message in response.json()["detail"]
    assert not TrainingRun.objects.exists()


def test_audit_folds_are_near_equal_and_the_same_for_the_same_labels_whatever_the_ids():
    from types import SimpleNamespace

    from boneage.modeling.audit import fold_groups

    for first in range(0, 400, 13):  # study ids as a busy database hands them out
        samples = [SimpleNamespace(id=str(first + i)) for i in range(12)]
        groups = fold_groups(samples, 3)
        assert sorted(len(g) for g in groups) == [4, 4, 4]
        assert fold_groups(list(reversed(samples)), 3) == groups


def test_each_fold_is_calibrated_on_the_other_folds_readings_and_never_on_its_own():
    from types import SimpleNamespace

    from boneage.modeling.audit import cross_fold_calibration

    def fold(number, truths, readings):
        held = [SimpleNamespace(id=str(number * 10 + i), age_months=t) for i, t in enumerate(truths)]
        return (number, f"fold-{number}", None, [], held, [SimpleNamespace(age_months=a, std_months=s) for a, s in readings])

    done = [fold(1, [100.0, 120.0], [(160.0, 10.0), (121.0, 10.0)]),  # a wrong label in fold 1: 60 months off
            fold(2, [50.0, 60.0], [(52.0, 4.0), (57.0, 6.0)]),
            fold(3, [200.0], [(190.0, 5.0)])]
    calibration = cross_fold_calibration(done)
    assert calibration[1]["interval_scores"] == [0.5, 0.5, 2.0]      # folds 2 and 3: 2/4, 3/6, 10/5
    assert 6.0 in calibration[2]["interval_scores"] and 6.0 in calibration[3]["interval_scores"]
    assert calibration[3]["interval_heldout"] == {"pred": [160.0, 121.0, 52.0, 57.0], "label": [100.0, 120.0, 50.0, 60.0],
                                                  "std": [10.0, 10.0, 4.0, 6.0]}
