"""Files the issue named one by one: each is accepted and served, or refused with a reason at upload."""
from __future__ import annotations

import io

import numpy as np
import pytest
from boneage.studies.ingest.errors import IngestError, refusing
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.dicom_factory import dicom_bytes, make_dicom_dataset

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore::UserWarning")]


def upload(client, project, name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(f"/api/projects/{project.pk}/studies/", {"file": SimpleUploadedFile(name, data)},
                       format="multipart")


def bundled(name: str) -> bytes:
    with open(get_testdata_file(name), "rb") as handle:
        return handle.read()


@pytest.mark.parametrize("name,transfer_syntax", [
    ("SC_rgb_jpeg_gdcm.dcm", "1.2.840.10008.1.2.4.70"),  # JPEG Lossless SV1: its name is 88 characters long
    ("SC_ybr_full_422_uncompressed.dcm", "1.2.840.10008.1.2.1"),  # YBR 4:2:2: 2/3 of the RGB length, and valid
    ("examples_ybr_color.dcm", "1.2.840.10008.1.2.4.50"),  # 30 colour frames
    ("SC_rgb_rle_2frame.dcm", "1.2.840.10008.1.2.5"),
])
def test_colour_ybr_and_multi_frame_files_are_accepted_as_one_grey_frame_and_served(api_as, owner, project, name,
                                                                                    transfer_syntax):
    from boneage.studies.derive import load_unit
    from boneage.studies.models import Study

    client = api_as(owner)
    response = upload(client, project, name, bundled(name))
    assert response.status_code == 201, response.content
    study = Study.objects.get(pk=response.json()["id"])
    assert study.image.transfer_syntax == transfer_syntax  # the UID, not its name
    assert client.get(f"/api/studies/{study.pk}/image/").status_code == 200
    unit = load_unit(study.image)
    assert unit.shape == (study.image.height, study.image.width)


@pytest.mark.parametrize("change,code", [
    (lambda ds: setattr(ds, "SOPInstanceUID", "1." * 40 + "1"), "invalid_uid"),
    (lambda ds: setattr(ds, "StudyInstanceUID", "1.2.abc"), "invalid_uid"),
    (lambda ds: setattr(ds, "SOPClassUID", "1.2.840.10008.5\0\0.1.1.1.1"), "invalid_uid"),  # SEG/SR exports read it
    (lambda ds: setattr(ds, "Modality", "X" * 17), "invalid_element"),
    (lambda ds: setattr(ds, "BitsStored", 65535), "invalid_element"),
    (lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", "1.2.3.4"), "unsupported_transfer_syntax"),
    (lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", ""), "missing_transfer_syntax"),
    (lambda ds: delattr(ds.file_meta, "TransferSyntaxUID"), "missing_transfer_syntax"),
    (lambda ds: setattr(ds, "PhotometricInterpretation", "HSV"), "unsupported_photometric"),
])
def test_an_element_that_fits_no_column_is_refused_at_upload_and_nothing_is_kept(api_as, owner, project,
                                                                                temporary_media, change, code):
    from boneage.studies.models import IngestRecord

    ds = make_dicom_dataset()
    change(ds)
    ds.preamble = b"\0" * 128  # still a Part 10 file, written without pydicom's validation
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False, implicit_vr=False, little_endian=True)
    response = upload(api_as(owner), project, "odd.dcm", buffer.getvalue())
    assert response.status_code == 422, response.content
    assert response.json()["error"] == code and response.json()["detail"]
    assert not project.studies.exists()
    assert IngestRecord.objects.get(project=project).reason == code
    assert not (temporary_media / "studies").exists() or not any((temporary_media / "studies").rglob("*"))


def test_an_unparseable_pixel_spacing_is_ignored_not_a_500(api_as, owner, project):
    ds = make_dicom_dataset()
    ds.add_new(0x00280030, "LO", "abc\\1")  # PixelSpacing as a broken modality writes it
    response = upload(api_as(owner), project, "spacing.dcm", dicom_bytes(ds))
    assert response.status_code == 201, response.content
    assert project.studies.get().image.pixel_spacing_mm is None


def test_a_native_decoder_panic_is_a_refusal_not_a_crash():
    class PanicException(BaseException):  # what pyo3 raises for a Rust panic (pylibjpeg-rle)
        pass

    with pytest.raises(IngestError) as refused, refusing(422, "pixel_decode_failed", "The pixel data cannot be decoded"):
        raise PanicException("index out of bounds")
    assert refused.value.status == 422 and "PanicException" in refused.value.detail
    with pytest.raises(KeyboardInterrupt), refusing(422, "x", "y"):
        raise KeyboardInterrupt


def test_the_loser_of_an_upload_race_leaves_no_folder(owner, project, temporary_media, monkeypatch):
    """Two uploads of one instance: the second finds the row only at insert time (IntegrityError) and cleans up."""
    from boneage.studies import actions
    from boneage.studies.models import Study

    data = dicom_bytes(make_dicom_dataset(sop_uid=generate_uid()))
    first = actions.do_ingest(project, owner, data, "a.dcm")
    assert first.status == 201
    real_filter = Study.objects.filter
    calls = {"n": 0}

    def blind_first_lookup(*args, **kwargs):  # the race: our existence check ran before the winner committed
        calls["n"] += 1
        return real_filter(pk=-1) if calls["n"] == 1 else real_filter(*args, **kwargs)

    monkeypatch.setattr(Study.objects, "filter", blind_first_lookup)
    second = actions.do_ingest(project, owner, data, "b.dcm")
    assert second.status == 200 and second.study == first.study
    folders = {path.parent for path in (temporary_media / "studies").rglob("*") if path.is_file()}
    assert len(folders) == 1  # only the winner's


def test_a_study_whose_original_became_undecodable_answers_a_json_422_and_records_why(api_as, owner, project):
    from django.core.files.storage import default_storage

    response = upload(api_as(owner), project, "hand.dcm", dicom_bytes(make_dicom_dataset(pixels=np.zeros((8, 8), np.uint16) + 5)))
    study = project.studies.get(pk=response.json()["id"])
    with default_storage.open(study.image.original, "wb") as handle:  # the disk lost it after the upload
        handle.write(b"not dicom")
    served = api_as(owner).get(f"/api/studies/{study.pk}/image/")
    assert served.status_code == 422 and served.json()["error"] == "image_undecodable"
    study.refresh_from_db()
    assert study.automask_state == "failed" and "could not derive images" in study.automask_error
