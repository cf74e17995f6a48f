"""The administration pages: create a project, manage its members and settings, change my own password."""
from __future__ import annotations

import pytest
from boneage.studies.models import Membership, Project

pytestmark = pytest.mark.django_db


def test_the_project_list_shows_my_role_and_admin_links_only_where_i_am_admin(client, member, project):
    client.force_login(member)
    page = client.get("/projects/").content.decode()
    assert "Hands" in page and "labeler" in page
    assert f"/projects/{project.pk}/members/" not in page


def test_a_user_creates_a_project_in_the_browser_and_becomes_its_admin(client, outsider):
    client.force_login(outsider)
    response = client.post("/projects/new/", {"name": "Wrists", "description": "pilot"})
    project = Project.objects.get(name="Wrists")
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.pk}/members/"
    assert Membership.objects.get(project=project, user=outsider).role == "admin"


def test_an_admin_adds_changes_and_removes_a_member_on_the_members_page(client, owner, project, make_user):
    make_user("lena_labeler")
    client.force_login(owner)
    url = f"/projects/{project.pk}/members/"
    assert client.post(url, {"action": "add", "username": "lena_labeler", "role": "labeler"}).status_code == 302
    lena = Membership.objects.get(project=project, user__username="lena_labeler")
    client.post(url, {"action": "role", "user_id": lena.user_id, "role": "reviewer"})
    lena.refresh_from_db()
    assert lena.role == "reviewer"
    client.post(url, {"action": "remove", "user_id": lena.user_id})
    assert not Membership.objects.filter(pk=lena.pk).exists()


def test_the_members_page_shows_why_an_add_failed_next_to_the_field(client, owner, project):
    client.force_login(owner)
    response = client.post(f"/projects/{project.pk}/members/", {"action": "add", "username": "nobody", "role": "labeler"})
    assert response.status_code == 200
    assert 'id="add-error"' in response.content.decode() and "No account is called" in response.content.decode()


def test_the_last_admin_is_kept_on_the_members_page_with_a_reason(client, owner, project):
    client.force_login(owner)
    response = client.post(f"/projects/{project.pk}/members/", {"action": "remove", "user_id": owner.pk}, follow=True)
    assert "last admin" in response.content.decode()
    assert Membership.objects.get(project=project, user=owner).role == "admin"


def test_members_and_settings_pages_are_for_admins_and_hidden_from_outsiders(client, member, outsider, project):
    for path in (f"/projects/{project.pk}/members/", f"/projects/{project.pk}/settings/"):
        client.force_login(member)
        assert client.get(path).status_code == 403
        client.force_login(outsider)
        assert client.get(path).status_code == 404


def test_an_admin_saves_the_project_settings_and_an_inverted_age_range_shows_its_error(client, owner, project):
    client.force_login(owner)
    url = f"/projects/{project.pk}/settings/"
    assert client.post(url, {"form": "project", "name": "Hands 2", "description": "d", "min_age_months": "6",
                             "max_age_months": "228"}).status_code == 302
    project.refresh_from_db()
    assert (project.name, project.min_age_months, project.max_age_months) == ("Hands 2", 6, 228)
    bad = client.post(url, {"form": "project", "name": "Hands 3", "min_age_months": "200", "max_age_months": "100"})
    assert bad.status_code == 200 and "field-error" in bad.content.decode()
    project.refresh_from_db()
    assert project.name == "Hands 2"


def test_an_admin_sets_the_projects_interval_level_and_a_level_out_of_range_is_refused_next_to_its_input(
        client, owner, project):
    client.force_login(owner)
    url = f"/projects/{project.pk}/settings/"
    form = {"form": "project", "name": "Hands", "min_age_months": "0", "max_age_months": "228"}
    assert 'name="interval_level"' in client.get(url).content.decode()
    assert client.post(url, {**form, "interval_level": "0.95"}).status_code == 302
    project.refresh_from_db()
    assert project.interval_level == 0.95
    bad = client.post(url, {**form, "interval_level": "1.5"})
    assert bad.status_code == 200 and "less than or equal to 0.99" in bad.content.decode()
    project.refresh_from_db()
    assert project.interval_level == 0.95


