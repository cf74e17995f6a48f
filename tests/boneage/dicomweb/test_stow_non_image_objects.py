"""A whole study pushed by STOW-RS: the film is ingested, and its SEG, SR, KO and PR (made by highdicom, as another
tool would) are kept with the film they reference and served in the study — never ingested as films to label. The
platform's own SEG/SR coming back are already stored; an object with no film here is skipped as a success that
says why; the upload API refuses them as `not_an_image`."""
from __future__ import annotations

import datetime as dt
import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
from boneage.annotations.actions import do_save_label, do_save_mask
from boneage.audit.models import AuditEvent
from boneage.dicomweb.models import DerivedObject
from boneage.dicomweb.objects import Reading, make_bone_age_report, make_seg
from boneage.studies.models import Study
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from tests.boneage.dicomweb.helpers import json_datasets, read_parts, stow, stow_body
from tests.dicom_factory import dicom_bytes, make_dicom_dataset

pytestmark = pytest.mark.django_db

DICOM = "application/dicom"
WHEN = dt.datetime(2024, 3, 1, 10, 0)


def film() -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(dicom_bytes(make_dicom_dataset())))


def part10(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def foreign_seg(source) -> hd.seg.Segmentation:
    mask = np.zeros((int(source.Rows), int(source.Columns)), bool)
    mask[8:56, 10:40] = True
    return make_seg(source, mask, series_uid=generate_uid(), sop_uid=generate_uid(), created=WHEN, algorithm=None)


def foreign_sr(source) -> hd.sr.Comprehensive3DSR:
    return make_bone_age_report(source, [Reading(130.0, reader="Radiologist^Rita")], series_uid=generate_uid(),
                                sop_uid=generate_uid(), created=WHEN)


def foreign_ko(source) -> hd.ko.KeyObjectSelectionDocument:
    content = hd.ko.KeyObjectSelection(document_title=codes.DCM.OfInterest, referenced_objects=[source])
    return hd.ko.KeyObjectSelectionDocument(evidence=[source], content=content, series_instance_uid=generate_uid(),
                                            series_number=50, sop_instance_uid=generate_uid(), instance_number=1)


def foreign_pr(source) -> hd.pr.GrayscaleSoftcopyPresentationState:
    return hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[source], series_instance_uid=generate_uid(), series_number=51, sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer="Another viewer", manufacturer_model_name="PR maker", software_versions="1",
        device_serial_number="1", content_label="WINDOW")


def answer(response) -> pydicom.Dataset:
    return pydicom.Dataset.from_json(response.json())


def test_a_whole_study_with_seg_sr_ko_and_pr_stores_one_film_and_keeps_the_rest_with_it(api_as, project, owner, member):
    source = film()
    objects = [foreign_seg(source), foreign_sr(source), foreign_ko(source), foreign_pr(source)]
    response = stow(api_as(owner), project, stow_body((DICOM, part10(source)), *[(DICOM, part10(o)) for o in objects]))
    assert response.status_code == 200, response.content
    items = answer(response).ReferencedSOPSequence
    assert [item.ReferencedSOPInstanceUID for item in items] == [source.SOPInstanceUID] + [o.SOPInstanceUID for o in objects]
    assert all(f"/studies/{source.StudyInstanceUID}/series/" in item.RetrieveURL for item in items)
    assert "FailedSOPSequence" not in answer(response)
    film_study = Study.objects.get(project=project)  # one film to label, not five
    kept = DerivedObject.objects.filter(study=film_study).order_by("id")
    assert [(o.kind, o.sop_instance_uid) for o in kept] == list(zip(["seg", "sr", "ko", "pr"],
                                                                    [o.SOPInstanceUID for o in objects]))
    assert AuditEvent.objects.filter(verb="dicom_object.received", study=film_study).count() == 4

    client = api_as(member)
    series = json_datasets(client.get(f"/dicomweb/projects/{project.pk}/studies/{source.StudyInstanceUID}/series"))
    assert sorted(s.Modality for s in series) == ["CR", "KO", "PR", "SEG", "SR"]
    seg = objects[0]
    url = f"/dicomweb/projects/{project.pk}/studies/{source.StudyInstanceUID}/series/{seg.SeriesInstanceUID}/instances/{seg.SOPInstanceUID}"
    assert read_parts(client.get(url)) == [part10(seg)]


