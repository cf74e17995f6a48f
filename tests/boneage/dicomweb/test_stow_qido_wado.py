"""DICOMweb through the Django test client: STOW-RS stores through the upload ingest, QIDO-RS finds,
WADO-RS returns the stored bytes; every bad input gets a clear error and stores nothing."""
from __future__ import annotations

import numpy as np
import pytest
from boneage.studies.models import IngestRecord, Study

from tests.boneage.dicomweb.helpers import BOUNDARY, json_datasets, read_parts, stow, stow_body
from tests.dicom_factory import dicom_bytes, make_dicom_dataset

pytestmark = pytest.mark.django_db

DICOM = "application/dicom"


def dataset(**kwargs):
    return make_dicom_dataset(**kwargs)


def test_a_member_stores_two_instances_and_the_answer_references_both(api_as, project, member):
    first, second = dataset(), dataset()
    response = stow(api_as(member), project, stow_body((DICOM, dicom_bytes(first)), (DICOM, dicom_bytes(second))))
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    answer = _answer(response)
    uids = [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence]
    assert uids == [first.SOPInstanceUID, second.SOPInstanceUID]
    assert "FailedSOPSequence" not in answer
    assert Study.objects.filter(project=project, source="dicomweb").count() == 2


def _answer(response):
    import pydicom

    return pydicom.Dataset.from_json(response.json())


def test_storing_the_same_instance_again_is_a_success_and_other_bytes_under_its_uid_are_refused(api_as, project, owner):
    client = api_as(owner)
    original = dicom_bytes(dataset(sop_uid="1.2.826.0.1.3680043.99.1", sex="F"))
    assert stow(client, project, stow_body((DICOM, original))).status_code == 200
    again = stow(client, project, stow_body((DICOM, original)))
    assert again.status_code == 200 and len(_answer(again).ReferencedSOPSequence) == 1
    other = stow(client, project, stow_body((DICOM, dicom_bytes(dataset(sop_uid="1.2.826.0.1.3680043.99.1", sex="M")))))
    assert other.status_code == 409
    failed = _answer(other).FailedSOPSequence[0]
    assert failed.FailureReason == 0x0111 and "uid_conflict" in failed.TextValue
    assert Study.objects.get(project=project).checksum != "" and Study.objects.count() == 1


def test_a_non_dicom_part_and_a_part_over_the_size_limit_are_refused_with_reasons_while_the_good_part_is_stored(
        api_as, project, owner, settings):
    settings.UPLOAD_MAX_BYTES = 20_000
    good, big = dataset(), dataset(rows=200, columns=200)
    response = stow(api_as(owner), project, stow_body(
        (DICOM, dicom_bytes(good)), ("text/plain", b"hello"), (DICOM, b"this is not DICOM" * 20), (DICOM, dicom_bytes(big))))
    assert response.status_code == 202
    answer = _answer(response)
    assert [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence] == [good.SOPInstanceUID]
    reasons = [(item.FailureReason, item.TextValue.split(":")[1].strip()) for item in answer.FailedSOPSequence]
    assert reasons == [(0xC000, "unsupported_media_type"), (0xC000, "unsupported_media_type"), (0xA700, "file_too_large")]
    assert answer.FailedSOPSequence[2].ReferencedSOPInstanceUID == big.SOPInstanceUID
    assert list(Study.objects.values_list("sop_instance_uid", flat=True)) == [good.SOPInstanceUID]


