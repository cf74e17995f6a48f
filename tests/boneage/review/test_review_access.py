"""Who may do what: every review endpoint and the websocket, for each persona. Outsiders learn nothing."""
from __future__ import annotations

import pytest

from tests.boneage.review.helpers import open_items

pytestmark = pytest.mark.django_db


@pytest.fixture
def item(make_study, model_version, predict):
    study = make_study(100)
    predict(study, model_version(), 150, 5)
    return open_items(study)[0]


def reads(item):
    p = item.project_id
    return [f"/api/projects/{p}/review-items/", f"/api/review-items/{item.pk}/", f"/api/projects/{p}/agreement/",
            f"/api/projects/{p}/review-settings/"]


def writes(item):
    return [(f"/api/review-items/{item.pk}/claim/", {}), (f"/api/review-items/{item.pk}/release/", {}),
            (f"/api/review-items/{item.pk}/blind-read/", {"months": 120}),
            (f"/api/review-items/{item.pk}/resolve/", {"decision": "accept_model"})]


def test_an_outsider_gets_404_from_every_review_endpoint_and_page(api_as, outsider, item):
    client = api_as(outsider)
    for url in reads(item):
        assert client.get(url).status_code == 404, url
    for url, body in writes(item):
        assert client.post(url, body, format="json").status_code == 404, url
    assert client.patch(f"/api/projects/{item.project_id}/review-settings/", {"blind": True}, format="json").status_code == 404
    assert client.get(f"/projects/{item.project_id}/review/").status_code == 404
    item.refresh_from_db()
    assert item.state == "open" and item.claimed_by is None


def test_an_anonymous_caller_is_refused_everywhere(client, item):
    for url in reads(item):
        assert client.get(url).status_code in (401, 403), url
    for url, body in writes(item):
        assert client.post(url, body, content_type="application/json").status_code in (401, 403), url
    assert client.get(f"/projects/{item.project_id}/review/").status_code == 302  # to the login page


def test_a_labeler_sees_the_queue_but_cannot_claim_read_blind_or_resolve(api_as, member, item):
    client = api_as(member)
    for url in reads(item):
        assert client.get(url).status_code == 200, url
    for url, body in writes(item):
        response = client.post(url, body, format="json")
        assert response.status_code == 403 and response.json()["error"] == "permission_denied", url
    assert client.get(f"/projects/{item.project_id}/review/").status_code == 200
    item.refresh_from_db()
    assert item.state == "open" and item.claimed_by is None and item.blind_reads == {}


def test_a_trainer_cannot_review_either(api_as, make_user, owner, project, item):
    from boneage.studies.actions import do_set_role

    trainer = make_user("tara_trainer")
    do_set_role(project, trainer, "trainer", actor=owner)
    assert api_as(trainer).post(f"/api/review-items/{item.pk}/claim/").status_code == 403


@pytest.mark.parametrize("persona", ["reviewer", "owner"])
def test_reviewers_and_admins_claim_and_resolve(api_as, request, item, persona, committed):
    user = request.getfixturevalue(persona)
    client = api_as(user)
    assert client.post(f"/api/review-items/{item.pk}/claim/").status_code == 200
    with committed():
        assert client.post(f"/api/review-items/{item.pk}/resolve/", {"decision": "accept_model"}, format="json").status_code == 200


def test_only_admins_change_the_rule_settings(api_as, owner, reviewer, member, project):
    url = f"/api/projects/{project.pk}/review-settings/"
    for user in (reviewer, member):
        assert api_as(user).patch(url, {"blind": True}, format="json").status_code == 403
    project.refresh_from_db()
    assert "review" not in project.settings
    response = api_as(owner).patch(url, {"blind": True, "model_unsure": {"max_std_months": 20}}, format="json")
    assert response.status_code == 200
    assert response.json()["settings"]["blind"] is True and response.json()["settings"]["model_unsure"]["max_std_months"] == 20
    assert response.json()["explanations"]["model_vs_label"]["summary"]


@pytest.mark.parametrize("body, needle", [
    ({"nonsense": 1}, "Unknown setting"),
    ({"model_unsure": {"max_std_months": -3}}, "between"),
    ({"model_unsure": {"max_std_months": "lots"}}, "between"),
    ({"model_unsure": {"colour": 1}}, "Unknown option"),
    ({"blind": "yes"}, "true or false"),
    ({"lease_minutes": 0}, "between 1 and 1440"),
    ({"mask_vs_mask": 0.5}, "must be an object"),
    ([1, 2], "JSON object"),
])
def test_bad_settings_are_refused_with_the_reason_and_nothing_is_stored(api_as, owner, project, body, needle):
    response = api_as(owner).patch(f"/api/projects/{project.pk}/review-settings/", body, format="json")
    # a body that is no JSON object is refused by the API's parser, before the settings are read
    expected = "not_an_object" if isinstance(body, list) else "invalid_settings"
    assert response.status_code == 400 and response.json()["error"] == expected
    assert needle in response.json()["detail"]
    project.refresh_from_db()
    assert "review" not in project.settings


def test_items_of_another_project_are_invisible_to_its_non_members(api_as, make_user, make_study, model_version, predict, item):
    from boneage.studies.actions import do_create_project

    stranger = make_user("sam_stranger")
    other = do_create_project(stranger, "Other hands")
    study = make_study(100, in_project=other)
    predict(study, model_version(in_project=other), 160, 5)
    rows = api_as(stranger).get(f"/api/projects/{other.pk}/review-items/").json()["results"]
    assert [row["study"] for row in rows] == [study.pk]
    assert api_as(stranger).get(f"/api/review-items/{item.pk}/").status_code == 404
