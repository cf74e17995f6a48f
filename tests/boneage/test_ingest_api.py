"""Uploading studies through the REST API, as the owner, a member and an outsider."""
from __future__ import annotations

import io

import numpy as np
import pytest
from boneage.studies.models import IngestRecord, Study
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.dicom_factory import dicom_bytes, make_dicom_dataset, png_bytes

pytestmark = pytest.mark.django_db


def upload(client, project, data: bytes, name: str = "hand.dcm", **fields):
    return client.post(f"/api/projects/{project.pk}/studies/", {"file": SimpleUploadedFile(name, data), **fields}, format="multipart")


def stored_files(media_root) -> list:
    return [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []


def test_a_member_uploads_a_dicom_and_sees_it_listed(api_as, project, member):
    client = api_as(member)
    response = upload(client, project, dicom_bytes(sex="M", age="007Y"))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["sex"] == "M" and body["chronological_age_months"] == 84
    listed = client.get(f"/api/projects/{project.pk}/studies/").json()
    assert [s["id"] for s in listed["results"]] == [body["id"]]
    assert IngestRecord.objects.get().outcome == "accepted"


def test_form_fields_win_over_dicom_tags(api_as, project, owner):
    response = upload(api_as(owner), project, dicom_bytes(sex="M", age="007Y"), sex="F", chronological_age_months="90", bone_age_months="100")
    body = response.json()
    assert (body["sex"], body["chronological_age_months"]) == ("F", 90)
    assert body["label"]["months"] == 100 and body["label"]["source"] == "import"


def test_a_png_with_fields_is_accepted_and_shown_as_a_display_png(api_as, project, owner):
    client = api_as(owner)
    pixels = (np.arange(64 * 80, dtype=np.uint32).reshape(64, 80) * 12).astype(np.uint16)
    response = upload(client, project, png_bytes(pixels), "hand.png", sex="F", chronological_age_months="30")
    assert response.status_code == 201
    image = client.get(f"/api/studies/{response.json()['id']}/image/")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    from PIL import Image

    shown = Image.open(io.BytesIO(b"".join(image.streaming_content)))
    assert shown.size == (80, 64) and shown.mode == "L"


def test_the_same_file_twice_is_already_stored(api_as, project, owner):
    client = api_as(owner)
    data = dicom_bytes()
    first, second = upload(client, project, data), upload(client, project, data)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["already_stored"] is True and second.json()["study"]["id"] == first.json()["id"]
    assert Study.objects.count() == 1


def test_the_same_uid_with_other_bytes_is_a_recorded_conflict_and_the_original_is_kept(api_as, project, owner, temporary_media):
    client = api_as(owner)
    first = upload(client, project, dicom_bytes(sop_uid="1.2.3.4", sex="F"))
    files_before = sorted(stored_files(temporary_media))
    second = upload(client, project, dicom_bytes(sop_uid="1.2.3.4", sex="M"))
    assert second.status_code == 409 and second.json()["error"] == "uid_conflict"
    assert Study.objects.get().sex == "F" and Study.objects.get().checksum == first.json()["checksum"]
    assert sorted(stored_files(temporary_media)) == files_before
    assert IngestRecord.objects.filter(outcome="conflict").count() == 1


BAD_INPUTS = [
    ("empty file", b"", 400, "empty_file"),
    ("not dicom", b"hello, this is a text file" * 20, 415, "unsupported_media_type"),
    ("dicom without preamble", dicom_bytes()[132:], 415, "unsupported_media_type"),
    ("truncated dicom", dicom_bytes()[:-500], 422, "truncated_pixel_data"),
    ("truncated png", png_bytes(np.full((64, 64), 7, np.uint8))[:-30], 422, "truncated_image"),
]


@pytest.mark.parametrize("case,data,status,code", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_a_bad_file_gets_a_clear_error_and_leaves_nothing_but_a_record(api_as, project, owner, temporary_media, case, data, status, code):
    response = upload(api_as(owner), project, data)
    assert response.status_code == status
    assert response.json()["error"] == code and len(response.json()["detail"]) > 10
    assert Study.objects.count() == 0 and stored_files(temporary_media) == []
    record = IngestRecord.objects.get()
    assert (record.outcome, record.reason) == ("rejected", code)


def test_absurd_declared_dimensions_are_refused_before_decoding(api_as, project, owner):
    ds = make_dicom_dataset()
    ds.Rows = ds.Columns = 65535
    response = upload(api_as(owner), project, dicom_bytes(ds))
    assert response.status_code == 422 and response.json()["error"] == "absurd_dimensions"
    assert "65535×65535" in response.json()["detail"]


def test_a_dicom_without_pixel_data_is_refused(api_as, project, owner):
    from pydicom.data import get_testdata_file

    with open(get_testdata_file("rtplan.dcm"), "rb") as handle:
        response = upload(api_as(owner), project, handle.read())
    assert response.status_code == 422 and response.json()["error"] == "no_pixel_data"
    assert "RT Plan" in response.json()["detail"]


def test_a_deeply_nested_sequence_is_refused(api_as, project, owner):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = make_dicom_dataset()
    inner = Dataset()
    inner.CodeValue = "X"
    for _ in range(40):
        outer = Dataset()
        outer.ContentSequence = Sequence([inner])
        inner = outer
    ds.ContentSequence = Sequence([inner])
    response = upload(api_as(owner), project, dicom_bytes(ds))
    assert response.status_code == 422 and response.json()["error"] == "nested_too_deep"


def test_a_file_over_the_size_limit_is_413(api_as, project, owner, settings):
    settings.UPLOAD_MAX_BYTES = 2048
    response = upload(api_as(owner), project, dicom_bytes())
    assert response.status_code == 413 and response.json()["error"] == "file_too_large"
    assert IngestRecord.objects.get().reason == "file_too_large"


def test_two_files_in_one_request_are_refused(api_as, project, owner):
    client = api_as(owner)
    files = [SimpleUploadedFile("a.dcm", dicom_bytes()), SimpleUploadedFile("b.dcm", dicom_bytes())]
    response = client.post(f"/api/projects/{project.pk}/studies/", {"file": files}, format="multipart")
    assert response.status_code == 400 and response.json()["error"] == "one_file_expected"


def test_too_many_files_are_refused_with_json(api_as, project, owner, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    client = api_as(owner)
    files = [SimpleUploadedFile(f"{i}.dcm", b"x") for i in range(3)]
    response = client.post(f"/api/projects/{project.pk}/studies/", {"file": files}, format="multipart")
    assert response.status_code == 413 and response.json()["error"] == "too_many_files"


def test_an_invalid_sex_field_is_a_400(api_as, project, owner):
    response = upload(api_as(owner), project, dicom_bytes(), sex="X")
    assert response.status_code == 400 and response.json()["error"] == "invalid_field"


def test_an_outsider_gets_404_for_every_project_object(api_as, project, owner, outsider):
    study_id = upload(api_as(owner), project, dicom_bytes()).json()["id"]
    client = api_as(outsider)
    for url in (f"/api/projects/{project.pk}/", f"/api/projects/{project.pk}/studies/", f"/api/studies/{study_id}/",
                f"/api/studies/{study_id}/image/", f"/api/studies/{study_id}/history/", f"/api/studies/{study_id}/masks/",
                f"/api/projects/{project.pk}/ingest-records/"):
        assert client.get(url).status_code == 404, url
    assert upload(client, project, dicom_bytes()).status_code == 404
    assert client.get("/api/projects/").json()["results"] == []


def test_a_post_without_the_csrf_token_is_refused_for_a_session(project, owner):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)
    response = upload(client, project, dicom_bytes())
    assert response.status_code == 403 and response.json()["error"] == "permission_denied"


def test_a_token_from_the_api_authenticates_without_csrf(project, owner):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    token = client.post("/api/auth/token/", {"username": owner.username, "password": "olivia_owner-Pass-123"}).json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert upload(client, project, dicom_bytes()).status_code == 201


def test_anonymous_requests_are_refused_with_json(client, project):
    response = client.get(f"/api/projects/{project.pk}/studies/")
    assert response.status_code in (401, 403) and "error" in response.json()


def test_creating_a_project_makes_its_creator_admin(api_as, outsider):
    response = api_as(outsider).post("/api/projects/", {"name": "Wrists"}, format="json")
    assert response.status_code == 201 and response.json()["role"] == "admin"


def test_the_worklist_filters_by_state_and_orders_by_age(api_as, project, owner):
    client = api_as(owner)
    young = upload(client, project, dicom_bytes(age="002Y")).json()["id"]
    old = upload(client, project, dicom_bytes(age="012Y"), bone_age_months="150").json()["id"]
    studies = lambda query: [s["id"] for s in client.get(f"/api/projects/{project.pk}/studies/?{query}").json()["results"]]
    assert studies("state=labeled") == [old] and studies("state=unlabeled") == [young]
    assert studies("ordering=chronological_age_months") == [young, old]
    assert client.get(f"/api/projects/{project.pk}/studies/?ordering=password").status_code == 400
