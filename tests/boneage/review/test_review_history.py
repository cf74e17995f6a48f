"""Review decisions land in the study's append-only history, and no interface can change them."""
from __future__ import annotations

import pytest
from boneage.audit.models import AuditEvent, AuditHistoryIsAppendOnly

from tests.boneage.review.helpers import open_items

pytestmark = pytest.mark.django_db


@pytest.fixture
def decided(api_as, reviewer, make_study, model_version, predict, committed):
    study = make_study(100)
    predict(study, model_version(), 150, 5)
    [item] = open_items(study)
    client = api_as(reviewer)
    client.post(f"/api/review-items/{item.pk}/claim/")
    with committed():
        client.post(f"/api/review-items/{item.pk}/resolve/", {"decision": "new_value", "months": 140}, format="json")
    return item


def test_the_study_history_tells_the_whole_review_story_with_before_and_after(api_as, member, decided):
    history = api_as(member).get(f"/api/studies/{decided.study_id}/history/").json()
    verbs = [event["verb"] for event in history]
    assert sorted(verbs[:2]) == ["label.imported", "study.ingested"]
    assert verbs[2:] == ["review.queued", "review.claimed", "label.saved", "review.resolved"]
    resolved = history[-1]
    assert resolved["actor"] == "rita_reviewer"
    assert resolved["before"]["label"] == {"months": 100.0, "source": "import"}
    assert resolved["after"]["decision"] == "new_value" and resolved["after"]["months"] == 140
    assert history[-2]["after"] == {"months": 140.0, "source": "review"}


def test_an_auto_closed_item_is_in_the_history_too(api_as, member, make_study, model_version, predict, label):
    study = make_study(100)
    predict(study, model_version(), 150, 5)
    label(study, 149, member)
    history = api_as(member).get(f"/api/studies/{study.pk}/history/").json()
    closed = [event for event in history if event["verb"] == "review.closed"]
    assert len(closed) == 1 and closed[0]["actor"] is None and "label" in closed[0]["after"]["why"]


def test_review_events_cannot_be_edited_or_deleted_through_the_orm(decided):
    event = AuditEvent.objects.get(verb="review.resolved", study=decided.study)
    event.after = {"decision": "forged"}
    with pytest.raises(AuditHistoryIsAppendOnly):
        event.save()
    with pytest.raises(AuditHistoryIsAppendOnly):
        event.delete()
    with pytest.raises(AuditHistoryIsAppendOnly):
        AuditEvent.objects.filter(verb__startswith="review.").delete()
    with pytest.raises(AuditHistoryIsAppendOnly):
        AuditEvent.objects.filter(verb__startswith="review.").update(verb="x")


def test_the_review_endpoints_offer_no_way_to_rewrite_a_decision(api_as, owner, decided):
    client = api_as(owner)
    for method in (client.put, client.patch, client.delete):
        assert method(f"/api/review-items/{decided.pk}/", {"decision": "dismiss"}, format="json").status_code == 405
        assert method(f"/api/review-items/{decided.pk}/resolve/", {}, format="json").status_code == 405
    again = client.post(f"/api/review-items/{decided.pk}/resolve/", {"decision": "new_value", "months": 10}, format="json")
    assert again.status_code == 409
    assert AuditEvent.objects.filter(verb="review.resolved", study=decided.study).count() == 1


def test_the_admin_site_cannot_change_review_events(admin_client, decided):
    event = AuditEvent.objects.get(verb="review.resolved", study=decided.study)
    response = admin_client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"})
    assert response.status_code in (403, 302) and AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_project_history_shows_project_wide_events_to_members_only(api_as, owner, member, outsider, project, decided):
    client = api_as(member)
    body = client.get(f"/api/projects/{project.pk}/history/").json()
    verbs = [event["verb"] for event in body["results"]]
    assert verbs[0] == "review.resolved" and "membership.role_changed" in verbs and "project.created" in verbs
    only_review = client.get(f"/api/projects/{project.pk}/history/?verb=review.").json()["results"]
    assert {event["verb"].split(".")[0] for event in only_review} == {"review"}
    assert api_as(outsider).get(f"/api/projects/{project.pk}/history/").status_code == 404
    for method in (client.post, client.put, client.patch, client.delete):
        assert method(f"/api/projects/{project.pk}/history/", {}, format="json").status_code == 405


def test_a_settings_change_is_in_the_project_history_with_before_and_after(api_as, owner, project):
    api_as(owner).patch(f"/api/projects/{project.pk}/review-settings/", {"model_unsure": {"max_std_months": 25}}, format="json")
    [event] = api_as(owner).get(f"/api/projects/{project.pk}/history/?verb=review.settings").json()["results"]
    assert event["before"]["model_unsure"]["max_std_months"] == 18 and event["after"]["model_unsure"]["max_std_months"] == 25
    assert event["actor"] == owner.username
