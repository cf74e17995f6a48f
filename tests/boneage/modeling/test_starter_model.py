"""`make run` calls ensure_starter_model: a fresh project gets a working active model, a second call reuses it."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from boneage.modeling.models import ModelVersion, TrainingRun
from boneage.modeling.starter import ensure_starter_model
from django.core.files.storage import default_storage

pytestmark = pytest.mark.django_db


def test_a_fresh_project_gets_a_trained_active_model_once(tiny_project, owner, add_studies):
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


def test_a_missing_checkpoint_is_replaced_by_a_new_starter(tiny_project, owner, add_studies, register_model):
    add_studies(tiny_project, owner, 6)
    broken = register_model(tiny_project)
    Path(default_storage.path(broken.checkpoint)).unlink()
    version = ensure_starter_model(tiny_project, io.StringIO())
    assert version != broken and version.status == "active"
    assert ModelVersion.objects.get(pk=broken.pk).status == "retired"


def test_a_project_without_labels_gets_a_clear_error(tiny_project, owner, add_studies):
    add_studies(tiny_project, owner, 2, labelled=False)
    with pytest.raises(RuntimeError, match="no labelled studies"):
        ensure_starter_model(tiny_project, io.StringIO())
