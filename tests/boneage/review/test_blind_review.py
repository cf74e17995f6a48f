"""Blind review: the reviewer reads the image alone first; labelers never see others' values in the queue."""
from __future__ import annotations

import pytest

from tests.boneage.review.helpers import open_items

pytestmark = pytest.mark.django_db

# the fields that would give the model's or the labeler's value away (priority is the magnitude scaled)
VALUE_FIELDS = ("evidence", "magnitude", "outcome", "priority")


def _numbers(data) -> set[float]:
    """Every number in a JSON body (not digits inside timestamps, which made a substring check flaky)."""
    if isinstance(data, dict):
        return set().union(*(_numbers(value) for key, value in data.items() if key not in ("id", "study", "resolved_by")))
    if isinstance(data, list):
        return set().union(*(_numbers(value) for value in data))
    return {data} if isinstance(data, (int, float)) and not isinstance(data, bool) else set()


@pytest.fixture
def blind_item(project, make_study, model_version, predict):
    project.settings = {"review": {"blind": True}}
    project.save()
    study = make_study(100)
    predict(study, model_version(), 150, 5)
    return open_items(study)[0]


def test_the_reviewer_sees_no_values_until_entering_their_own(api_as, reviewer, blind_item):
    client = api_as(reviewer)
    body = client.get(f"/api/review-items/{blind_item.pk}/").json()
    assert body["values_hidden"] is True and body["evidence"] is None and body["magnitude"] is None
    listed = client.get(f"/api/projects/{blind_item.project_id}/review-items/").json()["results"][0]
    assert [listed[key] for key in VALUE_FIELDS] == [None] * len(VALUE_FIELDS)
    assert 150 not in _numbers(listed) and 145 not in _numbers(listed)
    response = client.post(f"/api/review-items/{blind_item.pk}/blind-read/", {"months": 118}, format="json")
    assert response.status_code == 200
    assert response.json()["values_hidden"] is False and response.json()["evidence"]["prediction"]["age_months"] == 150
    assert response.json()["my_blind_read"] == 118


def test_deciding_before_the_blind_reading_is_refused(api_as, reviewer, blind_item):
    response = api_as(reviewer).post(f"/api/review-items/{blind_item.pk}/resolve/", {"decision": "accept_model"}, format="json")
    assert response.status_code == 409 and response.json()["error"] == "blind_read_required"


def test_the_blind_reading_is_kept_with_the_decision(api_as, reviewer, blind_item, committed):
    client = api_as(reviewer)
    client.post(f"/api/review-items/{blind_item.pk}/blind-read/", {"months": 118}, format="json")
    with committed():
        response = client.post(f"/api/review-items/{blind_item.pk}/resolve/", {"decision": "accept_label"}, format="json")
    assert response.status_code == 200 and response.json()["outcome"]["blind_months"] == 118


def test_a_blind_reading_cannot_be_changed_after_the_values_were_shown(api_as, reviewer, blind_item):
    client = api_as(reviewer)
    client.post(f"/api/review-items/{blind_item.pk}/blind-read/", {"months": 118}, format="json")
    again = client.post(f"/api/review-items/{blind_item.pk}/blind-read/", {"months": 150}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "already_read"


@pytest.mark.parametrize("months", [None, "", "old", -1, 241])
def test_a_bad_blind_reading_is_a_clear_400(api_as, reviewer, blind_item, months):
    response = api_as(reviewer).post(f"/api/review-items/{blind_item.pk}/blind-read/", {"months": months}, format="json")
    assert response.status_code == 400 and response.json()["error"] == "invalid_months"
    blind_item.refresh_from_db()
    assert blind_item.blind_reads == {}


def test_a_labeler_never_sees_other_labelers_values_in_the_blind_queue(api_as, member, second_labeler, make_study, label, project):
    project.settings = {"review": {"blind": True}}
    project.save()
    study = make_study()
    label(study, 100, member)
    label(study, 140, second_labeler)
    rows = api_as(member).get(f"/api/projects/{project.pk}/review-items/").json()["results"]
    assert len(rows) == 1 and rows[0]["reason"] == "label_vs_label"
    assert rows[0]["evidence"] is None and rows[0]["values_hidden"] is True and "140" not in str(rows[0])


def test_without_blind_review_everyone_sees_the_values(api_as, member, make_study, model_version, predict):
    study = make_study(100)
    predict(study, model_version(), 150, 5)
    rows = api_as(member).get(f"/api/projects/{study.project_id}/review-items/").json()["results"]
    assert rows[0]["evidence"]["prediction"]["age_months"] == 150