def test_a_truncated_multipart_body_is_a_400_and_nothing_is_stored(api_as, project, owner, temporary_media):
    body = stow_body((DICOM, dicom_bytes(dataset())))
    response = stow(api_as(owner), project, body[: len(body) // 2])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_multipart" and "truncated" in response.json()["detail"]
    assert Study.objects.count() == 0 and IngestRecord.objects.count() == 0
    assert not list(temporary_media.rglob("*.dcm"))


def test_a_body_over_the_stow_limit_is_a_413_before_anything_is_stored(api_as, project, owner, settings):
    settings.DICOMWEB_STOW_MAX_BYTES = 10_000
    response = stow(api_as(owner), project, stow_body((DICOM, dicom_bytes(dataset(rows=200, columns=200)))))
    assert response.status_code == 413 and response.json()["error"] == "request_too_large"
    assert Study.objects.count() == 0


def test_a_stow_that_is_not_multipart_related_dicom_is_a_415(api_as, project, owner):
    response = api_as(owner).post(f"/dicomweb/projects/{project.pk}/studies", data=b"{}", content_type="application/json")
    assert response.status_code == 415 and response.json()["error"] == "unsupported_media_type"


def test_storing_into_a_named_study_refuses_instances_of_another_study(api_as, project, owner):
    ds = dataset()
    response = stow(api_as(owner), project, stow_body((DICOM, dicom_bytes(ds))), path="studies/1.2.3.999")
    assert response.status_code == 409
    assert "wrong_study" in _answer(response).FailedSOPSequence[0].TextValue
    assert Study.objects.count() == 0


def test_an_outsider_gets_404_for_every_dicomweb_resource_and_cannot_store(api_as, project, owner, outsider):
    stow(api_as(owner), project, stow_body((DICOM, dicom_bytes(dataset()))))
    client = api_as(outsider)
    assert client.get(f"/dicomweb/projects/{project.pk}/studies").status_code == 404
    assert stow(client, project, stow_body((DICOM, dicom_bytes(dataset())))).status_code == 404
    assert Study.objects.count() == 1


def _store_three(client, project):
    specs = [{"patient_id": "PID-1", "study_date": "20240105", "accession": "ACC1"},
             {"patient_id": "PID-2", "study_date": "20240310", "accession": "ACC2"},
             {"patient_id": "PID-1", "study_date": "20241201", "accession": "ACC3"}]
    made = []
    for spec in specs:
        ds = dataset(study_date=spec["study_date"])
        ds.PatientID, ds.AccessionNumber = spec["patient_id"], spec["accession"]
        made.append(ds)
    assert stow(client, project, stow_body(*[(DICOM, dicom_bytes(ds)) for ds in made])).status_code == 200
    return made


def qido(client, project, path, **params):
    response = client.get(f"/dicomweb/projects/{project.pk}/{path}", params, HTTP_ACCEPT="application/dicom+json")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    return json_datasets(response)


def test_qido_matches_patient_id_dates_accession_wildcards_and_pages(api_as, project, member):
    client = api_as(member)
    made = _store_three(client, project)
    assert {d.AccessionNumber for d in qido(client, project, "studies", PatientID="PID-1")} == {"ACC1", "ACC3"}
    assert [d.AccessionNumber for d in qido(client, project, "studies", StudyDate="20240101-20240630")] == ["ACC1", "ACC2"]
    assert [d.AccessionNumber for d in qido(client, project, "studies", StudyDate="20240601-")] == ["ACC3"]
    assert [d.AccessionNumber for d in qido(client, project, "studies", AccessionNumber="ACC2")] == ["ACC2"]
    assert len(qido(client, project, "studies", PatientID="PID-*")) == 3
    assert len(qido(client, project, "studies", PatientID="PID-?")) == 3
    assert len(qido(client, project, "studies", ModalitiesInStudy="CR")) == 3
    assert qido(client, project, "studies", ModalitiesInStudy="MR") == []
    uid_list = f"{made[0].StudyInstanceUID},{made[2].StudyInstanceUID}"
    assert len(qido(client, project, "studies", StudyInstanceUID=uid_list)) == 2
    assert len(qido(client, project, "studies", limit=2)) == 2
    assert len(qido(client, project, "studies", limit=2, offset=2)) == 1
    studies = qido(client, project, "studies", PatientID="PID-2")
    assert studies[0].NumberOfStudyRelatedInstances == 1 and studies[0].ModalitiesInStudy == "CR"


def test_qido_series_and_instances_nested_and_flat_with_includefield(api_as, project, member):
    client = api_as(member)
    made = _store_three(client, project)
    study = made[1]
    series = qido(client, project, f"studies/{study.StudyInstanceUID}/series")
    assert [s.SeriesInstanceUID for s in series] == [study.SeriesInstanceUID] and series[0].Modality == "CR"
    nested = qido(client, project, f"studies/{study.StudyInstanceUID}/series/{study.SeriesInstanceUID}/instances")
    assert [i.SOPInstanceUID for i in nested] == [study.SOPInstanceUID]
    assert len(qido(client, project, "series")) == 3
    flat = qido(client, project, "instances", SOPInstanceUID=study.SOPInstanceUID, includefield="PatientAge")
    assert flat[0].PatientAge == "010Y" and flat[0].Rows == 64
    assert "BitsStored" in qido(client, project, "instances", SOPInstanceUID=study.SOPInstanceUID, includefield="all")[0]


def test_qido_with_an_unknown_attribute_or_a_bad_limit_is_a_400(api_as, project, member):
    client = api_as(member)
    base = f"/dicomweb/projects/{project.pk}/studies"
    assert client.get(base, {"NoSuchThing": "1"}).json()["error"] == "invalid_query"
    assert client.get(base, {"limit": "-1"}).status_code == 400


def test_wado_returns_the_stored_bytes_for_instance_series_and_study(api_as, project, member):
    client = api_as(member)
    ds = dataset()
    data = dicom_bytes(ds)
    stow(client, project, stow_body((DICOM, data)))
    study = f"/dicomweb/projects/{project.pk}/studies/{ds.StudyInstanceUID}"
    for path in (study, f"{study}/series/{ds.SeriesInstanceUID}",
                 f"{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"):
        response = client.get(path, HTTP_ACCEPT='multipart/related; type="application/dicom"')
        assert response.status_code == 200
        assert response["Content-Type"].startswith('multipart/related; type="application/dicom"')
        assert read_parts(response) == [data]


def test_wado_of_an_unknown_uid_is_a_404_with_a_reason(api_as, project, member):
    response = api_as(member).get(f"/dicomweb/projects/{project.pk}/studies/1.2.3.4.5")
    assert response.status_code == 404 and "1.2.3.4.5" in response.json()["detail"]
    metadata = api_as(member).get(f"/dicomweb/projects/{project.pk}/studies/1.2.3.4.5/metadata")
    assert metadata.status_code == 404


def test_metadata_honours_ohifs_combined_accept_header_and_points_pixel_data_at_frames(api_as, project, member):
    client = api_as(member)
    ds = dataset()
    stow(client, project, stow_body((DICOM, dicom_bytes(ds))))
    response = client.get(f"/dicomweb/projects/{project.pk}/studies/{ds.StudyInstanceUID}/metadata",
                          HTTP_ACCEPT="application/dicom+json, application/json, */*")
    assert response.status_code == 200
    item = response.json()[0]
    assert item["7FE00010"]["BulkDataURI"].endswith(f"/instances/{ds.SOPInstanceUID}/frames/1")
    assert item["00100020"]["Value"] == ["PID-42"]


def test_frames_are_the_raw_pixels_and_a_missing_frame_is_a_404(api_as, project, member):
    client = api_as(member)
    ds = dataset()
    stow(client, project, stow_body((DICOM, dicom_bytes(ds))))
    instance = (f"/dicomweb/projects/{project.pk}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}")
    response = client.get(f"{instance}/frames/1", HTTP_ACCEPT='multipart/related; type="application/octet-stream"')
    assert read_parts(response) == [bytes(ds.PixelData)]
    assert client.get(f"{instance}/frames/2").status_code == 404
    assert client.get(f"{instance}/frames/x").status_code == 400


def test_bulk_data_is_served_at_the_uri_the_metadata_gives_and_nothing_else_is_bulk_data(api_as, project, member):
    client = api_as(member)
    ds = dataset()
    ds.add_new(0x60003000, "OW", bytes(range(256)) * 8)  # overlay data: a binary value over the 1024-byte threshold
    stow(client, project, stow_body((DICOM, dicom_bytes(ds))))
    item = client.get(f"/dicomweb/projects/{project.pk}/studies/{ds.StudyInstanceUID}/metadata").json()[0]
    uri = item["60003000"]["BulkDataURI"]
    assert uri.endswith(f"/instances/{ds.SOPInstanceUID}/bulkdata/60003000")
    assert read_parts(client.get(uri)) == [bytes(range(256)) * 8]
    instance = uri.rsplit("/bulkdata/", 1)[0]
    for text_or_number in ("00100010", "00280010"):  # the patient's name, Rows: values, not bulk data
        response = client.get(f"{instance}/bulkdata/{text_or_number}")
        assert response.status_code == 404 and response.json()["error"] == "not_found", text_or_number


@pytest.mark.parametrize("tag", ["zzzzzzzz", "7FE0001G", "-7FE0001", "0x7FE001", "7FE00010a"])
def test_a_bulk_data_tag_that_is_not_eight_hex_digits_is_a_400_that_says_so(api_as, project, member, tag):
    client = api_as(member)
    ds = dataset()
    stow(client, project, stow_body((DICOM, dicom_bytes(ds))))
    response = client.get(f"/dicomweb/projects/{project.pk}/studies/{ds.StudyInstanceUID}/series/"
                          f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/bulkdata/{tag}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_tag" and "8 hexadecimal digits" in response.json()["detail"]


def test_rendered_is_a_png(api_as, project, member):
    client = api_as(member)
    ds = dataset()
    stow(client, project, stow_body((DICOM, dicom_bytes(ds))))
    response = client.get(f"/dicomweb/projects/{project.pk}/studies/{ds.StudyInstanceUID}/series/"
                          f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/rendered", HTTP_ACCEPT="image/png")
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")


def test_cors_is_off_by_default_and_on_for_a_configured_origin(api_as, project, member, settings):
    client = api_as(member)
    url = f"/dicomweb/projects/{project.pk}/studies"
    assert "Access-Control-Allow-Origin" not in client.get(url, HTTP_ORIGIN="http://viewer.example")
    settings.DICOMWEB_CORS_ORIGINS = ["http://viewer.example"]
    preflight = client.options(url, HTTP_ORIGIN="http://viewer.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert preflight.status_code == 204 and preflight["Access-Control-Allow-Origin"] == "http://viewer.example"
    assert "Authorization" in preflight["Access-Control-Allow-Headers"]


def test_a_part_written_without_the_preamble_like_pydicom_writes_it_is_stored_as_part_10(api_as, project, owner):
    import io

    import pydicom

    ds = dataset()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds)  # what dicomweb-client sends: File Meta, then the dataset, no preamble
    assert buffer.getvalue()[128:132] != b"DICM"
    response = stow(api_as(owner), project, stow_body((DICOM, buffer.getvalue())))
    assert response.status_code == 200
    assert Study.objects.get(project=project).sop_instance_uid == ds.SOPInstanceUID


def test_a_part_with_neither_preamble_nor_file_meta_is_refused(api_as, project, owner):
    import io

    import pydicom

    ds = dataset()
    del ds.file_meta
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=True, little_endian=True)
    response = stow(api_as(owner), project, stow_body((DICOM, buffer.getvalue())))
    assert response.status_code == 409 and "unsupported_media_type" in _answer(response).FailedSOPSequence[0].TextValue
    assert Study.objects.count() == 0


def test_more_parts_than_the_file_limit_is_a_413_and_nothing_is_stored(api_as, project, owner, settings):
    settings.UPLOAD_MAX_FILES = 2
    body = stow_body(*[(DICOM, dicom_bytes(dataset())) for _ in range(3)])
    response = stow(api_as(owner), project, body)
    assert response.status_code == 413 and response.json()["error"] == "too_many_files"
    assert Study.objects.count() == 0


def test_wado_for_a_media_type_it_cannot_give_is_a_406(api_as, project, member):
    client = api_as(member)
    ds = dataset()
    stow(client, project, stow_body((DICOM, dicom_bytes(ds))))
    response = client.get(f"/dicomweb/projects/{project.pk}/studies/{ds.StudyInstanceUID}", HTTP_ACCEPT="image/jpeg")
    assert response.status_code == 406 and response.json()["error"] == "not_acceptable"


def _without(*keywords: str):
    ds = dataset()
    for keyword in keywords:
        delattr(ds, keyword)
    return ds


@pytest.mark.parametrize("missing", [("StudyInstanceUID",), ("SeriesInstanceUID",), ("StudyInstanceUID", "SeriesInstanceUID")])
def test_an_instance_without_its_study_or_series_uid_is_refused_as_missing_uid_and_nothing_is_stored(
        api_as, project, owner, temporary_media, missing):
    response = stow(api_as(owner), project, stow_body((DICOM, dicom_bytes(_without(*missing)))))
    assert response.status_code == 409
    failed = _answer(response).FailedSOPSequence[0]
    assert failed.FailureReason == 0xC000 and failed.TextValue.startswith("part 1: missing_uid:")
    assert all(keyword in failed.TextValue for keyword in missing)
    assert Study.objects.count() == 0 and IngestRecord.objects.get().reason == "missing_uid"
    assert not list(temporary_media.rglob("*.dcm"))


def test_pydicoms_jpeg_ls_file_without_study_and_series_uids_is_refused_by_stow_and_by_the_upload_api(
        api_as, project, owner):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from pydicom.data import get_testdata_file

    with open(get_testdata_file("JPEGLSNearLossless_16.dcm"), "rb") as handle:
        data = handle.read()
    client = api_as(owner)
    stowed = stow(client, project, stow_body((DICOM, data)))
    assert stowed.status_code == 409 and "missing_uid" in _answer(stowed).FailedSOPSequence[0].TextValue
    uploaded = client.post(f"/api/projects/{project.pk}/studies/", {"file": SimpleUploadedFile("ls.dcm", data)},
                           format="multipart")
    assert uploaded.status_code == 422 and uploaded.json()["error"] == "missing_uid"
    assert "StudyInstanceUID" in uploaded.json()["detail"] and Study.objects.count() == 0


def _stored_the_old_way(project, ds) -> Study:
    """A study as ingest stored it before it refused missing UIDs: its file, a row with empty UIDs."""
    from boneage.core.storage import save_atomic
    from boneage.studies.models import Image

    data = dicom_bytes(ds)
    name = save_atomic(f"studies/{project.pk}/old/original.dcm", data)
    study = Study.objects.create(project=project, instance_key=str(ds.get("SOPInstanceUID", "")) or "sha256:old",
                                 sop_instance_uid=str(ds.get("SOPInstanceUID", "")), original_name="old.dcm",
                                 checksum="0" * 64)
    Image.objects.create(study=study, original=name, width=48, height=64, media_type="application/dicom")
    return study


def test_qido_answers_every_level_when_a_study_without_uids_was_stored_before_the_refusal(api_as, project, member):
    client = api_as(member)
    good = dataset()
    stow(client, project, stow_body((DICOM, dicom_bytes(good))))
    _stored_the_old_way(project, _without("StudyInstanceUID", "SeriesInstanceUID"))
    assert [d.StudyInstanceUID for d in qido(client, project, "studies")] == [good.StudyInstanceUID]
    assert [d.SeriesInstanceUID for d in qido(client, project, "series")] == [good.SeriesInstanceUID]
    assert [d.SOPInstanceUID for d in qido(client, project, "instances", Modality="CR")] == [good.SOPInstanceUID]
    assert len(qido(client, project, "studies", ModalitiesInStudy="CR", includefield="all")) == 1


def test_qido_answers_when_a_stored_file_is_lost_or_lacks_the_attributes_it_matches_on(api_as, project, member):
    from django.core.files.storage import default_storage

    client = api_as(member)
    plain = dataset()
    for keyword in ("Modality", "PatientName", "PatientID"):
        delattr(plain, keyword)
    lost = dataset()
    stow(client, project, stow_body((DICOM, dicom_bytes(plain)), (DICOM, dicom_bytes(lost))))
    default_storage.delete(Study.objects.get(sop_instance_uid=lost.SOPInstanceUID).image.original)
    assert [d.StudyInstanceUID for d in qido(client, project, "studies")] == [plain.StudyInstanceUID]
    assert qido(client, project, "studies", ModalitiesInStudy="CR") == []
    assert qido(client, project, "studies", PatientName="Doe*") == []
    assert len(qido(client, project, "series", SeriesInstanceUID=plain.SeriesInstanceUID)) == 1


def test_qido_matches_any_of_several_modalities_as_ohifs_study_list_sends_them(api_as, project, member):
    client = api_as(member)
    cr, dx = dataset(), dataset()
    dx.Modality = "DX"
    stow(client, project, stow_body((DICOM, dicom_bytes(cr)), (DICOM, dicom_bytes(dx))))
    for modalities in ("CR,DX", "CR\\DX", "DX, CR", "MR,CR"):
        expected = {"CR", "DX"} if "DX" in modalities else {"CR"}
        found = qido(client, project, "studies", ModalitiesInStudy=modalities)
        assert {d.ModalitiesInStudy for d in found} == expected, modalities
    assert qido(client, project, "studies", ModalitiesInStudy="MR,US") == []
    assert len(qido(client, project, "series", Modality="DX\\MR")) == 1


def test_descriptions_and_names_match_without_regard_to_case_and_identifiers_exactly(api_as, project, member):
    client = api_as(member)
    ds = dataset()
    ds.StudyDescription, ds.SeriesDescription, ds.PatientName = "XR HAND BONE AGE", "Left hand PA", "Doe^Jane"
    stow(client, project, stow_body((DICOM, dicom_bytes(ds))))
    assert len(qido(client, project, "studies", StudyDescription="*bone*")) == 1
    assert len(qido(client, project, "studies", StudyDescription="xr hand bone age")) == 1
    assert len(qido(client, project, "series", SeriesDescription="*HAND*")) == 1
    assert len(qido(client, project, "studies", PatientName="doe*")) == 1
    assert qido(client, project, "studies", StudyDescription="*knee*") == []
    assert qido(client, project, "studies", PatientID="pid-42") == []  # an identifier is exact
    assert len(qido(client, project, "studies", PatientID="PID-42")) == 1


def _instance_url(project, ds) -> str:
    return (f"/dicomweb/projects/{project.pk}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


@pytest.mark.parametrize("accept,media_type,magic", [
    ("image/jpeg", "image/jpeg", b"\xff\xd8\xff"),
    ("image/png", "image/png", b"\x89PNG"),
    ("", "image/png", b"\x89PNG"),
    ("*/*", "image/png", b"\x89PNG"),
    ("image/png;q=0.5, image/jpeg", "image/jpeg", b"\xff\xd8\xff"),
    ("image/png;q=0, image/*;q=0.1", "image/png", b"\x89PNG"),
])
def test_rendered_answers_the_image_type_the_accept_header_asks_for(api_as, project, member, accept, media_type, magic):
    client = api_as(member)
    ds = dataset()
    stow(client, project, stow_body((DICOM, dicom_bytes(ds))))
    for path in ("rendered", "frames/1/rendered"):
        response = client.get(f"{_instance_url(project, ds)}/{path}", HTTP_ACCEPT=accept)
        assert response.status_code == 200 and response["Content-Type"] == media_type
        assert response.content.startswith(magic)


@pytest.mark.parametrize("accept", ["image/gif", "application/dicom", "image/jpeg;q=0"])
def test_rendered_for_an_image_type_it_cannot_give_is_a_406(api_as, project, member, accept):
    client = api_as(member)
    ds = dataset()
    stow(client, project, stow_body((DICOM, dicom_bytes(ds))))
    response = client.get(f"{_instance_url(project, ds)}/rendered", HTTP_ACCEPT=accept)
    assert response.status_code == 406 and response.json()["error"] == "not_acceptable"


def test_retrieve_and_bulk_data_urls_are_built_on_the_configured_public_base_url_not_the_host_header(
        api_as, project, owner, settings):
    settings.DICOMWEB_BASE_URL = "https://pacs.example.org:8443/boneage"
    client = api_as(owner)
    ds = dataset()
    response = client.post(f"/dicomweb/projects/{project.pk}/studies", data=stow_body((DICOM, dicom_bytes(ds))),
                           content_type=f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
                           HTTP_HOST="127.0.0.1")  # what dicomweb-client sends without chunking: no port
    root = f"https://pacs.example.org:8443/boneage/dicomweb/projects/{project.pk}"
    assert _answer(response).ReferencedSOPSequence[0].RetrieveURL == f"{root}/studies/{ds.StudyInstanceUID}" \
        f"/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    metadata = client.get(f"/dicomweb/projects/{project.pk}/studies/{ds.StudyInstanceUID}/metadata",
                          HTTP_HOST="127.0.0.1").json()
    assert metadata[0]["7FE00010"]["BulkDataURI"].startswith(f"{root}/studies/")


def test_without_a_base_url_the_urls_follow_the_request(api_as, project, owner, settings):
    settings.DICOMWEB_BASE_URL = ""
    ds = dataset()
    response = stow(api_as(owner), project, stow_body((DICOM, dicom_bytes(ds))))
    assert _answer(response).ReferencedSOPSequence[0].RetrieveURL.startswith(
        f"http://testserver/dicomweb/projects/{project.pk}/studies/")


def test_rendered_of_a_film_stored_before_ingest_refused_what_it_is_says_why_instead_of_a_500(api_as, project, member):
    """A SEG stored as a film before ingest refused non-image objects (`not_an_image`) cannot be derived."""
    import datetime as dt

    from boneage.dicomweb.objects import make_seg

    source = dataset()
    seg = make_seg(source, np.ones((64, 48), bool), series_uid="1.2.826.0.1.3680043.99.71",
                   sop_uid="1.2.826.0.1.3680043.99.72", created=dt.datetime(2024, 3, 1), algorithm=None)
    study = _stored_the_old_way(project, seg)
    study.study_instance_uid, study.series_instance_uid = seg.StudyInstanceUID, seg.SeriesInstanceUID
    study.save(update_fields=["study_instance_uid", "series_instance_uid"])
    response = api_as(member).get(f"{_instance_url(project, seg)}/rendered", HTTP_ACCEPT="image/png")
    assert response.status_code == 422 and response.json()["error"] == "image_undecodable"
    assert "is not a radiograph to label" in response.json()["detail"]


def _stored_then_lost(client, project) -> tuple:
    """A member stores a film, then its file is lost from storage (the row stays)."""
    from django.core.files.storage import default_storage

    ds = dataset()
    stow(client, project, stow_body((DICOM, dicom_bytes(ds))))
    study = Study.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    default_storage.delete(study.image.original)
    return ds, study


@pytest.mark.parametrize("suffix,accept", [
    ("/metadata", "application/dicom+json"),
    ("/frames/1", 'multipart/related; type="application/octet-stream"'),
    ("/bulkdata/7FE00010", "*/*"),
    ("", 'multipart/related; type="application/dicom"'),
    ("/rendered", "image/png"),
])
def test_wado_of_an_instance_whose_stored_file_is_lost_is_a_410_that_says_the_file_is_gone(
        api_as, project, member, suffix, accept):
    client = api_as(member)
    ds, _ = _stored_then_lost(client, project)
    response = client.get(f"{_instance_url(project, ds)}{suffix}", HTTP_ACCEPT=accept)
    assert response.status_code == 410
    assert response.json()["error"] == "stored_file_missing"
    assert ds.SOPInstanceUID in response.json()["detail"] and "gone from storage" in response.json()["detail"]


def test_study_and_series_metadata_and_retrieval_with_one_lost_file_are_a_410_not_a_500(api_as, project, member):
    client = api_as(member)
    ds, _ = _stored_then_lost(client, project)
    study = f"/dicomweb/projects/{project.pk}/studies/{ds.StudyInstanceUID}"
    for path in (f"{study}/metadata", f"{study}/series/{ds.SeriesInstanceUID}/metadata", study,
                 f"{study}/series/{ds.SeriesInstanceUID}"):
        response = client.get(path)
        assert response.status_code == 410 and response.json()["error"] == "stored_file_missing", path


@pytest.mark.parametrize("path", ["image/", "image/?size=full", "thumbnail/"])
def test_the_study_image_api_of_a_lost_file_is_a_410_that_says_the_file_is_gone(api_as, project, member, path):
    client = api_as(member)
    _, study = _stored_then_lost(client, project)
    response = client.get(f"/api/studies/{study.pk}/{path}")
    assert response.status_code == 410 and response.json()["error"] == "stored_file_missing"
    assert "gone from storage" in response.json()["detail"]


def test_a_derived_display_lost_after_it_was_made_is_a_410_too(api_as, project, member):
    from boneage.studies.derive import ensure_derived_images
    from django.core.files.storage import default_storage

    client = api_as(member)
    ds = dataset()
    stow(client, project, stow_body((DICOM, dicom_bytes(ds))))
    image = ensure_derived_images(Study.objects.get(sop_instance_uid=ds.SOPInstanceUID).image)
    default_storage.delete(image.display)
    for path in (f"/api/studies/{image.study_id}/image/", f"{_instance_url(project, ds)}/rendered"):
        response = client.get(path)
        assert response.status_code == 410 and response.json()["error"] == "stored_file_missing", path
