"""Where a training run starts (issues 28 and 29): a project whose films are outside its model's experience is not
quietly fine-tuned from that model; the platform chooses the default recipe for real films from scratch and says why;
a trainer's own choice stands; the recipe runs end to end through the worker."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from boneage.audit.models import AuditEvent
from boneage.modeling.models import ModelVersion, Prediction, TrainingRun
from boneage.modeling.training import RunConfig, check_starter_fits
from PIL import Image

from ml.data import Sample

URL = "/api/projects/{}/training-runs/"
TINY_RECIPE = {"model": {"work_size": 96, "crop_size": 48, "seg_size": 64}, "seg_epochs": 1, "joint_epochs": 1,
               "max_seconds": 30, "crops": {"epochs": 2, "batch_size": 8}, "threads": 1}


@pytest.fixture
def active(project):
    return ModelVersion.objects.create(project=project, name="v1", checkpoint="x", sha256="0" * 64, status="active",
                                       metrics={"val_mae": 9.0}, validation_study_ids=list(range(1000, 1020)))


def read(studies, version, outside: int) -> None:
    for k, study in enumerate(studies):
        Prediction.objects.create(study=study, model_version=version, age_months=100.0, std_months=6.0,
                                  outside=k < outside, outside_reason="far" if k < outside else "")


@pytest.mark.django_db
class TestTheStartTheRequestGets:
    def test_most_films_outside_the_active_model_make_the_platform_choose_the_recipe_and_say_why(
            self, project, owner, add_studies, active, api_as, django_capture_on_commit_callbacks):
        read(add_studies(project, owner, 5, labelled=False), active, outside=3)
        with django_capture_on_commit_callbacks(execute=False):
            body = api_as(owner).post(URL.format(project.pk), {}, format="json").json()
        assert body["config"]["init"] == "recipe" and body["config"]["init_chosen"] == "platform"
        assert body["config"]["init_reason"].startswith("3 of 5 predicted films are outside the experience of v1")

    def test_a_model_that_knows_the_films_is_fine_tuned_as_before(
            self, project, owner, add_studies, active, api_as, django_capture_on_commit_callbacks):
        read(add_studies(project, owner, 4, labelled=False), active, outside=2)  # half is not most
        with django_capture_on_commit_callbacks(execute=False):
            body = api_as(owner).post(URL.format(project.pk), {}, format="json").json()
        assert body["config"]["init"] == "active" and body["config"]["init_reason"] == "fine-tunes the active model"

    def test_a_model_validated_on_too_few_films_is_not_trusted_to_send_the_run_back_to_scratch(
            self, project, owner, add_studies, active, api_as, django_capture_on_commit_callbacks):
        active.validation_study_ids = [1, 2, 3]
        active.save(update_fields=["validation_study_ids"])
        read(add_studies(project, owner, 3, labelled=False), active, outside=3)
        with django_capture_on_commit_callbacks(execute=False):
            body = api_as(owner).post(URL.format(project.pk), {}, format="json").json()
        assert body["config"]["init"] == "active"

    def test_a_trainers_own_start_stands_and_is_marked_as_theirs(
            self, project, owner, add_studies, active, api_as, django_capture_on_commit_callbacks):
        read(add_studies(project, owner, 3, labelled=False), active, outside=3)
        with django_capture_on_commit_callbacks(execute=False):
            body = api_as(owner).post(URL.format(project.pk), {"init": "active"}, format="json").json()
        assert body["config"]["init"] == "active" and body["config"]["init_chosen"] == "trainer"

    def test_an_audit_from_the_recipe_is_refused_with_the_reason_and_nothing_is_queued(self, project, owner, api_as):
        response = api_as(owner).post(URL.format(project.pk), {"kind": "audit", "init": "recipe"}, format="json")
        assert response.status_code == 400 and "default recipe is for one run" in response.json()["detail"]
        assert not TrainingRun.objects.exists()

    def test_a_budget_the_workers_time_limit_would_cut_is_refused_with_the_reason(self, project, owner, api_as):
        from boneage.modeling import conf

        too_long = conf.training_max_seconds() + 1  # was accepted up to 24 h; the 4-h limit then killed the run
        response = api_as(owner).post(URL.format(project.pk), {"max_seconds": too_long}, format="json")
        assert response.status_code == 400
        assert f"the worker stops a run at {conf.training_hard_limit()} s" in response.json()["detail"]
        assert not TrainingRun.objects.exists()

    def test_a_labeler_may_not_start_the_recipe(self, project, member, api_as):
        assert api_as(member).post(URL.format(project.pk), {"init": "recipe"}, format="json").status_code == 403


def film(path: Path, seed: int) -> Path:
    noise = np.random.default_rng(seed).integers(0, 255, (160, 128), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    return path


@pytest.mark.django_db
def test_films_the_starter_does_not_know_switch_a_platform_chosen_starter_fine_tune_to_the_recipe(
        project, owner, tmp_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        from boneage.modeling.training import do_start_training

        run = do_start_training(project, actor=owner)
    assert run.config["init"] == "starter" and run.config["init_chosen"] == "platform"
    samples = [Sample(str(i), film(tmp_path / f"{i}.png", i), None, 100.0, True) for i in range(6)]
    switched = check_starter_fits(run, RunConfig.from_dict(run.config), samples)
    assert switched.init == "recipe"
    stored = TrainingRun.objects.get(pk=run.pk).config
    assert stored["init"] == "recipe" and "of 6 training films are outside the experience of the shipped starter" in \
        stored["init_reason"]
    assert AuditEvent.objects.filter(verb="training.start_changed", object_id=str(run.pk)).exists()


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_recipe_run_trains_registers_and_says_where_it_started(celery_worker, tiny_project, owner, add_studies,
                                                                events, api_as):
    tiny_project.settings = {**tiny_project.settings, "training": {**tiny_project.settings["training"],
                                                                   "recipe": TINY_RECIPE}}
    tiny_project.save(update_fields=["settings"])
    add_studies(tiny_project, owner, 12)
    events.subscribe(tiny_project.pk)
    body = api_as(owner).post(URL.format(tiny_project.pk), {"init": "recipe"}, format="json").json()
    seen = events.until(lambda e: e["type"] == "training.finished" and e["run"] == body["id"], timeout=300)
    finished = seen[-1]
    assert finished["state"] == "succeeded", finished
    # the progress says which stage runs: the segmenter's steps first (no epoch count), then the regressor's epochs
    stages = [e.get("stage") for e in seen if e["type"] == "training.progress" and e["run"] == body["id"]]
    assert stages[0] == "segmenter" and stages[-1] == "regressor"
    version = ModelVersion.objects.get(pk=TrainingRun.objects.get(pk=body["id"]).result_id)
    assert version.metrics["recipe"] == "staged" and version.config["init"] == "recipe"
    assert version.parent is None  # from scratch: no model's weights or statistics carried over
    run = api_as(owner).get(f"/api/training-runs/{body['id']}/").json()
    assert run["config"]["init_reason"].startswith("trains the default recipe")
    # the progress bar and the curve follow the regressor's epochs, then the joint one
    assert [p["epoch"] for p in run["curve"]] == [1, 2, 3] and run["curve"][0]["stage"] == "regressor"
