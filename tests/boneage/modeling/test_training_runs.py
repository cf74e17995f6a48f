"""A trainer retrains the network from the browser's API: progress streams, the registry gates, studies re-predict."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from boneage.audit.models import AuditEvent
from boneage.modeling.models import ActiveScore, ModelVersion, Prediction, TrainingRun
from django.core.files.storage import default_storage

from tests.boneage.modeling.conftest import wait_for

live = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_trainer_retrains_watches_progress_and_the_better_model_is_promoted_and_repredicts(
        celery_worker, tiny_project, owner, member, add_studies, events, api_as):
    project = tiny_project
    add_studies(project, owner, 14)
    unlabelled = add_studies(project, owner, 3, labelled=False)
    events.subscribe(project.pk)
    response = api_as(owner).post(f"/api/projects/{project.pk}/training-runs/", {"epochs": 2}, format="json")
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]
    seen = events.until(lambda e: e["type"] == "model.repredicted", timeout=180)
    progress = [e for e in seen if e["type"] == "training.progress" and e["run"] == run_id]
    assert {1, 2} <= {e["epoch"] for e in progress}
    assert all({"run", "epoch", "step", "loss", "val_mae"} <= set(e) for e in progress)
    finished = next(e for e in seen if e["type"] == "training.finished")
    assert finished["state"] == "succeeded" and finished["promoted"] is True

    run = api_as(member).get(f"/api/training-runs/{run_id}/").json()
    assert run["state"] == "succeeded" and len(run["curve"]) == 2 and run["result_name"] == "v1"
    version = ModelVersion.objects.get(pk=run["result"])
    path = Path(default_storage.path(version.checkpoint))
    assert version.status == "active" and hashlib.sha256(path.read_bytes()).hexdigest() == version.sha256
    assert {"val_mae", "val_mae_by_sex", "val_mae_by_age_band", "coverage90"} <= set(version.metrics)
    assert version.validation_study_ids and set(version.training_study_ids).isdisjoint(version.validation_study_ids)
    assert AuditEvent.objects.filter(verb="model.promoted", object_id=str(version.pk)).exists()
    assert Prediction.objects.filter(model_version=version).count() == 17  # every study re-predicted
    assert ActiveScore.objects.filter(model_version=version, study__in=unlabelled).count() == 3 * 4  # 4 strategies
    next_case = api_as(member).get(f"/api/projects/{project.pk}/next-case/").json()
    assert next_case["study"] in {s.pk for s in unlabelled} and next_case["model_version"] == version.pk
    assert next_case["strategy"] == "coreset"  # the default, ranked on the embeddings the re-prediction stored

    # One validation figure per version: the gate's, through the platform's Predictor, on the registry and the API.
    assert version.metrics["gate"]["reason"] == "first_model"
    assert version.metrics["val_mae"] == version.metrics["gate"]["candidate_mae"]
    assert api_as(member).get(f"/api/projects/{project.pk}/models/").json()["results"][0]["val_mae"] == \
        version.metrics["val_mae"]

    # A second run (from scratch: a fine-tune of v1 may ship v1's weights again, which is no change and registers no
    # version) is gated against v1 on the very same validation studies: far fewer than the project's minimum held-out
    # size, so nothing is promoted and the run says it kept v1.
    second = api_as(owner).post(f"/api/projects/{project.pk}/training-runs/", {"epochs": 1, "init": "fresh"},
                                format="json").json()
    finished = events.until(lambda e: e["type"] == "training.finished" and e["run"] == second["id"], timeout=180)[-1]
    v2 = ModelVersion.objects.get(name="v2")
    gate = v2.metrics["gate"]
    assert gate["active"] == "v1" and gate["split"] == [str(i) for i in version.validation_study_ids]
    assert gate["passed"] is False and gate["reason"] == "too_few_held_out"
    assert finished["promoted"] is False and finished["kept"] == "v1" and "kept v1" in finished["outcome"]
    assert ModelVersion.objects.get(pk=v2.pk).status == "rejected"
    assert ModelVersion.objects.get(pk=version.pk).status == "active"
    assert "kept v1" in api_as(member).get(f"/api/training-runs/{second['id']}/").json()["progress"]["outcome"]

    # Running the task again with the same id (a redelivery) changes no row and no file.
    from boneage.modeling.tasks import train_run

    before = (list(ModelVersion.objects.order_by("pk").values()), list(TrainingRun.objects.order_by("pk").values()))
    train_run(run_id)
    assert (list(ModelVersion.objects.order_by("pk").values()), list(TrainingRun.objects.order_by("pk").values())) == before
    assert hashlib.sha256(path.read_bytes()).hexdigest() == version.sha256


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_project_without_labels_fails_its_run_with_a_clear_reason(celery_worker, tiny_project, owner, add_studies,
                                                                   events, api_as):
    add_studies(tiny_project, owner, 2, labelled=False)
    events.subscribe(tiny_project.pk)
    run_id = api_as(owner).post(f"/api/projects/{tiny_project.pk}/training-runs/", {}, format="json").json()["id"]
    finished = events.until(lambda e: e["type"] == "training.finished", timeout=60)[-1]
    assert finished["state"] == "failed" and "no labelled studies" in finished["error"]
    run = TrainingRun.objects.get(pk=run_id)
    assert run.state == "failed" and "no labelled studies" in run.error
    assert not ModelVersion.objects.exists() and not (Path(default_storage.path("models"))).exists()


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_cancelling_stops_the_run_within_a_step_and_keeps_nothing(celery_worker, tiny_project, owner, add_studies,
                                                                 events, api_as):
    add_studies(tiny_project, owner, 10)
    client = api_as(owner)
    run_id = client.post(f"/api/projects/{tiny_project.pk}/training-runs/", {"epochs": 200, "batch_size": 2},
                         format="json").json()["id"]
    wait_for(lambda: TrainingRun.objects.filter(pk=run_id, state="running").exists(), 90, "the run to start")
    wait_for(lambda: (TrainingRun.objects.get(pk=run_id).progress or {}).get("step", 0) > 0, 90, "a training step")
    assert client.post(f"/api/training-runs/{run_id}/cancel/").json()["state"] == "cancelling"
    wait_for(lambda: TrainingRun.objects.get(pk=run_id).state == "cancelled", 30, "the run to stop")
    assert not ModelVersion.objects.exists()
    assert not list(Path(default_storage.path(f"models/{tiny_project.pk}")).glob("*")) if Path(
        default_storage.path(f"models/{tiny_project.pk}")).exists() else True
    again = client.post(f"/api/training-runs/{run_id}/cancel/")
    assert again.status_code == 409 and again.json()["error"] == "run_finished"


@pytest.mark.django_db(transaction=True)
def test_a_run_started_in_a_rolled_back_transaction_is_never_enqueued(tiny_project, owner, settings):
    import redis
    from boneage.modeling.training import do_start_training
    from django.db import transaction

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("gpu")
    with pytest.raises(RuntimeError), transaction.atomic():
        do_start_training(tiny_project, actor=owner)
        raise RuntimeError("rollback")
    assert broker.llen("gpu") == 0 and not TrainingRun.objects.exists()
    do_start_training(tiny_project, actor=owner)
    assert broker.llen("gpu") == 1  # the same call, committed, does enqueue
    broker.delete("gpu")


@pytest.mark.django_db
class TestWhoMayTrainAndWhatTheyMaySend:
    def test_a_labeler_may_not_start_a_run_and_an_outsider_does_not_see_the_project(self, project, member, outsider, api_as):
        assert api_as(member).post(f"/api/projects/{project.pk}/training-runs/", {}, format="json").status_code == 403
        assert api_as(outsider).post(f"/api/projects/{project.pk}/training-runs/", {}, format="json").status_code == 404
        assert api_as(outsider).get(f"/api/projects/{project.pk}/training-runs/").status_code == 404
        assert api_as(outsider).get(f"/api/projects/{project.pk}/models/").status_code == 404

    @pytest.mark.parametrize("body,message", [
        ({"epochs": 0}, "epochs must be a number between 1 and 200"),
        ({"epochs": "many"}, "epochs must be a number"),
        ({"init": "yesterday"}, "init must be one of active, fresh, starter"),
        ({"learning_rate": 0.1}, "Unknown fields: learning_rate"),
    ])
    def test_bad_run_settings_are_refused_with_the_reason(self, project, owner, api_as, body, message, django_capture_on_commit_callbacks):
        response = api_as(owner).post(f"/api/projects/{project.pk}/training-runs/", body, format="json")
        assert response.status_code == 400 and message in response.json()["detail"], response.json()
        assert not TrainingRun.objects.exists()

    def test_fine_tuning_is_the_default_the_starter_first_then_the_active_model(
            self, project, owner, api_as, register_model, django_capture_on_commit_callbacks):
        url = f"/api/projects/{project.pk}/training-runs/"
        with django_capture_on_commit_callbacks(execute=False):
            first = api_as(owner).post(url, {}, format="json").json()
        assert first["config"]["init"] == "starter" and first["config"]["selection"] == "last_epoch"
        TrainingRun.objects.all().delete()
        register_model(project, status="active")
        with django_capture_on_commit_callbacks(execute=False):
            later = api_as(owner).post(url, {}, format="json").json()
        assert later["config"]["init"] == "active" and later["config"]["teacher_epochs"] == 0

    def test_only_one_run_at_a_time(self, project, owner, api_as, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=False):
            first = api_as(owner).post(f"/api/projects/{project.pk}/training-runs/", {}, format="json")
            second = api_as(owner).post(f"/api/projects/{project.pk}/training-runs/", {}, format="json")
        assert first.status_code == 201
        assert second.status_code == 409 and second.json()["error"] == "run_in_progress"
        assert AuditEvent.objects.filter(verb="training.started").count() == 1

    def test_a_queued_run_cancels_at_once(self, project, owner, api_as, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=False):
            run = api_as(owner).post(f"/api/projects/{project.pk}/training-runs/", {}, format="json").json()
        assert api_as(owner).post(f"/api/training-runs/{run['id']}/cancel/").json()["state"] == "cancelled"
