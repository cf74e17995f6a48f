"""Labelers' "Next case" serves core-set: the unlabelled study least like the labelled ones in the model's features,
a spread-out batch to labelers asking together, re-ranked after each label; an admin picks the project's strategy."""
from __future__ import annotations

import json

import numpy as np
import pytest
import redis
from boneage.annotations.actions import do_save_label
from boneage.audit.models import AuditEvent
from boneage.modeling.coreset import embedding_array, embedding_bytes, rank_version
from boneage.modeling.models import ActiveScore, Prediction
from boneage.modeling.tasks import rank_coreset
from django.conf import settings

pytestmark = pytest.mark.django_db

# Three groups of hands in a made-up 3-feature space: one group already has a label, two have none.
NEAR_LABELLED = [(0.0, 0.0, 0.0), (0.1, 0.0, 0.0), (0.0, 0.1, 0.0)]
FAR_GROUP = [(10.0, 0.0, 0.0), (10.1, 0.0, 0.0), (10.0, 0.1, 0.0)]
OTHER_GROUP = [(0.0, 6.0, 0.0), (0.1, 6.0, 0.0), (0.0, 6.1, 0.0)]


@pytest.fixture
def second_labeler(member_with_role):
    return member_with_role("lars_labeler", "labeler")


@pytest.fixture
def groups(project, owner, add_studies, register_model):
    """An active model whose predictions carry the embeddings above, and one labelled study in the first group."""
    version = register_model(project)
    labelled = add_studies(project, owner, 1, labelled=True)[0]
    near, far, other = (add_studies(project, owner, 3, labelled=False) for _ in range(3))
    for study, vector in zip([labelled, *near, *far, *other], [(0, 0, 0), *NEAR_LABELLED, *FAR_GROUP, *OTHER_GROUP]):
        Prediction.objects.create(study=study, model_version=version, age_months=100.0, std_months=5.0,
                                  embedding=embedding_bytes(vector))
    for study in [labelled, *near, *far, *other]:  # one sex for all, so only the features tell them apart
        study.sex = "F"
        study.save(update_fields=["sex"])
    return version, {"near": near, "far": far, "other": other}


def _group_of(study_id: int, groups: dict) -> str:
    return next(name for name, studies in groups.items() if study_id in {s.pk for s in studies})


def test_coreset_serves_the_study_least_like_the_labelled_ones_first(project, member, groups, api_as):
    version, by_group = groups
    assert rank_version(version) == 9
    body = api_as(member).get(f"/api/projects/{project.pk}/next-case/?strategy=coreset").json()
    assert body["strategy"] == "coreset" and body["rank"] == 1 and body["reason"] == ""
    assert _group_of(body["study"], by_group) == "far"


def test_labelers_asking_together_get_one_study_from_each_unlabelled_group_before_a_second_from_any(
        project, member, second_labeler, owner, groups, api_as):
    version, by_group = groups
    rank_version(version)
    url = f"/api/projects/{project.pk}/next-case/?strategy=coreset"
    served = [api_as(user).get(url).json()["study"] for user in (member, second_labeler)]
    assert [_group_of(s, by_group) for s in served] == ["far", "other"]  # uncertainty would tie all nine


def test_a_label_from_the_worklist_re_ranks_so_the_labelled_studys_neighbours_wait(project, owner, member, groups,
                                                                                    api_as):
    version, by_group = groups
    rank_version(version)
    url = f"/api/projects/{project.pk}/next-case/?strategy=coreset"
    top = ActiveScore.objects.filter(model_version=version, strategy="coreset").order_by("-score", "study_id").first()
    neighbour = next(s for s in by_group["far"] if s.pk != top.study_id)
    do_save_label(neighbour, 120.0, author=owner)  # labelled from the worklist, not the study next-case offered
    assert _group_of(api_as(member).get(url).json()["study"], by_group) == "far"  # the order from before the label
    rank_coreset(project.pk)  # the cpu task the label scheduled, run here
    body = api_as(member).get(url).json()
    assert _group_of(body["study"], by_group) == "other" and body["rank"] == 1


def test_a_burst_of_labels_schedules_one_ranking_on_the_cpu_queue(project, owner, groups,
                                                                  django_capture_on_commit_callbacks):
    _, by_group = groups
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    pending = f"boneage:coreset-pending:{project.pk}"
    broker.delete(pending)

    def rankings() -> int:
        messages = [json.loads(m) for m in broker.lrange("cpu", 0, -1)]
        return sum(m["headers"]["task"] == "modeling.rank_coreset" and m["headers"]["argsrepr"] == f"({project.pk},)"
                   for m in messages)

    before = rankings()
    for study in by_group["near"]:
        with django_capture_on_commit_callbacks(execute=True):
            do_save_label(study, 80.0, author=owner)
    assert rankings() - before == 1 and broker.exists(pending)
    rank_coreset(project.pk)  # the task clears the marker before it reads the labels
    assert not broker.exists(pending)
    with django_capture_on_commit_callbacks(execute=True):
        do_save_label(by_group["far"][0], 80.0, author=owner)
    assert rankings() - before == 2
    broker.delete(pending, "cpu")


