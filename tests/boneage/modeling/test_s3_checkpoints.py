"""On S3 a training run's checkpoint goes to the bucket and the model predicts from it; its attention maps are
objects too, and nothing is written under MEDIA_ROOT (a real S3 API server: moto's server mode)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from boneage.modeling.actions import do_predict_study
from boneage.modeling.models import ModelVersion, RunState, TrainingRun
from boneage.modeling.training import check_run_request, do_start_training, run_training

pytestmark = pytest.mark.django_db(transaction=True)


def files_under(root):
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_a_run_stores_its_checkpoint_in_the_bucket_and_its_model_predicts_from_there(
        s3_storage, temporary_media, tiny_project, owner, add_studies, settings):
    studies = add_studies(tiny_project, owner, 8)
    run = do_start_training(tiny_project, actor=owner, config=check_run_request(tiny_project, {"init": "fresh"}),
                            enqueue=False)
    run_training(run.pk)

    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    version = ModelVersion.objects.get(pk=run.result_id)
    assert version.checkpoint in s3_storage.keys("models/")
    assert hashlib.sha256(s3_storage.read(version.checkpoint)).hexdigest() == version.sha256
    assert not list((Path(settings.STORAGE_CACHE_DIR) / "scratch").rglob("*.pt"))  # gone once stored

    prediction = do_predict_study(studies[0].pk, version.pk)
    assert prediction is not None
    assert set(prediction.attention.values()) <= set(s3_storage.keys("predictions/"))
    assert files_under(temporary_media) == []
    assert TrainingRun.objects.get(pk=run.pk).result_id == version.pk


def test_on_s3_a_re_prediction_stores_mask_and_sheet_in_the_bucket_and_an_overlay_is_drawn_there_on_first_view(
        s3_storage, temporary_media, project, owner, member, register_model, add_studies, api_as):
    from boneage.modeling.actions import do_repredict_project

    studies = add_studies(project, owner, 2, labelled=False)
    version = register_model(project)
    assert do_repredict_project(version.pk, batch_size=2) == 2
    folder = f"predictions/{project.pk}/{studies[0].pk}/v{version.pk}/"
    assert sorted(key[len(folder):] for key in s3_storage.keys(folder)) == ["attention-sheet.png", "mask.png"]

    response = api_as(member).get(f"/api/studies/{studies[0].pk}/predictions/{version.pk}/Att1_1.png")
    assert response.status_code == 200 and b"".join(response.streaming_content).startswith(b"\x89PNG")
    assert f"{folder}Att1_1.png" in s3_storage.keys(folder)
    assert files_under(temporary_media) == []
