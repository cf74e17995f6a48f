"""A re-prediction whose worker died does not say "running" forever (issue 32, row 3): a live one beats while it works,
one that stopped beating is ended FAILED by any worker's watchdog with the reason, the worklist says why and keeps the
earlier model's readings, and a trainer runs it again to finish the studies left."""
from __future__ import annotations

from datetime import timedelta

import pytest
from boneage.modeling import reprediction
from boneage.modeling.actions import do_promote, do_repredict_project
from boneage.modeling.models import ModelVersion, Prediction
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def quick_heartbeat(settings):
    settings.MODELING_HEARTBEAT_S, settings.MODELING_STALE_S = 1, 10


@pytest.fixture
def enqueued(monkeypatch) -> list[int]:
    """The re-prediction tasks the pipeline enqueues, by version id (kept here, not sent to a broker)."""
    from types import SimpleNamespace

    from boneage.pipeline import receivers

    versions: list[int] = []
    monkeypatch.setattr(receivers, "repredict_project", SimpleNamespace(delay=versions.append))
    return versions


@pytest.fixture
def v2_promoted(project, owner, register_model, add_studies, enqueued):
    """Four studies read by v1; v2 promoted (its re-prediction queued, not run)."""
    v1 = register_model(project, name="v1")
    studies = add_studies(project, owner, 4, labelled=False)
    assert do_repredict_project(v1.pk) == 4
    v2 = register_model(project, status="candidate", name="v2")
    do_promote(v2)
    assert enqueued == [v2.pk]
    return v1, ModelVersion.objects.get(pk=v2.pk), studies


def died_after_one_study(v2, study) -> None:
    """What a worker killed mid-run leaves: one study read, the state running, its last beat long ago."""
    Prediction.objects.create(study=study, model_version=v2, age_months=60.0, std_months=5.0)
    long_ago = (timezone.now() - timedelta(minutes=10)).isoformat()
    ModelVersion.objects.filter(pk=v2.pk).update(reprediction={**v2.reprediction, "state": "running", "done": 1,
                                                               "beat": long_ago})


def test_a_running_re_prediction_beats_while_a_batch_takes_longer_than_the_beats_and_is_not_reaped(
        quick_heartbeat, project, v2_promoted):
    from tests.boneage.modeling.conftest import wait_for

    _v1, v2, _studies = v2_promoted
    mid_run = {}

    def slow_batch(done, total):  # a batch on a loaded box: the heartbeat thread, not the batches, keeps it alive
        if not mid_run:
            first = ModelVersion.objects.get(pk=v2.pk).reprediction["beat"]
            wait_for(lambda: ModelVersion.objects.get(pk=v2.pk).reprediction["beat"] != first, 30, "a beat")
            mid_run["reaped"] = reprediction.reap_stale()

    do_repredict_project(v2.pk, batch_size=2, progress=slow_batch)
    assert mid_run["reaped"] == []
    assert ModelVersion.objects.get(pk=v2.pk).reprediction["state"] == "done"


def test_a_re_prediction_whose_worker_died_ends_failed_with_why_and_the_worklist_says_so(
        quick_heartbeat, project, member, v2_promoted, api_as):
    from boneage.modeling.tasks import _reap_once

    _v1, v2, studies = v2_promoted
    died_after_one_study(v2, studies[0])
    _reap_once()  # what every worker's watchdog runs
    state = ModelVersion.objects.get(pk=v2.pk).reprediction
    assert state["state"] == "failed"
    assert state["error"] == ("The worker re-predicting with v2 stopped (no sign of life for 10 s) after 1 of 4 "
                              "studies; the others keep v1's reading. Run it again to finish.")

    body = api_as(member).get(f"/api/projects/{project.pk}/worklist/?limit=50").json()
    assert body["reprediction"] is None  # no "predicting 1 / 4" forever
    assert body["reprediction_stopped"] == {"model_version": v2.pk, "model_name": "v2", "done": 1, "total": 4,
                                            "replaces_name": "v1", "error": state["error"]}
    readers = {row["id"]: row["prediction"]["model_name"] for row in body["results"]}
    assert readers == {s.pk: ("v2" if s == studies[0] else "v1") for s in studies}


def test_a_re_prediction_that_still_beats_is_left_running(quick_heartbeat, v2_promoted):
    _v1, v2, studies = v2_promoted
    died_after_one_study(v2, studies[0])
    reprediction.beat(v2.pk)  # a sign of life just now
    assert reprediction.reap_stale() == []
    assert ModelVersion.objects.get(pk=v2.pk).reprediction["state"] == "running"


def test_a_trainer_runs_it_again_and_it_reads_only_the_studies_left(quick_heartbeat, project, owner, v2_promoted,
                                                                   api_as, enqueued):
    _v1, v2, studies = v2_promoted
    died_after_one_study(v2, studies[0])
    reprediction.reap_stale()
    response = api_as(owner).post(f"/api/models/{v2.pk}/repredict/")
    assert response.status_code == 200 and enqueued == [v2.pk, v2.pk]  # the promotion's task, then this one
    assert response.json()["name"] == "v2" and ModelVersion.objects.get(pk=v2.pk).reprediction["state"] == "queued"
    body = api_as(owner).get(f"/api/projects/{project.pk}/worklist/").json()
    assert body["reprediction_stopped"] is None and body["reprediction"]["total"] == 3

    assert do_repredict_project(v2.pk) == 3  # what the queued task does
    assert ModelVersion.objects.get(pk=v2.pk).reprediction["state"] == "done"
    assert Prediction.objects.filter(model_version=v2).count() == 4


def test_only_a_trainer_may_run_it_again_and_only_once_it_stopped(quick_heartbeat, project, owner, member, make_user,
                                                                   v2_promoted, api_as):
    _v1, v2, studies = v2_promoted
    outsider = make_user("oscar_outsider")
    running_still = api_as(owner).post(f"/api/models/{v2.pk}/repredict/")
    assert running_still.status_code == 409 and running_still.json()["error"] == "reprediction_not_stopped"
    died_after_one_study(v2, studies[0])
    reprediction.reap_stale()
    assert api_as(member).post(f"/api/models/{v2.pk}/repredict/").status_code == 403  # a labeler
    assert api_as(outsider).post(f"/api/models/{v2.pk}/repredict/").status_code == 404
    assert ModelVersion.objects.get(pk=v2.pk).reprediction["state"] == "failed"
