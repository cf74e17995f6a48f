"""While a promoted model re-predicts the project, every study keeps a reading: the replaced model's, marked as an
earlier model's, until the new one has read it; and any page asks the server how far the re-prediction is, so one
opened mid-run says "predicting N / M" too (issue 32, row 3)."""
from __future__ import annotations

import pytest
from boneage.modeling.actions import do_promote, do_repredict_project
from boneage.modeling.models import ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def v1_read_everything(project, owner, register_model, add_studies):
    """Five unlabelled studies, each read by the active model v1; a candidate v2 waits."""
    v1 = register_model(project, name="v1")
    studies = add_studies(project, owner, 5, labelled=False)
    assert do_repredict_project(v1.pk) == 5
    v2 = register_model(project, status="candidate", name="v2")
    return v1, v2, studies


def promote(version, django_capture_on_commit_callbacks):
    """Promote without running the re-prediction task: the test runs it, step by step."""
    with django_capture_on_commit_callbacks(execute=False):
        return do_promote(version)


def worklist(client, project):
    return client.get(f"/api/projects/{project.pk}/worklist/?limit=50").json()


def readers(body) -> dict[int, tuple[str, bool]]:
    return {row["id"]: (row["prediction"]["model_name"], row["prediction"]["from_previous_model"])
            for row in body["results"]}


def test_right_after_a_promotion_every_study_still_shows_the_previous_models_reading_marked_as_such(
        project, member, v1_read_everything, api_as, django_capture_on_commit_callbacks):
    _v1, v2, studies = v1_read_everything
    promote(v2, django_capture_on_commit_callbacks)
    client = api_as(member)

    body = worklist(client, project)
    assert readers(body) == {s.pk: ("v1", True) for s in studies}
    assert all(row["prediction"]["age_months"] is not None for row in body["results"])
    assert body["reprediction"] == {"model_version": v2.pk, "model_name": "v2", "state": "queued", "done": 0,
                                    "total": 5, "replaces_name": "v1"}

    latest = client.get(f"/api/studies/{studies[0].pk}/predictions/latest/").json()
    assert latest["model_name"] == "v1" and latest["from_previous_model"] is True


def test_a_page_opened_mid_run_sees_how_far_it_is_and_each_batch_replaces_the_old_readings(
        project, member, v1_read_everything, api_as, django_capture_on_commit_callbacks):
    _v1, v2, studies = v1_read_everything
    promote(v2, django_capture_on_commit_callbacks)
    client = api_as(member)
    seen_mid_run = []

    def open_the_worklist(done, total):  # called after each stored batch, as a browser might ask then
        seen_mid_run.append(worklist(client, project))

    assert do_repredict_project(v2.pk, batch_size=2, progress=open_the_worklist) == 5
    first = seen_mid_run[0]
    assert first["reprediction"]["state"] == "running"
    assert (first["reprediction"]["done"], first["reprediction"]["total"]) == (2, 5)
    by_study = readers(first)
    assert [by_study[s.pk] for s in studies] == [("v2", False)] * 2 + [("v1", True)] * 3

    after = worklist(client, project)
    assert after["reprediction"] is None  # done: no notice
    assert readers(after) == {s.pk: ("v2", False) for s in studies}
    assert ModelVersion.objects.get(pk=v2.pk).reprediction["state"] == "done"


def test_one_refreshed_row_keeps_the_previous_reading_too(
        project, member, v1_read_everything, api_as, django_capture_on_commit_callbacks):
    _v1, v2, studies = v1_read_everything
    promote(v2, django_capture_on_commit_callbacks)
    row = api_as(member).get(f"/api/worklist-rows/{studies[0].pk}/").json()
    assert row["prediction"]["model_name"] == "v1" and row["prediction"]["from_previous_model"] is True


def test_without_a_re_prediction_under_way_there_is_no_notice_and_the_active_model_reads(
        project, member, v1_read_everything, api_as):
    _v1, _v2, studies = v1_read_everything
    body = worklist(api_as(member), project)
    assert body["reprediction"] is None
    assert readers(body) == {s.pk: ("v1", False) for s in studies}


def test_a_re_prediction_that_cannot_load_its_model_ends_the_notice(
        project, member, v1_read_everything, api_as, django_capture_on_commit_callbacks):
    from django.core.files.storage import default_storage

    _v1, v2, studies = v1_read_everything
    promote(v2, django_capture_on_commit_callbacks)
    default_storage.delete(v2.checkpoint)  # the checkpoint vanished after the promotion
    assert do_repredict_project(v2.pk) == 0
    body = worklist(api_as(member), project)
    assert body["reprediction"] is None
    assert readers(body) == {s.pk: ("v1", True) for s in studies}  # the old readings stay, still marked


def test_sorting_by_prediction_or_uncertainty_mid_run_sorts_the_readings_each_row_shows_whichever_model_made_them(
        project, member, v1_read_everything, api_as, django_capture_on_commit_callbacks):
    from boneage.modeling.models import Prediction

    v1, v2, studies = v1_read_everything
    promote(v2, django_capture_on_commit_callbacks)
    client = api_as(member)
    sorted_mid_run = {}

    def sort_after_the_first_batch(done, total):
        if sorted_mid_run:
            return
        # v2 has read the first two studies; v1's readings stand in for the other three: ages that interleave
        for study, age in zip(studies, (30.0, 70.0, 10.0, 50.0, 90.0)):
            reader = v2 if study in studies[:2] else v1
            Prediction.objects.filter(study=study, model_version=reader).update(age_months=age, std_months=age / 10)
        for ordering in ("prediction", "-uncertainty"):
            body = client.get(f"/api/projects/{project.pk}/worklist/?limit=50&ordering={ordering}").json()
            sorted_mid_run[ordering] = [(row["prediction"]["age_months"], row["prediction"]["model_name"])
                                        for row in body["results"]]

    do_repredict_project(v2.pk, batch_size=2, progress=sort_after_the_first_batch)
    by_age = [(10.0, "v1"), (30.0, "v2"), (50.0, "v1"), (70.0, "v2"), (90.0, "v1")]
    assert sorted_mid_run["prediction"] == by_age
    assert sorted_mid_run["-uncertainty"] == list(reversed(by_age))  # std = age / 10: the least sure first