def test_an_admin_changes_a_review_rule_and_an_out_of_bounds_value_is_shown_next_to_its_input(client, owner, project):
    from boneage.review.rules import review_settings

    client.force_login(owner)
    url = f"/projects/{project.pk}/settings/"
    page = client.get(url).content.decode()
    assert 'name="model_unsure.max_std_months"' in page and 'min="0.5" max="240.0"' in page
    form = {"form": "review", "lease_minutes": "30", "model_vs_label.enabled": "on",
            "model_vs_label.min_months": "14", "model_vs_label.std_floor_months": "2", "label_vs_label.max_months": "12",
            "label_vs_label.reader_sd_months": "6", "mask_vs_mask.enabled": "on", "mask_vs_mask.min_dice": "0.9",
            "model_unsure.enabled": "on", "model_unsure.ratio": "2", "model_unsure.max_std_months": "18"}
    assert client.post(url, form).status_code == 302
    saved = review_settings(Project.objects.get(pk=project.pk))
    assert saved["model_vs_label"]["min_months"] == 14 and saved["lease_minutes"] == 30
    assert saved["label_vs_label"]["enabled"] is False
    bad = client.post(url, {**form, "model_vs_label.min_months": "999"})
    assert bad.status_code == 200 and "“Smallest gap (months)” must be a number between 0 and 240" in bad.content.decode()
    assert review_settings(Project.objects.get(pk=project.pk))["model_vs_label"]["min_months"] == 14


def test_a_user_changes_their_own_password(client, member):
    client.force_login(member)
    response = client.post("/accounts/password/", {"old_password": "max_member-Pass-123",
                                                   "new_password1": "Quiet-Harbour-42", "new_password2": "Quiet-Harbour-42"})
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.check_password("Quiet-Harbour-42")


def test_staff_see_a_link_to_the_django_admin_and_others_do_not(client, member):
    client.force_login(member)
    assert 'href="/admin/"' not in client.get("/projects/").content.decode()
    member.is_staff = True
    member.save()
    assert 'href="/admin/"' in client.get("/projects/").content.decode()


def test_a_study_without_a_prediction_says_so_without_a_failing_request(api_as, owner, member, outsider, project):
    from boneage.studies.actions import do_ingest

    from tests.dicom_factory import dicom_bytes

    study = do_ingest(project, owner, dicom_bytes(), "a.dcm").study
    response = api_as(member).get(f"/api/studies/{study.pk}/prediction-state/")
    assert response.status_code == 200 and response.json()["state"] == "no_model"
    assert api_as(outsider).get(f"/api/studies/{study.pk}/prediction-state/").status_code == 404


def test_an_admin_sets_the_promotion_gate_on_the_settings_page_and_an_out_of_range_value_is_refused(
        client, owner, project):
    client.force_login(owner)
    url = f"/projects/{project.pk}/settings/"
    assert 'name="promotion_confidence"' in client.get(url).content.decode()
    saved = client.post(url, {"form": "promotion", "promotion_min_held_out": "40", "promotion_confidence": "0.95",
                              "promotion_min_gain_months": "1.5"})  # auto_promote unticked
    assert saved.status_code == 302
    project.refresh_from_db()
    assert (project.auto_promote, project.promotion_min_held_out, project.promotion_confidence,
            project.promotion_min_gain_months) == (False, 40, 0.95, 1.5)
    bad = client.post(url, {"form": "promotion", "auto_promote": "on", "promotion_min_held_out": "40",
                            "promotion_confidence": "1.5", "promotion_min_gain_months": "1.5"})
    assert bad.status_code == 200 and "field-error" in bad.content.decode()
    project.refresh_from_db()
    assert project.auto_promote is False and project.promotion_confidence == 0.95


def test_the_api_changes_the_promotion_gate_and_refuses_a_confidence_out_of_range(api_as, owner, member, project):
    response = api_as(owner).patch(f"/api/projects/{project.pk}/", {"auto_promote": False, "promotion_min_held_out": 30},
                                   format="json")
    assert response.status_code == 200, response.content
    assert response.json()["auto_promote"] is False and response.json()["promotion_min_held_out"] == 30
    refused = api_as(owner).patch(f"/api/projects/{project.pk}/", {"promotion_confidence": 0.2}, format="json")
    assert refused.status_code == 400 and "promotion_confidence" in refused.json()["detail"]
    assert api_as(member).patch(f"/api/projects/{project.pk}/", {"auto_promote": True}, format="json").status_code == 403
    project.refresh_from_db()
    assert project.auto_promote is False and project.promotion_confidence == 0.9


def test_renaming_a_project_to_a_strangers_project_name_is_allowed_and_confirms_nothing(api_as, owner, outsider):
    from boneage.studies.actions import do_create_project

    do_create_project(outsider, "Secret trial")
    mine = do_create_project(owner, "Mine")
    do_create_project(owner, "Also mine")
    assert api_as(owner).patch(f"/api/projects/{mine.pk}/", {"name": "Secret trial"}, format="json").status_code == 200
    taken = api_as(owner).patch(f"/api/projects/{mine.pk}/", {"name": "Also mine"}, format="json")
    assert taken.status_code == 400 and taken.json()["detail"] == "You already have a project with this name."
