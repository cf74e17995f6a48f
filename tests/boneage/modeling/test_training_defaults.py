"""An admin sets what the project's training runs start with: on the API and on the settings page, all or nothing,
with the reason next to a bad value, and every change in the audit history."""
from __future__ import annotations

import pytest
from boneage.audit.models import AuditEvent
from boneage.modeling.conf import training_max_seconds
from boneage.modeling.models import TrainingRun
from boneage.studies.models import Project

pytestmark = pytest.mark.django_db


def url(project) -> str:
    return f"/api/projects/{project.pk}/training-defaults/"


def test_every_member_reads_the_defaults_and_a_project_that_sets_nothing_reads_the_platforms(api_as, member, project):
    body = api_as(member).get(url(project)).json()
    assert body["custom"] == {}
    assert body["fine_tune"] == body["platform"]["fine_tune"] and body["from_scratch"] == body["platform"]["from_scratch"]
    assert body["fine_tune"]["lr"] == 3e-4 and body["fine_tune"]["uncertainty"] == "both"
    assert body["fine_tune"]["auto_retrain_after_labels"] == 0


def test_an_admin_sets_defaults_and_the_next_run_starts_with_them(api_as, owner, project,
                                                                  django_capture_on_commit_callbacks):
    response = api_as(owner).patch(url(project), {"epochs": 3, "lr": 0.001, "uncertainty": "mc",
                                                  "auto_retrain_after_labels": 25}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["custom"] == {"epochs": 3, "lr": 0.001, "uncertainty": "mc", "auto_retrain_after_labels": 25}
    assert body["fine_tune"]["epochs"] == body["from_scratch"]["epochs"] == 3
    with django_capture_on_commit_callbacks(execute=False):
        run = api_as(owner).post(f"/api/projects/{project.pk}/training-runs/", {}, format="json").json()
    assert (run["config"]["epochs"], run["config"]["lr"], run["config"]["uncertainty"]) == (3, 0.001, "mc")
    with django_capture_on_commit_callbacks(execute=False):
        TrainingRun.objects.all().delete()
        own = api_as(owner).post(f"/api/projects/{project.pk}/training-runs/", {"epochs": 5}, format="json").json()
    assert own["config"]["epochs"] == 5  # a run's own value still wins
    event = AuditEvent.objects.get(verb="project.training_defaults_changed")
    assert event.before == {} and event.after == body["custom"] and event.actor_id == owner.pk


def test_null_puts_a_field_back_to_the_platforms_default(api_as, owner, project):
    api_as(owner).patch(url(project), {"epochs": 3, "batch_size": 8}, format="json")
    body = api_as(owner).patch(url(project), {"epochs": None}, format="json").json()
    assert body["custom"] == {"batch_size": 8}
    assert body["fine_tune"]["epochs"] == body["platform"]["fine_tune"]["epochs"]


@pytest.mark.parametrize("patch,message", [
    ({"epochs": 0}, "epochs must be a number between 1 and 200, not 0."),
    ({"epochs": 2.5}, "epochs must be a whole number, not 2.5."),
    ({"lr": "fast"}, "lr must be a number, not 'fast'."),
    ({"uncertainty": "vibes"}, "uncertainty must be one of mc, both, not 'vibes'."),
    ({"auto_retrain_after_labels": -1}, "auto_retrain_after_labels must be a number between 0 and 100000"),
    ({"dropout": 0.5}, "Unknown fields: dropout."),
    ({"epochs": True}, "epochs must be a number between 1 and 200, not True."),
])
def test_a_bad_value_is_refused_with_its_reason_and_nothing_of_the_patch_is_stored(api_as, owner, project, patch,
                                                                                   message):
    api_as(owner).patch(url(project), {"batch_size": 8}, format="json")
    response = api_as(owner).patch(url(project), {"batch_size": 4, **patch}, format="json")
    assert response.status_code == 400 and message in response.json()["detail"], response.json()
    project.refresh_from_db()
    assert project.settings["training"] == {"batch_size": 8}  # the good field of the refused patch was not kept
    assert AuditEvent.objects.filter(verb="project.training_defaults_changed").count() == 1


def test_a_body_that_is_not_an_object_is_refused(api_as, owner, project):
    response = api_as(owner).patch(url(project), [1, 2], format="json")
    assert response.status_code == 400 and "JSON object" in response.json()["detail"]


def test_only_an_admin_changes_them_and_an_outsider_does_not_see_the_project(api_as, member, trainer, outsider,
                                                                              project):
    assert api_as(member).patch(url(project), {"epochs": 3}, format="json").status_code == 403
    assert api_as(trainer).patch(url(project), {"epochs": 3}, format="json").status_code == 403
    assert api_as(outsider).get(url(project)).status_code == 404
    assert api_as(outsider).patch(url(project), {"epochs": 3}, format="json").status_code == 404
    assert "training" not in (Project.objects.get(pk=project.pk).settings or {})


def test_the_settings_page_saves_them_and_shows_a_bad_value_next_to_its_input(client, owner, project):
    client.force_login(owner)
    page_url = f"/projects/{project.pk}/settings/"
    page = client.get(page_url).content.decode()
    assert 'id="training-form"' in page and 'placeholder="0.0003 / 0.002"' in page and "0.0003 for a fine-tune, 0.002 from scratch" in page
    fields = {"form": "training", "epochs": "4", "batch_size": "", "lr": "", "max_seconds": "300",
              "uncertainty": "mc", "auto_retrain_after_labels": "0"}
    assert client.post(page_url, fields).status_code == 302
    project.refresh_from_db()
    assert project.settings["training"] == {"epochs": 4, "max_seconds": 300.0, "uncertainty": "mc"}
    assert project.settings["auto_retrain_after_labels"] == 0
    bad = client.post(page_url, {**fields, "epochs": "4", "max_seconds": "5"})
    text = bad.content.decode()
    assert bad.status_code == 200 and f"“Time cap (seconds)” must be a number between 10 and {training_max_seconds()}" in text
    assert "the worker stops a run at" in text  # why the cap is where it is
    assert 'value="5"' in text  # what was typed stays in the form to be fixed
    project.refresh_from_db()
    assert project.settings["training"]["max_seconds"] == 300.0
