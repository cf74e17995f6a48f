"""Seconds after an upload the active model's prediction streams in, part by part, and the API serves it."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from boneage.modeling.models import Prediction
from django.core.files.storage import default_storage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

ATTENTION = ["Att1_1", "Att2_1", "Att2_2", "Att3_1", "Att3_2", "Att3_3"]


def test_an_uploaded_study_is_predicted_and_each_part_is_announced_as_soon_as_it_exists(
        celery_worker, project, owner, member, outsider, register_model, add_studies, events, api_as):
    version = register_model(project)
    events.subscribe(project.pk)
    (study,) = add_studies(project, owner, 1, labelled=False)
    seen = events.until("prediction.ready")
    mine = [e for e in seen if e["type"].startswith("prediction.")]
    assert [e["type"] for e in mine] == ["prediction.started", "prediction.mask", "prediction.age",
                                         *["prediction.attention"] * 6, "prediction.ready"]
    assert [e["name"] for e in mine if e["type"] == "prediction.attention"] == ATTENTION
    assert all(e["study"] == study.pk and e["model_version"] == version.pk for e in mine)

    body = api_as(member).get(f"/api/studies/{study.pk}/predictions/latest/").json()
    assert body["model_version"] == version.pk and 0 <= body["age_months"] <= 260 and body["std_months"] > 0
    assert sorted(body["attention"]) == sorted(ATTENTION)
    assert body["attention"]["Att3_3"] == next(e["url"] for e in mine if e.get("name") == "Att3_3")
    for url in [body["mask_url"], *body["attention"].values()]:
        response = api_as(member).get(url)
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert b"".join(response.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"
    assert api_as(outsider).get(body["mask_url"]).status_code == 404
    assert api_as(outsider).get(f"/api/studies/{study.pk}/predictions/latest/").status_code == 404
    prediction = Prediction.objects.get(study=study)
    assert prediction.timings["total"] > 0 and prediction.out_of_fold


def test_a_project_without_a_model_says_so_instead_of_failing(celery_worker, project, owner, add_studies, events, api_as):
    events.subscribe(project.pk)
    (study,) = add_studies(project, owner, 1, labelled=False)
    skipped = events.until("prediction.skipped")[-1]
    assert skipped["study"] == study.pk and skipped["reason"] == "no_model"
    response = api_as(owner).get(f"/api/studies/{study.pk}/predictions/latest/")
    assert response.status_code == 404
    assert response.json()["error"] == "no_model" and "no active model" in response.json()["detail"]


def test_a_corrupt_checkpoint_is_reported_and_stores_nothing(celery_worker, project, owner, register_model,
                                                             add_studies, events):
    version = register_model(project)
    Path(default_storage.path(version.checkpoint)).write_bytes(b"not a checkpoint any more")
    events.subscribe(project.pk)
    (study,) = add_studies(project, owner, 1, labelled=False)
    failed = events.until("prediction.failed")[-1]
    assert failed["reason"] == "bad_checkpoint" and "corrupt" in failed["detail"]
    assert not Prediction.objects.filter(study=study).exists()


def test_predicting_twice_leaves_the_same_row_and_the_same_files(project, owner, register_model, add_studies,
                                                                 temporary_media):
    from boneage.modeling.tasks import predict_study

    register_model(project)
    (study,) = add_studies(project, owner, 1, labelled=False)
    predict_study(study.pk)  # the task body, run here: a second delivery of the same message
    files = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (temporary_media / "predictions").rglob("*.png")}
    first = list(Prediction.objects.values())
    predict_study(study.pk)
    assert list(Prediction.objects.values()) == first and len(first) == 1
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (temporary_media / "predictions").rglob("*.png")} == files
    assert len(files) == 7


def test_prediction_files_refuse_unknown_parts_and_versions(project, owner, member, register_model, add_studies, api_as):
    version = register_model(project)
    (study,) = add_studies(project, owner, 1, labelled=False)
    client = api_as(member)
    assert client.get(f"/api/studies/{study.pk}/predictions/{version.pk}/Att9_9.png").json()["error"] == "not_found"
    assert client.get(f"/api/studies/{study.pk}/predictions/{version.pk + 99}/mask.png").status_code == 404
    pending = client.get(f"/api/studies/{study.pk}/predictions/latest/")
    assert pending.status_code == 404 and pending.json()["error"] == "prediction_pending"


@pytest.mark.django_db(transaction=True)
def test_a_prediction_cut_by_its_time_limit_is_tried_again_before_it_is_reported_failed(
        project, owner, register_model, add_studies, events, monkeypatch):
    """A worker starved of CPU hits the soft time limit on a film that is fine (15 of 20 readings were lost that way
    beside a training run): the task runs again, and says it failed only after its retries."""
    from boneage.modeling import conf, tasks
    from celery.exceptions import SoftTimeLimitExceeded

    register_model(project)
    (study,) = add_studies(project, owner, 1, labelled=False)
    attempts = []

    def starved(study_id, version_id=None):  # what Celery raises into the task when its soft limit passes
        attempts.append(study_id)
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(tasks, "do_predict_study", starved)
    events.subscribe(project.pk)
    tasks.predict_study.apply(args=(study.pk,))
    assert attempts == [study.pk] * (conf.PREDICT_TIME_LIMIT_RETRIES + 1)
    failed = events.until("prediction.failed")[-1]
    assert failed["reason"] == "time_limit" and f"{conf.PREDICT_TIME_LIMIT_RETRIES + 1} times" in failed["detail"]

    monkeypatch.undo()
    attempts.clear()
    calls = iter([SoftTimeLimitExceeded(), None])

    def slow_once(study_id, version_id=None):
        attempts.append(study_id)
        outcome = next(calls)
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(tasks, "do_predict_study", slow_once)
    tasks.predict_study.apply(args=(study.pk,))
    assert attempts == [study.pk, study.pk]  # tried again once, and it went through
