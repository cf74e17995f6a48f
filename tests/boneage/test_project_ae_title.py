"""Each project has the called AE title its DICOM node answers to: derived from its name, unique, shown in the API and
on the settings page, changed there by the project's admin with a clear error for a bad or taken title."""
from __future__ import annotations

import pytest
from boneage.studies.actions import do_create_project
from boneage.studies.ae_titles import derived_ae_title
from boneage.studies.models import Project

pytestmark = pytest.mark.django_db


def test_a_new_project_gets_a_title_from_its_name_and_a_second_of_that_name_a_numbered_one(owner, outsider):
    first = do_create_project(owner, "Hand study (RSNA) 2026")
    second = do_create_project(outsider, "Hand study (RSNA) 2026")
    assert first.ae_title == "HAND_STUDY_RSNA"
    assert second.ae_title == "HAND_STUDY_RSN_2"


def test_a_name_without_letters_or_digits_still_gives_a_title():
    assert derived_ae_title("¿…?") == "BONEAGE"


def test_the_project_api_shows_the_title_to_members(api_as, member, project):
    answer = api_as(member).get(f"/api/projects/{project.pk}/").json()
    assert answer["ae_title"] == "HANDS"


def test_the_owner_changes_the_title_and_the_node_routes_by_the_new_one(api_as, owner, project):
    response = api_as(owner).patch(f"/api/projects/{project.pk}/", {"ae_title": "  BONEAGE_XR1 "}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["ae_title"] == "BONEAGE_XR1"
    assert Project.objects.get(pk=project.pk).ae_title == "BONEAGE_XR1"


@pytest.mark.parametrize("title,error,words", [
    ("", "invalid_ae_title", "cannot be blank"),
    ("    ", "invalid_ae_title", "cannot be blank"),
    ("A" * 17, "invalid_ae_title", "at most 16 characters"),
    ("HAND\\XR", "invalid_ae_title", "backslash"),
    ("HAND\tXR", "invalid_ae_title", "no control characters"),
    ("HÄNDE", "invalid_ae_title", "printable ASCII"),
])
def test_a_bad_title_is_refused_with_its_reason_and_nothing_changes(api_as, owner, project, title, error, words):
    response = api_as(owner).patch(f"/api/projects/{project.pk}/", {"ae_title": title}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == error and words in response.json()["detail"]
    assert Project.objects.get(pk=project.pk).ae_title == "HANDS"


def test_another_projects_title_is_refused_as_taken(api_as, owner, outsider, project):
    theirs = do_create_project(outsider, "Wrists")
    response = api_as(owner).patch(f"/api/projects/{project.pk}/", {"ae_title": theirs.ae_title}, format="json")
    assert response.status_code == 400 and response.json()["error"] == "ae_title_taken"
    assert Project.objects.get(pk=project.pk).ae_title == "HANDS"


def test_a_member_who_is_not_admin_cannot_change_the_title(api_as, member, project):
    assert api_as(member).patch(f"/api/projects/{project.pk}/", {"ae_title": "MINE"}, format="json").status_code == 403
    assert Project.objects.get(pk=project.pk).ae_title == "HANDS"


def test_the_admin_sets_the_title_on_the_settings_page_and_a_bad_one_shows_its_error_next_to_the_field(
        client, owner, project):
    client.force_login(owner)
    page = client.get(f"/projects/{project.pk}/settings/").content.decode()
    assert 'name="ae_title"' in page and 'value="HANDS"' in page and "11112" in page
    refused = client.post(f"/projects/{project.pk}/settings/", {"form": "dicom", "ae_title": "A" * 20})
    assert refused.status_code == 200
    assert "at most 16 characters" in refused.content.decode() and 'value="' + "A" * 20 + '"' in refused.content.decode()
    assert Project.objects.get(pk=project.pk).ae_title == "HANDS"
    saved = client.post(f"/projects/{project.pk}/settings/", {"form": "dicom", "ae_title": "XR_ROOM_2"})
    assert saved.status_code == 302
    assert Project.objects.get(pk=project.pk).ae_title == "XR_ROOM_2"
