"""The members API: project admins add, re-role and remove people; the last admin stays; every change is history."""
from __future__ import annotations

import pytest
from boneage.audit.models import AuditEvent
from boneage.studies.models import Membership

pytestmark = pytest.mark.django_db


def members_url(project, user=None) -> str:
    return f"/api/projects/{project.pk}/members/" + (f"{user.pk}/" if user else "")


def roles(project) -> dict[str, str]:
    return dict(Membership.objects.filter(project=project).values_list("user__username", "role"))


@pytest.fixture
def staff(make_user, project, owner):
    from boneage.studies.actions import do_set_role

    user = make_user("sam_staff")
    user.is_staff = True
    user.save()
    do_set_role(project, user, "admin", actor=owner)
    return user


def test_an_admin_lists_the_members_with_their_accounts_and_roles(api_as, owner, member, project):
    owner.email = "olivia@example.org"
    owner.save()
    response = api_as(owner).get(members_url(project))
    assert response.status_code == 200
    assert [(m["user"]["username"], m["user"]["email"], m["role"]) for m in response.json()] == [
        ("max_member", "", "labeler"), ("olivia_owner", "olivia@example.org", "admin")]
    assert response.json()[0]["user"]["id"] == member.pk and response.json()[0]["created_at"]


def test_an_admin_adds_an_existing_account_by_username(api_as, owner, project, make_user):
    make_user("lena_labeler")
    response = api_as(owner).post(members_url(project), {"username": "lena_labeler", "role": "labeler"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["role"] == "labeler" and response.json()["set_password_url"] is None
    assert roles(project)["lena_labeler"] == "labeler"


def test_an_admin_adds_an_existing_account_by_email_whatever_its_case(api_as, owner, project, make_user):
    lena = make_user("lena_labeler")
    lena.email = "Lena@Example.org"
    lena.save()
    response = api_as(owner).post(members_url(project), {"email": "lena@example.org", "role": "reviewer"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["user"]["username"] == "lena_labeler"
    assert roles(project)["lena_labeler"] == "reviewer"


def test_an_unknown_account_or_role_is_a_clear_400_and_adds_nobody(api_as, owner, project, make_user):
    make_user("lena_labeler")
    client = api_as(owner)
    before = roles(project)
    unknown_user = client.post(members_url(project), {"username": "nobody", "role": "labeler"}, format="json")
    assert unknown_user.status_code == 400 and unknown_user.json()["error"] == "unknown_user"
    assert "nobody" in unknown_user.json()["detail"]
    unknown_role = client.post(members_url(project), {"username": "lena_labeler", "role": "boss"}, format="json")
    assert unknown_role.status_code == 400 and unknown_role.json()["error"] == "unknown_role"
    assert "labeler, reviewer, trainer, admin" in unknown_role.json()["detail"]
    nobody_named = client.post(members_url(project), {"role": "labeler"}, format="json")
    assert nobody_named.status_code == 400 and nobody_named.json()["error"] == "user_required"
    assert roles(project) == before


def test_adding_someone_who_is_already_a_member_is_a_conflict_that_keeps_their_role(api_as, owner, member, project):
    response = api_as(owner).post(members_url(project), {"username": member.username, "role": "admin"}, format="json")
    assert response.status_code == 409 and response.json()["error"] == "already_member"
    assert roles(project)["max_member"] == "labeler"


def test_site_staff_create_an_account_without_password_and_get_a_one_time_set_password_link(
        api_as, staff, project, client, django_user_model):
    response = api_as(staff).post(members_url(project), {"username": "nina_new", "email": "nina@example.org",
                                                          "role": "labeler", "create": True}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["created_account"] is True and body["user"]["email"] == "nina@example.org"
    nina = django_user_model.objects.get(username="nina_new")
    assert not nina.has_usable_password()
    link = body["set_password_url"]
    assert link.startswith("http://testserver/accounts/reset/")
    form = client.get(link, follow=True)  # Django swaps the token for a session-bound form URL
    assert form.status_code == 200 and b"Set your password" in form.content and b"no longer valid" not in form.content
    done = client.post(form.redirect_chain[-1][0], {"new_password1": "Quiet-Harbour-42", "new_password2": "Quiet-Harbour-42"})
    assert done.status_code == 302
    nina.refresh_from_db()
    assert nina.check_password("Quiet-Harbour-42")
    client.logout()
    again = client.get(link, follow=True)
    assert b"no longer valid" in again.content  # one-time: the token dies with the unusable password


def test_site_staff_create_an_account_with_a_password_that_can_log_in_at_once(api_as, staff, project, client):
    response = api_as(staff).post(members_url(project), {"username": "nina_new", "password": "Quiet-Harbour-42",
                                                          "role": "reviewer", "create": True}, format="json")
    assert response.status_code == 201 and response.json()["set_password_url"] is None
    assert client.login(username="nina_new", password="Quiet-Harbour-42")
    assert roles(project)["nina_new"] == "reviewer"


def test_creating_an_account_is_refused_to_a_project_admin_who_is_not_site_staff(api_as, owner, project, django_user_model):
    response = api_as(owner).post(members_url(project), {"username": "nina_new", "role": "labeler", "create": True},
                                  format="json")
    assert response.status_code == 403 and response.json()["error"] == "staff_only"
    assert not django_user_model.objects.filter(username="nina_new").exists()


def test_a_refused_account_creation_leaves_no_account_behind(api_as, staff, project, django_user_model, member):
    client = api_as(staff)
    weak = client.post(members_url(project), {"username": "nina_new", "password": "123", "role": "labeler",
                                              "create": True}, format="json")
    assert weak.status_code == 400 and weak.json()["error"] == "weak_password"
    taken = client.post(members_url(project), {"username": "MAX_member", "role": "labeler", "create": True}, format="json")
    assert taken.status_code == 400 and taken.json()["error"] == "username_taken"
    bad_role = client.post(members_url(project), {"username": "nina_new", "role": "boss", "create": True}, format="json")
    assert bad_role.status_code == 400
    bad_email = client.post(members_url(project), {"username": "nina_new", "email": "not-an-address", "role": "labeler",
                                                   "create": True}, format="json")
    assert bad_email.status_code == 400 and bad_email.json()["error"] == "invalid_email"
    assert not django_user_model.objects.filter(username="nina_new").exists()


def test_an_admin_changes_a_role_and_the_history_says_who_whom_and_old_to_new(api_as, owner, member, project):
    response = api_as(owner).patch(members_url(project, member), {"role": "reviewer"}, format="json")
    assert response.status_code == 200 and response.json()["role"] == "reviewer"
    event = AuditEvent.objects.filter(project=project, verb="membership.role_changed").last()
    assert event.actor == owner
    assert event.before == {"user": "max_member", "user_id": member.pk, "role": "labeler"}
    assert event.after == {"user": "max_member", "user_id": member.pk, "role": "reviewer"}
    history = api_as(owner).get(f"/api/projects/{project.pk}/history/?verb=membership.").json()["results"]
    assert history[0]["actor"] == "olivia_owner" and history[0]["after"]["role"] == "reviewer"


def test_an_unknown_role_in_a_change_is_a_400_that_keeps_the_old_role(api_as, owner, member, project):
    response = api_as(owner).patch(members_url(project, member), {"role": "boss"}, format="json")
    assert response.status_code == 400 and response.json()["error"] == "unknown_role"
    assert roles(project)["max_member"] == "labeler"


def test_an_admin_removes_a_member_whose_rest_access_ends_at_once(api_as, owner, member, project):
    labeler = api_as(member)
    assert labeler.get(f"/api/projects/{project.pk}/").status_code == 200
    response = api_as(owner).delete(members_url(project, member))
    assert response.status_code == 204
    assert "max_member" not in roles(project)
    assert labeler.get(f"/api/projects/{project.pk}/").status_code == 404
    event = AuditEvent.objects.get(project=project, verb="membership.removed")
    assert event.actor == owner and event.before["role"] == "labeler" and event.after["role"] is None


def test_the_last_admin_can_neither_be_demoted_nor_removed(api_as, owner, project):
    client = api_as(owner)
    demoted = client.patch(members_url(project, owner), {"role": "labeler"}, format="json")
    assert demoted.status_code == 409 and demoted.json()["error"] == "last_admin"
    assert "last admin" in demoted.json()["detail"]
    removed = client.delete(members_url(project, owner))
    assert removed.status_code == 409 and removed.json()["error"] == "last_admin"
    assert roles(project)["olivia_owner"] == "admin"
    assert not AuditEvent.objects.filter(project=project, verb="membership.removed").exists()


def test_with_a_second_admin_the_first_may_step_down(api_as, owner, member, project):
    client = api_as(owner)
    assert client.patch(members_url(project, member), {"role": "admin"}, format="json").status_code == 200
    assert client.patch(members_url(project, owner), {"role": "reviewer"}, format="json").status_code == 200
    assert roles(project) == {"olivia_owner": "reviewer", "max_member": "admin"}


def test_changing_someone_who_is_not_a_member_is_a_404(api_as, owner, outsider, project):
    response = api_as(owner).patch(members_url(project, outsider), {"role": "labeler"}, format="json")
    assert response.status_code == 404 and response.json()["error"] == "not_a_member"
    assert api_as(owner).delete(members_url(project, outsider)).status_code == 404
    assert "oscar_outsider" not in roles(project)


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_outsiders_get_404_and_members_who_are_not_admins_403(api_as, outsider, member, owner, project, method):
    body = {"username": "oscar_outsider", "role": "admin"}
    url = members_url(project) if method in ("get", "post") else members_url(project, owner)
    as_outsider = getattr(api_as(outsider), method)(url, body, format="json")
    assert as_outsider.status_code == 404 and as_outsider.json()["error"]
    as_labeler = getattr(api_as(member), method)(url, body, format="json")
    assert as_labeler.status_code == 403 and as_labeler.json()["error"]
    assert roles(project) == {"olivia_owner": "admin", "max_member": "labeler"}


def test_an_admin_changes_the_project_name_description_and_age_range(api_as, owner, project):
    response = api_as(owner).patch(f"/api/projects/{project.pk}/", {"name": "Hands 2026", "description": "RSNA subset",
                                                                    "min_age_months": 12, "max_age_months": 228},
                                   format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["name"], response.json()["min_age_months"], response.json()["max_age_months"]) == (
        "Hands 2026", 12, 228)
    event = AuditEvent.objects.get(project=project, verb="project.updated")
    assert event.before["name"] == "Hands" and event.after["max_age_months"] == 228


def test_an_inverted_or_out_of_bounds_age_range_is_refused_and_nothing_changes(api_as, owner, project):
    client = api_as(owner)
    inverted = client.patch(f"/api/projects/{project.pk}/", {"name": "Renamed", "min_age_months": 100,
                                                              "max_age_months": 50}, format="json")
    assert inverted.status_code == 400 and inverted.json()["error"] == "invalid_age_range"
    too_old = client.patch(f"/api/projects/{project.pk}/", {"max_age_months": 500}, format="json")
    assert too_old.status_code == 400 and "max_age_months" in too_old.json()["fields"]
    project.refresh_from_db()
    assert (project.name, project.min_age_months, project.max_age_months) == ("Hands", 0, 240)


def test_only_admins_change_the_project(api_as, member, outsider, project):
    assert api_as(member).patch(f"/api/projects/{project.pk}/", {"name": "Mine"}, format="json").status_code == 403
    assert api_as(outsider).patch(f"/api/projects/{project.pk}/", {"name": "Mine"}, format="json").status_code == 404
    project.refresh_from_db()
    assert project.name == "Hands"


def test_a_label_outside_the_project_age_range_is_refused(api_as, owner, project):
    from boneage.studies.actions import do_ingest, do_update_project

    from tests.dicom_factory import dicom_bytes

    do_update_project(project, {"max_age_months": 200.0}, actor=owner)
    study = do_ingest(project, owner, dicom_bytes(), "a.dcm").study
    response = api_as(owner).post(f"/api/studies/{study.pk}/labels/", {"months": 210}, format="json")
    assert response.status_code == 400 and "between 0 and 200 months" in response.json()["detail"]
    assert not study.age_labels.exists()
