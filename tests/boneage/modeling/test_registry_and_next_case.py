"""Trainers promote and roll back models by hand; labelers get the most informative case, never the same one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from boneage.annotations.actions import do_save_label
from boneage.audit.models import AuditEvent
from boneage.modeling.models import ActiveScore, ModelVersion, TrainingRun
from django.core.files.storage import default_storage

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_labeler(member_with_role):
    return member_with_role("lars_labeler", "labeler")


def test_a_trainer_promotes_a_candidate_and_rolls_back_with_an_audit_trail(
        project, owner, trainer, member, register_model, api_as, django_capture_on_commit_callbacks):
    v1 = register_model(project, status="active")
    v2 = register_model(project, status="candidate")
    client = api_as(trainer)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        body = client.post(f"/api/models/{v2.pk}/promote/").json()
    assert body["status"] == "active" and len(callbacks) >= 2  # model.promoted event + the re-prediction task
    assert ModelVersion.objects.get(pk=v1.pk).status == "retired"
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(f"/api/models/{v1.pk}/promote/").json()["status"] == "active"  # roll back
    verbs = list(AuditEvent.objects.filter(verb="model.promoted").values_list("before", "after"))
    assert [(b["active"], a["active"]) for b, a in verbs] == [("v1", "v2"), ("v2", "v1")]
    listed = api_as(member).get(f"/api/projects/{project.pk}/models/").json()["results"]
    assert [m["name"] for m in listed] == ["v2", "v1"] and [m["status"] for m in listed] == ["retired", "active"]


def test_who_may_promote(project, member, outsider, register_model, api_as):
    version = register_model(project, status="candidate")
    assert api_as(member).post(f"/api/models/{version.pk}/promote/").status_code == 403
    assert api_as(outsider).post(f"/api/models/{version.pk}/promote/").status_code == 404
    assert api_as(member).post("/api/models/999999/promote/").status_code == 404


def test_a_model_whose_checkpoint_is_damaged_cannot_be_promoted(project, trainer, register_model, api_as):
    version = register_model(project, status="candidate")
    Path(default_storage.path(version.checkpoint)).write_bytes(b"truncated")
    response = api_as(trainer).post(f"/api/models/{version.pk}/promote/")
    assert response.status_code == 409 and response.json()["error"] == "checkpoint_corrupt"
    assert ModelVersion.objects.get(pk=version.pk).status == "candidate"


def _scored(project, owner, add_studies, register_model, n=5, labelled=0):
    version = register_model(project)
    studies = add_studies(project, owner, n, labelled=False)
    for rank, study in enumerate(studies):
        ActiveScore.objects.create(study=study, model_version=version, strategy="uncertainty", score=100 - rank)
    return version, studies


def test_two_labelers_asking_one_after_the_other_get_different_studies(
        project, owner, member, second_labeler, add_studies, register_model, api_as):
    version, studies = _scored(project, owner, add_studies, register_model)
    first = api_as(member).get(f"/api/projects/{project.pk}/next-case/").json()
    second = api_as(second_labeler).get(f"/api/projects/{project.pk}/next-case/").json()
    assert first["study"] == studies[0].pk and first["rank"] == 1 and first["strategy"] == "uncertainty"
    assert second["study"] == studies[1].pk and second["rank"] == 2
    assert first["model_version"] == second["model_version"] == version.pk


def test_a_labelled_study_is_never_served_and_when_all_are_labelled_the_api_says_so(
        project, owner, member, add_studies, register_model, api_as):
    _, studies = _scored(project, owner, add_studies, register_model, n=2)
    do_save_label(studies[0], 100.0, author=owner)
    assert api_as(member).get(f"/api/projects/{project.pk}/next-case/").json()["study"] == studies[1].pk
    do_save_label(studies[1], 90.0, author=owner)
    response = api_as(member).get(f"/api/projects/{project.pk}/next-case/")
    assert response.status_code == 404 and response.json()["error"] == "no_unlabelled_studies"


def test_without_a_model_the_next_case_is_the_oldest_unlabelled_study_and_says_why(project, owner, member, add_studies, api_as):
    studies = add_studies(project, owner, 2, labelled=False)
    body = api_as(member).get(f"/api/projects/{project.pk}/next-case/").json()
    assert body["study"] == studies[0].pk and body["reason"] == "no_model" and body["score"] is None


def test_without_a_model_labelers_asking_together_spread_over_the_oldest_studies(project, owner, member, reviewer,
                                                                                 add_studies, api_as):
    studies = add_studies(project, owner, 3, labelled=False)
    url = f"/api/projects/{project.pk}/next-case/"
    served = [api_as(user).get(url).json()["study"] for user in (member, reviewer, owner)]
    assert served == [s.pk for s in studies]  # the oldest first, then the next oldest nobody was sent to
    assert api_as(member).get(url).json()["study"] == studies[0].pk  # all served: the least recently served again


def test_an_unknown_strategy_is_refused_and_outsiders_see_nothing(project, member, outsider, api_as):
    response = api_as(member).get(f"/api/projects/{project.pk}/next-case/?strategy=loudest")
    assert response.status_code == 400 and "uncertainty, random, diverse" in response.json()["detail"]
    assert api_as(outsider).get(f"/api/projects/{project.pk}/next-case/").status_code == 404


def test_enough_new_expert_labels_start_a_run_by_themselves(project, owner, add_studies, django_capture_on_commit_callbacks):
    project.settings = {"auto_retrain_after_labels": 2}
    project.save(update_fields=["settings"])
    studies = add_studies(project, owner, 2, labelled=False)
    with django_capture_on_commit_callbacks(execute=True):
        do_save_label(studies[0], 50.0, author=owner)
    assert not TrainingRun.objects.exists()
    import redis
    from django.conf import settings

    with django_capture_on_commit_callbacks(execute=True):
        do_save_label(studies[1], 60.0, author=owner)
    run = TrainingRun.objects.get()
    assert run.trigger == "auto" and run.state == "queued"
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("gpu", "cpu")


class TestStrategies:
    def test_uncertainty_ranks_by_std_and_random_is_stable_per_seed(self):
        from ml.active import scores

        assert list(scores("uncertainty", ["a", "b"], [1.0, 3.0])) == [1.0, 3.0]
        assert list(scores("random", ["a", "b"], [0, 0], seed=1)) == list(scores("random", ["a", "b"], [0, 0], seed=1))
        with pytest.raises(ValueError, match="unknown strategy 'loudest'"):
            scores("loudest", ["a"], [1.0])

    def test_diverse_batches_spread_over_ages_where_uncertainty_piles_up(self):
        from ml.active import features, select_batch

        ages = np.array([100, 101, 102, 103, 20, 200])
        std = np.array([10, 9.9, 9.8, 9.7, 6, 6])
        feats = features(ages, [True] * 6)
        keys = [str(i) for i in range(6)]
        assert select_batch("uncertainty", keys, std, feats, features([], []), 3) == [0, 1, 2]
        assert sorted(select_batch("diverse", keys, std, feats, features([], []), 3)) == [0, 4, 5]


def test_a_case_just_skipped_comes_back_only_when_nothing_else_waits(project, owner, member, add_studies, api_as):
    studies = add_studies(project, owner, 2, labelled=False)
    client = api_as(member)
    skipped = client.get(f"/api/projects/{project.pk}/next-case/?skip={studies[0].pk}").json()
    assert skipped["study"] == studies[1].pk
    both = client.get(f"/api/projects/{project.pk}/next-case/?skip={studies[0].pk},{studies[1].pk}").json()
    assert both["study"] == studies[0].pk  # nothing else waits: the oldest again rather than nothing
    assert client.get(f"/api/projects/{project.pk}/next-case/?skip=x,,{studies[0].pk}").json()["study"] == studies[1].pk
