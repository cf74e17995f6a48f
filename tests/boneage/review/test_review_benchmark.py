"""`review_benchmark --predictor audit` runs the product's own path — phantoms, the real importer, the project's default
training run, its label audit, the review rules — and scores the queue it leaves. At 40 studies with one epoch per
run it takes about half a minute; it checks what holds by construction, never a trained number."""
from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

N, FOLDS = 40, 3


def read_labels(path) -> dict[str, float]:
    with path.open(newline="") as handle:
        return {row["id"]: float(row["boneage"]) for row in csv.DictReader(handle)}


def test_the_audit_benchmark_judges_every_imported_label_by_a_fold_model_that_never_saw_it(tmp_path):
    from boneage.annotations.actions import current_label
    from boneage.modeling.models import ModelVersion, Prediction, TrainingRun
    from boneage.review.models import ReviewItem
    from boneage.studies.models import Project, Study

    work, out = tmp_path / "work", tmp_path / "result.json"
    call_command("review_benchmark", n=N, predictor="audit", folds=FOLDS, top=4, seed=11, threads=1,
                 train_request='{"epochs": 1}', audit_request='{"epochs": 1}', levels="0.95", workdir=str(work),
                 json_out=str(out), stdout=io.StringIO())
    result = json.loads(out.read_text())
    project = Project.objects.get(name=result["project"])
    studies = {s.external_id: s for s in Study.objects.filter(project=project)}

    # The database holds the corrupted labels, never the true ages of the corrupted studies.
    truth, labels = read_labels(work / "cohort" / "labels.csv"), read_labels(work / "labels-corrupted.csv")
    corrupted = {eid for eid in truth if truth[eid] != labels[eid]}
    assert len(corrupted) == result["corrupted"] == round(0.05 * N)
    assert all(24 <= abs(labels[eid] - truth[eid]) <= 60 for eid in corrupted)
    assert {eid: round(float(current_label(s).months), 1) for eid, s in studies.items()} == \
        {eid: round(labels[eid], 1) for eid in studies}

    # The product's own runs: the default training run (a fine-tune of the starter), then the default audit.
    train, audit = TrainingRun.objects.filter(project=project).order_by("pk")
    assert (train.state, train.config["init"], train.config.get("kind", "train")) == ("succeeded", "starter", "train")
    assert (audit.state, audit.config["kind"], audit.config["folds"], audit.config["init"]) == \
        ("succeeded", "audit", FOLDS, "starter")

    # Every labelled study: exactly one out-of-fold prediction, by the one fold model that held it out.
    folds = list(ModelVersion.objects.filter(project=project, status="audit"))
    assert len(folds) == FOLDS
    assert sorted(i for v in folds for i in v.validation_study_ids) == sorted(s.pk for s in studies.values())
    for study in studies.values():
        [prediction] = Prediction.objects.filter(study=study, model_version__in=folds)
        assert prediction.out_of_fold
        assert study.pk in prediction.model_version.validation_study_ids
        assert study.pk not in prediction.model_version.training_study_ids
    checks = result["product_path"]["checks"]
    assert (checks["fold_models"], checks["predictions"], checks["studies_with_one"], checks["problems"]) == \
        (FOLDS, N, N, [])
    assert sum(result["product_path"]["judged_by"].values()) == N and "none" not in result["product_path"]["judged_by"]
    assert set(result["product_path"]["judged_by"]) <= {"audit", "active"}

    # The score is read off the queue the API lists; the other level was scored and the project's level restored.
    queue = result["queue"]
    assert queue["open_items"] == ReviewItem.objects.filter(project=project, state="open").count()
    assert queue["corrupted_in_top"] + len(queue["missed"]) == result["corrupted"]
    assert 0 <= queue["precision"] <= 1 and queue["recall"] == queue["corrupted_in_top"] / result["corrupted"]
    assert [row["interval_level"] for row in result["at_levels"]] == [0.95]
    assert project.interval_level == queue["interval_level"] == 0.9
    assert set(result["seconds"]) >= {"cohort", "import", "pipeline", "training_run", "repredict", "audit_run", "rules"}

    # Each fold keeps the other folds' held-out readings for its interval (the cross-fold calibration), and the queue can
    # be scored again under other interval methods and floors without a model run; the project's settings come back.
    for version in folds:
        heldout = version.metrics["interval_heldout"]
        others = N - len(version.validation_study_ids)
        assert len(heldout["pred"]) == len(heldout["label"]) == len(heldout["std"]) == others
        assert len(version.metrics["interval_scores"]) == others
    settings_before = Project.objects.get(pk=project.pk).settings
    rescored = tmp_path / "rescored.json"
    call_command("review_rescore", project=project.name, workdir=str(work), methods="plain,bias+signed",
                 levels="0.9", min_months="12,20", top=4, json=str(rescored), stdout=io.StringIO())
    rows = json.loads(rescored.read_text())["rows"]
    assert [(row["method"], row["min_months"]) for row in rows] == [("plain", 12), ("plain", 20), ("bias+signed", 12),
                                                                     ("bias+signed", 20)]
    assert all(row["corrupted_in_top"] + len(row["missed"]) == result["corrupted"] for row in rows)
    assert all(0 <= row["coverage_vs_truth"] <= 1 for row in rows)
    assert Project.objects.get(pk=project.pk).settings == settings_before
