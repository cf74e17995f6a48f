"""`make run` calls ensure_starter_model: a fresh project gets a working active model, a second call reuses it.

With shipped starter weights (ml.checkpoint.SHIPPED_STARTER) the model is those weights as they are, scored and
calibrated on the project's held-out studies; without them, a small network trained from scratch. The tests point SHIPPED_STARTER at the tiny checkpoint or nowhere."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from boneage.modeling.models import ModelVersion, TrainingRun
from boneage.modeling.starter import ensure_starter_model
from django.core.files.storage import default_storage

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_shipped_weights(monkeypatch, tmp_path):
    monkeypatch.setattr("ml.checkpoint.SHIPPED_STARTER", tmp_path / "not-shipped.pt")


@pytest.fixture
def shipped_weights(monkeypatch, tiny_checkpoint):
    monkeypatch.setattr("ml.checkpoint.SHIPPED_STARTER", tiny_checkpoint)
    return tiny_checkpoint


def test_a_fresh_project_gets_a_trained_active_model_once(tiny_project, owner, add_studies, no_shipped_weights):
    add_studies(tiny_project, owner, 8)
    out = io.StringIO()
    version = ensure_starter_model(tiny_project, out)
    assert version.status == "active" and version.name == "v1"
    assert "validation MAE" in out.getvalue() and "epoch 1/2" in out.getvalue()
    assert TrainingRun.objects.get().trigger == "starter"
    assert tiny_project.settings["auto_retrain_after_labels"] == 20
    again = io.StringIO()
    assert ensure_starter_model(tiny_project, again) == version and "already active" in again.getvalue()
    assert TrainingRun.objects.count() == 1


def test_a_missing_checkpoint_is_replaced_by_a_new_starter(tiny_project, owner, add_studies, register_model,
                                                           no_shipped_weights):
    add_studies(tiny_project, owner, 6)
    broken = register_model(tiny_project)
    Path(default_storage.path(broken.checkpoint)).unlink()
    version = ensure_starter_model(tiny_project, io.StringIO())
    assert version != broken and version.status == "active"
    assert ModelVersion.objects.get(pk=broken.pk).status == "retired"


def test_a_project_without_labels_gets_a_clear_error(tiny_project, owner, add_studies, no_shipped_weights):
    add_studies(tiny_project, owner, 2, labelled=False)
    with pytest.raises(RuntimeError, match="no labelled studies"):
        ensure_starter_model(tiny_project, io.StringIO())


def test_shipped_weights_become_the_first_model_as_they_are_scored_and_calibrated_on_held_out_studies(
        tiny_project, owner, add_studies, shipped_weights):
    import torch

    from ml.checkpoint import load_checkpoint

    add_studies(tiny_project, owner, 8)
    out = io.StringIO()
    version = ensure_starter_model(tiny_project, out)
    run = TrainingRun.objects.get()
    assert run.config["init"] == "starter" and run.config["epochs"] == 0 and run.init_from is None
    assert "not fine-tuned" in run.config["init_reason"]  # what the models page says the run started from
    assert "the shipped starter weights (tiny.pt), scored and calibrated" in out.getvalue()
    assert version.status == "active" and version.metrics["epochs"] == 0
    assert version.metrics["val_mae"] is not None and version.metrics["interval_scores"]
    assert version.training_study_ids == []  # it learned none of them: its readings are all out of fold
    shipped = load_checkpoint(shipped_weights).build().regressor.state_dict()
    registered = load_checkpoint(Path(default_storage.path(version.checkpoint))).build().regressor.state_dict()
    assert all(torch.equal(shipped[k], registered[k]) for k in shipped)  # not fine-tuned: the weights as shipped


def test_a_trainer_asking_for_the_starter_weights_where_none_ship_gets_a_clear_409(tiny_project, api_as, trainer,
                                                                                  no_shipped_weights):
    response = api_as(trainer).post(f"/api/projects/{tiny_project.pk}/training-runs/", {"init": "starter"}, format="json")
    assert response.status_code == 409 and response.json()["error"] == "no_starter_weights"
    assert "not-shipped.pt" in response.json()["detail"]
    assert TrainingRun.objects.count() == 0
