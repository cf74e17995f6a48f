"""Edges of the API an attacker or a broken client reaches: every error is the documented JSON, never a 500."""
from __future__ import annotations

import pytest
import yaml
from rest_framework.test import APIClient

from tests.dicom_factory import png_bytes

pytestmark = pytest.mark.django_db


def study_of(project, owner):
    import numpy as np
    from boneage.studies.actions import do_ingest

    return do_ingest(project, owner, png_bytes(np.arange(48 * 64, dtype=np.uint8).reshape(48, 64)), "hand.png").study


def assert_json_error(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert isinstance(body["error"], str) and body["error"] and isinstance(body["detail"], str) and body["detail"]
    return body


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("url", ["/api/no-such-thing/", "/api/studies/abc/", "/api/projects/1x/studies/"])
def test_an_unknown_api_url_or_a_non_integer_id_is_a_json_404_under_every_profile(settings, api_as, owner, url, debug):
    settings.DEBUG = debug
    assert_json_error(api_as(owner).get(url), 404)


@pytest.mark.parametrize("debug", [True, False])
def test_an_uncaught_exception_in_the_api_is_a_json_500_under_every_profile(settings, monkeypatch, owner, debug):
    settings.DEBUG = debug

    def broken(user):
        raise RuntimeError("a bug")

    monkeypatch.setattr("boneage.studies.views.visible_projects", broken)
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(owner)
    body = assert_json_error(client.get("/api/projects/"), 500)
    assert "a bug" not in body["detail"]  # nothing of the internals leaks


def test_a_page_size_beyond_the_database_integers_is_capped_not_a_500(api_as, owner, project):
    study_of(project, owner)
    response = api_as(owner).get(f"/api/projects/{project.pk}/studies/?limit={2**70}&offset={2**70}")
    assert response.status_code == 200, response.content
    response = api_as(owner).get(f"/api/projects/{project.pk}/studies/?limit={2**70}")
    assert len(response.json()["results"]) == 1


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "42", "null"])
def test_a_json_body_that_is_not_an_object_is_a_400(api_as, owner, project, body):
    study = study_of(project, owner)
    response = api_as(owner).post(f"/api/studies/{study.pk}/labels/", body, content_type="application/json")
    assert assert_json_error(response, 400)["error"] == "not_an_object"


def test_a_nul_character_in_a_json_body_a_form_or_the_query_is_a_400(api_as, owner, project):
    study = study_of(project, owner)
    client = api_as(owner)
    as_json = client.post(f"/api/studies/{study.pk}/labels/", {"months": 100, "note": "a\x00b"}, format="json")
    assert assert_json_error(as_json, 400)["error"] == "nul_character"
    as_form = client.post(f"/api/studies/{study.pk}/labels/", {"months": "100", "note": "a\x00b"})
    assert assert_json_error(as_form, 400)["error"] == "nul_character"
    assert_json_error(client.get(f"/api/projects/{project.pk}/worklist/?q=a%00b"), 400)
    assert not study.age_labels.exists()


def test_an_upload_holding_only_the_closing_boundary_is_refused_with_a_reason(api_as, owner, project):
    response = api_as(owner).generic("POST", f"/api/projects/{project.pk}/studies/", b"--xyz--\r\n",
                                     content_type="multipart/form-data; boundary=xyz")
    assert_json_error(response, 400)
    assert not project.studies.exists()


def test_the_schema_and_the_docs_need_a_login(client):
    assert_json_error(client.get("/api/schema/"), 401)
    assert client.get("/api/docs/").status_code == 401


def test_a_setting_opens_the_schema_to_anonymous_readers(settings, client):
    settings.API_DOCS_PUBLIC = True
    assert client.get("/api/schema/").status_code == 200


def schema_of(client) -> dict:
    return yaml.safe_load(client.get("/api/schema/").content)


def test_the_schema_says_which_fields_can_be_null_and_which_errors_each_operation_answers(api_as, owner):
    schema = schema_of(api_as(owner))
    components = schema["components"]["schemas"]
    for component, field in [("AuditEvent", "actor"), ("AgeLabel", "author"), ("MaskRevision", "author"),
                             ("ModelVersion", "parent_name"), ("ReviewItem", "resolved_by"),
                             ("TrainingRun", "init_from_name"), ("TrainingRun", "result_name")]:
        assert components[component]["properties"][field].get("nullable") is True, (component, field)
    strategy = components["NextCase"]["properties"]["strategy"]["allOf"][0]["$ref"].split("/")[-1]
    assert "oldest" in components[strategy]["enum"]  # what next-case answers when nothing is scored yet
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"400", "401", "403", "404"} <= codes, (method, path)
            if method != "get":
                assert {"409", "422"} <= codes, (method, path)


def test_a_project_name_is_unique_per_owner_and_the_reply_says_nothing_of_other_teams(api_as, owner, outsider, project):
    mine = api_as(outsider).post("/api/projects/", {"name": project.name}, format="json")
    assert mine.status_code == 201, mine.content  # the stranger learns nothing: the name is simply free for them
    again = api_as(owner).post("/api/projects/", {"name": project.name}, format="json")
    assert "You already have" in assert_json_error(again, 400)["detail"]
