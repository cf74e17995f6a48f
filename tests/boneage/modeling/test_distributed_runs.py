"""A training run that asks for several GPUs trains under torchrun (here: two CPU processes with gloo), streams its
progress like any run, registers the model rank 0 wrote, and stops its whole process group when cancelled."""
from __future__ import annotations

import pytest
from boneage.modeling.models import ModelVersion, TrainingRun

from tests.boneage.modeling.conftest import wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def test_a_run_asking_for_two_gpus_trains_in_two_processes_and_registers_one_model(
        celery_worker, tiny_project, owner, add_studies, events, api_as):
    add_studies(tiny_project, owner, 12)
    events.subscribe(tiny_project.pk)
    response = api_as(owner).post(f"/api/projects/{tiny_project.pk}/training-runs/", {"epochs": 2, "gpus": 2},
                                  format="json")
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]
    finished = events.until(lambda e: e["type"] == "training.finished" and e["run"] == run_id, timeout=240)[-1]
    progress = [e for e in events.seen if e["type"] == "training.progress" and e["run"] == run_id]
    run = TrainingRun.objects.get(pk=run_id)
    assert finished["state"] == "succeeded", run.error
    assert {1, 2} <= {e["epoch"] for e in progress}
    version = ModelVersion.objects.get(pk=run.result_id)
    assert version.metrics["world_size"] == 2 and run.config["gpus"] == 2


def test_cancelling_a_two_process_run_stops_it_and_keeps_nothing(celery_worker, tiny_project, owner, add_studies,
                                                                api_as):
    add_studies(tiny_project, owner, 10)
    client = api_as(owner)
    run_id = client.post(f"/api/projects/{tiny_project.pk}/training-runs/", {"epochs": 200, "batch_size": 2, "gpus": 2},
                         format="json").json()["id"]
    wait_for(lambda: (TrainingRun.objects.get(pk=run_id).progress or {}).get("step", 0) > 0, 120, "a training step")
    assert client.post(f"/api/training-runs/{run_id}/cancel/").json()["state"] == "cancelling"
    wait_for(lambda: TrainingRun.objects.get(pk=run_id).state == "cancelled", 60, "the run to stop")
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("gpus", [0, 17, 1.5, "two"])
def test_a_gpu_count_out_of_range_is_refused_with_the_reason(tiny_project, owner, api_as, gpus):
    response = api_as(owner).post(f"/api/projects/{tiny_project.pk}/training-runs/", {"gpus": gpus}, format="json")
    assert response.status_code == 400 and "gpus" in response.json()["detail"]
    assert not TrainingRun.objects.exists()