def test_the_platforms_own_seg_and_sr_pushed_back_with_their_film_are_already_stored(api_as, project, owner):
    source = film()
    client = api_as(owner)
    assert stow(client, project, stow_body((DICOM, part10(source)))).status_code == 200
    study = Study.objects.get(project=project)
    do_save_mask(study, np.pad(np.ones((48, 28), bool), ((8, 8), (10, 10))), source="expert", author=owner)
    do_save_label(study, 131.0, author=owner)
    seg = client.get(f"/api/studies/{study.pk}/export/seg/").content
    sr = client.get(f"/api/studies/{study.pk}/export/sr/").content
    before = set(DerivedObject.objects.values_list("pk", flat=True))
    response = stow(client, project, stow_body((DICOM, part10(source)), (DICOM, seg), (DICOM, sr)))
    assert response.status_code == 200, response.content
    assert len(answer(response).ReferencedSOPSequence) == 3 and "FailedSOPSequence" not in answer(response)
    assert set(DerivedObject.objects.values_list("pk", flat=True)) == before
    assert Study.objects.filter(project=project).count() == 1


def test_an_object_whose_study_has_no_film_here_is_skipped_as_a_success_that_says_why(api_as, project, owner,
                                                                                      temporary_media):
    seg = foreign_seg(film())  # its film was never stored in this project
    response = stow(api_as(owner), project, stow_body((DICOM, part10(seg))))
    assert response.status_code == 202
    item = answer(response).ReferencedSOPSequence[0]
    assert item.ReferencedSOPInstanceUID == seg.SOPInstanceUID and item.WarningReason == 0xB006
    assert item.TextValue.startswith("part 1: skipped: no_film:") and "RetrieveURL" not in item
    assert "FailedSOPSequence" not in answer(response)
    assert not Study.objects.exists() and not DerivedObject.objects.exists()
    assert not list(temporary_media.rglob("*.dcm"))


def test_a_de_identifying_project_keeps_no_received_object(api_as, project, owner):
    project.deidentify = True
    project.save(update_fields=["deidentify"])
    source = film()
    response = stow(api_as(owner), project, stow_body((DICOM, part10(source)), (DICOM, part10(foreign_sr(source)))))
    assert response.status_code == 202
    assert "skipped: deidentified_project" in answer(response).ReferencedSOPSequence[1].TextValue
    assert Study.objects.count() == 1 and not DerivedObject.objects.exists()


def test_a_non_image_object_without_its_uids_is_a_failure_with_the_reason(api_as, project, owner):
    source = film()
    stow(api_as(owner), project, stow_body((DICOM, part10(source))))
    sr = foreign_sr(source)
    del sr.SeriesInstanceUID
    response = stow(api_as(owner), project, stow_body((DICOM, part10(sr))))
    assert response.status_code == 409
    assert "missing_uid" in answer(response).FailedSOPSequence[0].TextValue and not DerivedObject.objects.exists()


@pytest.mark.parametrize("make", [foreign_seg, foreign_sr], ids=["seg", "sr"])
def test_the_upload_api_refuses_a_seg_or_sr_as_not_an_image(api_as, project, owner, make):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = part10(make(film()))
    response = api_as(owner).post(f"/api/projects/{project.pk}/studies/", {"file": SimpleUploadedFile("x.dcm", data)},
                                  format="multipart")
    assert response.status_code == 422 and response.json()["error"] == "not_an_image"
    assert not Study.objects.exists()
