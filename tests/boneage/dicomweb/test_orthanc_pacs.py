"""A real PACS, Debian's Orthanc with orthanc-dicomweb: import_dicomweb pulls its studies, and the platform's
SEG and SR exports stored to it come back intact."""
from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
from boneage.annotations.actions import do_save_label, do_save_mask
from boneage.studies.actions import do_ingest
from boneage.studies.models import IngestRecord, Study
from dicomweb_client.api import DICOMwebClient
from django.core.management import call_command

from tests.boneage.dicomweb.orthanc import orthanc  # noqa: F401 (the fixture)
from tests.dicom_factory import dicom_bytes, make_dicom_dataset, ramp

pytestmark = pytest.mark.django_db


def radiograph(patient_id: str) -> pydicom.Dataset:
    """Read back from Part 10 bytes, so it keeps its preamble: Orthanc returns what it was sent, and
    dicomweb-client (rightly, without force) cannot read a file without one."""
    ds = make_dicom_dataset(ramp(600, 500), study_date="20240115")
    ds.PatientID = patient_id
    return pydicom.dcmread(io.BytesIO(dicom_bytes(ds)))


def test_import_dicomweb_pulls_every_study_of_orthanc_and_a_second_run_stores_nothing_new(orthanc, project, capsys):  # noqa: F811
    pacs = DICOMwebClient(orthanc)
    stored = [radiograph("PACS-1"), radiograph("PACS-2")]
    pacs.store_instances(stored)
    call_command("import_dicomweb", orthanc, "--project", project.name)
    out = capsys.readouterr().out
    assert "accepted 2, already stored 0, conflicts 0, rejected 0" in out
    studies = Study.objects.filter(project=project)
    assert {s.sop_instance_uid for s in studies} == {ds.SOPInstanceUID for ds in stored}
    assert set(studies.values_list("source", flat=True)) == {"dicomweb"}
    call_command("import_dicomweb", orthanc, "--project", project.name)
    assert "accepted 0, already stored 2" in capsys.readouterr().out
    assert studies.count() == 2


def test_import_dicomweb_of_one_named_study_and_of_an_unknown_study(orthanc, project, capsys):  # noqa: F811
    from django.core.management.base import CommandError

    pacs = DICOMwebClient(orthanc)
    wanted, other = radiograph("PACS-A"), radiograph("PACS-B")
    pacs.store_instances([wanted, other])
    call_command("import_dicomweb", orthanc, "--project", project.name, "--study", wanted.StudyInstanceUID)
    assert list(Study.objects.values_list("sop_instance_uid", flat=True)) == [wanted.SOPInstanceUID]
    with pytest.raises(CommandError, match="no study 1.2.3.999"):
        call_command("import_dicomweb", orthanc, "--project", project.name, "--study", "1.2.3.999")
    assert Study.objects.count() == 1 and IngestRecord.objects.count() == 1


def test_seg_and_sr_exports_stored_to_orthanc_come_back_intact(orthanc, api_as, project, owner):  # noqa: F811
    source = radiograph("PACS-X")
    study = do_ingest(project, owner, dicom_bytes(source), "hand.dcm").study
    mask = np.zeros((600, 500), bool)
    mask[100:500, 120:380] = True
    do_save_mask(study, mask, source="expert", author=owner)
    do_save_label(study, 131.0, author=owner)
    client = api_as(owner)
    seg_bytes = client.get(f"/api/studies/{study.pk}/export/seg/").content
    sr_bytes = client.get(f"/api/studies/{study.pk}/export/sr/").content
    seg, sr = pydicom.dcmread(io.BytesIO(seg_bytes)), pydicom.dcmread(io.BytesIO(sr_bytes))

    pacs = DICOMwebClient(orthanc)
    pacs.store_instances([source, seg, sr])
    modalities = {s["00080060"]["Value"][0] for s in pacs.search_for_series(source.StudyInstanceUID)}
    assert modalities == {"CR", "SEG", "SR"}

    seg_back = hd.seg.Segmentation.from_dataset(
        pacs.retrieve_instance(source.StudyInstanceUID, seg.SeriesInstanceUID, seg.SOPInstanceUID))
    pixels = seg_back.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])
    assert np.array_equal(pixels[0, :, :, 0] > 0, mask)
    sr_back = pacs.retrieve_instance(source.StudyInstanceUID, sr.SeriesInstanceUID, sr.SOPInstanceUID)
    assert sr_back.SOPInstanceUID == sr.SOPInstanceUID
    assert sr_back.ContentSequence == sr.ContentSequence
    assert "85151-9" in str(sr_back)


def _orthanc_root(dicomweb_root: str) -> str:
    return dicomweb_root.rsplit("/dicom-web", 1)[0]