def test_until_coreset_has_ranked_the_model_uncertainty_serves_and_says_so(project, owner, member, add_studies,
                                                                           register_model, api_as):
    version = register_model(project)
    studies = add_studies(project, owner, 3, labelled=False)
    for study, std in zip(studies, (2.0, 9.0, 4.0)):  # predictions from before embeddings were stored
        Prediction.objects.create(study=study, model_version=version, age_months=90.0, std_months=std)
        ActiveScore.objects.create(study=study, model_version=version, strategy="uncertainty", score=std)
    assert rank_version(version) == 0
    body = api_as(member).get(f"/api/projects/{project.pk}/next-case/").json()  # the platform's default: coreset
    assert body["strategy"] == "uncertainty" and body["reason"] == "coreset_not_ranked"
    assert body["study"] == studies[1].pk


def test_a_re_prediction_stores_every_studys_embedding_and_ranks_coreset(project, owner, member, register_model,
                                                                          add_studies, api_as):
    from boneage.modeling.actions import do_repredict_project

    version = register_model(project)
    labelled = add_studies(project, owner, 1, labelled=True)
    unlabelled = add_studies(project, owner, 3, labelled=False)
    assert do_repredict_project(version.pk, batch_size=2) == 4
    widths = {len(embedding_array(p.embedding)) for p in Prediction.objects.filter(model_version=version)}
    assert widths == {256}  # the tiny model's 32·8 pooled features
    ranked = set(ActiveScore.objects.filter(model_version=version, strategy="coreset").values_list("study_id", flat=True))
    assert ranked == {s.pk for s in unlabelled} and labelled[0].pk not in ranked
    body = api_as(member).get(f"/api/projects/{project.pk}/next-case/").json()
    assert body["strategy"] == "coreset" and body["study"] in ranked


def test_an_admin_sets_the_projects_next_case_strategy_and_labelers_get_it(project, owner, member, groups, api_as):
    from boneage.modeling.actions import do_rescore_project

    version, _ = groups
    assert do_rescore_project(version.pk) == 9  # every strategy's scores
    url = f"/api/projects/{project.pk}/training-defaults/"
    assert api_as(owner).get(url).json()["fine_tune"]["next_case_strategy"] == "coreset"
    body = api_as(owner).patch(url, {"next_case_strategy": "random"}, format="json").json()
    assert body["custom"]["next_case_strategy"] == "random"
    assert api_as(member).get(f"/api/projects/{project.pk}/next-case/").json()["strategy"] == "random"
    event = AuditEvent.objects.get(verb="project.training_defaults_changed")
    assert event.before == {} and event.after == {"next_case_strategy": "random"}


def test_a_bad_next_case_strategy_is_refused_by_name_and_only_admins_may_set_it(project, owner, member, api_as):
    url = f"/api/projects/{project.pk}/training-defaults/"
    response = api_as(owner).patch(url, {"next_case_strategy": "loudest", "epochs": 3}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "next_case_strategy"
    assert "coreset" in response.json()["detail"]
    assert api_as(member).patch(url, {"next_case_strategy": "random"}, format="json").status_code == 403
    project.refresh_from_db()
    assert "next_case_strategy" not in project.settings and "epochs" not in project.settings.get("training", {})


def test_an_embedding_is_stored_as_little_endian_float32():
    vector = np.array([1.5, -2.0, 3.25], np.float32)
    assert embedding_bytes(vector) == vector.astype("<f4").tobytes() and len(embedding_bytes(vector)) == 12
    assert np.array_equal(embedding_array(embedding_bytes(vector)), vector) and embedding_bytes(None) is None


def test_the_worklists_most_informative_first_is_the_order_next_case_serves(project, owner, member, groups, api_as):
    from boneage.modeling.actions import do_rescore_project

    version, by_group = groups
    do_rescore_project(version.pk)
    url = f"/api/projects/{project.pk}/worklist/?ordering=active&state=unlabeled"
    coreset = ActiveScore.objects.filter(model_version=version, strategy="coreset").order_by("-score", "study_id")
    first_rows = [row["id"] for row in api_as(member).get(url).json()["results"][:2]]
    assert first_rows == [s.study_id for s in coreset[:2]]
    assert [_group_of(s, by_group) for s in first_rows] == ["far", "other"]
    api_as(owner).patch(f"/api/projects/{project.pk}/training-defaults/", {"next_case_strategy": "random"},
                        format="json")
    top_random = ActiveScore.objects.filter(model_version=version, strategy="random").order_by("-score").first()
    assert api_as(member).get(url).json()["results"][0]["id"] == top_random.study_id