def orthanc_pusher(dicomweb_root: str, platform_url: str, authorization: str, study_uid: str):
    """Register the platform as Orthanc's DICOMweb server 'boneage' (with this Authorization header) and return a
    function that has Orthanc push the whole study to it by STOW-RS (Orthanc's job fails on any failed part)."""
    import requests

    root = _orthanc_root(dicomweb_root)
    server = {"Url": platform_url, "HttpHeaders": {"Authorization": authorization}}
    assert requests.put(f"{root}/dicom-web/servers/boneage", json=server, timeout=10).ok
    found = requests.post(f"{root}/tools/lookup", data=study_uid, timeout=10).json()
    orthanc_study = next(item["ID"] for item in found if item["Type"] == "Study")
    return lambda: requests.post(f"{root}/dicom-web/servers/boneage/stow", json={"Resources": [orthanc_study]},
                                 timeout=120)


def platform_study_in_orthanc(dicomweb_root: str, client, project, owner, uid_seed: str):
    """A film the platform holds with an expert mask and label, and that film with the platform's own SEG and SR stored
    in Orthanc, as a PACS holds what the platform sent it. Returns (the film's dataset, its study)."""
    source = radiograph(uid_seed)
    study = do_ingest(project, owner, dicom_bytes(source), "hand.dcm").study
    mask = np.zeros((600, 500), bool)
    mask[100:500, 120:380] = True
    do_save_mask(study, mask, source="expert", author=owner)
    do_save_label(study, 131.0, author=owner)
    seg = pydicom.dcmread(io.BytesIO(client.get(f"/api/studies/{study.pk}/export/seg/").content))
    sr = pydicom.dcmread(io.BytesIO(client.get(f"/api/studies/{study.pk}/export/sr/").content))
    DICOMwebClient(dicomweb_root).store_instances([source, seg, sr])
    return source, study


def test_orthanc_pushes_back_a_whole_study_that_came_from_the_platform_and_its_job_succeeds(
        orthanc, live_asgi_server, api_as, project, owner):  # noqa: F811
    """Film + the platform's own SEG and SR, pushed by Orthanc's STOW-RS client (its job fails on any failed part):
    the push succeeds and stores nothing new; a radiologist's SR added in the PACS is then kept with the film."""
    from boneage.dicomweb.models import DerivedObject
    from rest_framework.authtoken.models import Token

    source, study = platform_study_in_orthanc(orthanc, api_as(owner), project, owner, "PACS-PUSH")

    token, _ = Token.objects.get_or_create(user=owner)
    push_study = orthanc_pusher(orthanc, f"{live_asgi_server}/dicomweb/projects/{project.pk}/", f"Token {token.key}",
                                source.StudyInstanceUID)
    push = push_study()
    assert push.status_code == 200, push.text
    assert Study.objects.filter(project=project).count() == 1
    assert DerivedObject.objects.filter(study=study).count() == 2  # the SEG and SR it already had

    report = make_radiologist_report(source)
    DICOMwebClient(orthanc).store_instances([report])
    again = push_study()
    assert again.status_code == 200, again.text
    kept = DerivedObject.objects.get(study=study, sop_instance_uid=report.SOPInstanceUID)
    assert kept.kind == "sr" and kept.received
    assert Study.objects.filter(project=project).count() == 1


def make_radiologist_report(source: pydicom.Dataset) -> pydicom.Dataset:
    import datetime as dt

    from boneage.dicomweb.objects import Reading, make_bone_age_report
    from pydicom.uid import generate_uid

    sr = make_bone_age_report(source, [Reading(128.0, reader="Radiologist^Rita")], series_uid=generate_uid(),
                              sop_uid=generate_uid(), created=dt.datetime(2024, 1, 16, 9, 0))
    buffer = io.BytesIO()
    sr.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def test_orthanc_pushes_a_whole_study_to_a_de_identifying_project_and_the_skipped_report_does_not_fail_its_job(
        orthanc, live_asgi_server, project, owner):  # noqa: F811
    """The film is stored (de-identified); the radiologist's SR is skipped as a success with a warning (202)."""
    from boneage.dicomweb.models import DerivedObject
    from rest_framework.authtoken.models import Token

    project.deidentify = True
    project.save(update_fields=["deidentify"])
    source = radiograph("PACS-DEID")
    DICOMwebClient(orthanc).store_instances([source, make_radiologist_report(source)])
    push = orthanc_pusher(orthanc, f"{live_asgi_server}/dicomweb/projects/{project.pk}/",
                          f"Bearer {Token.objects.create(user=owner).key}", source.StudyInstanceUID)()
    assert push.status_code == 200, push.text
    assert Study.objects.filter(project=project).count() == 1 and not DerivedObject.objects.exists()
    assert IngestRecord.objects.filter(project=project, outcome="accepted").count() == 1
