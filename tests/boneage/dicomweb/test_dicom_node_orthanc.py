"""A real PACS sends by DIMSE: Debian's Orthanc, given the DICOM node as a modality (the project's AE title as the
called title), C-STOREs a study to it — as a hospital's PACS router would."""
from __future__ import annotations

import re

import pytest
import requests
from boneage.dicomweb.models import DerivedObject
from boneage.studies.models import IngestRecord, Study
from dicomweb_client.api import DICOMwebClient

from tests.boneage.dicomweb.orthanc import orthanc  # noqa: F401 (the fixture)
from tests.boneage.dicomweb.test_orthanc_pacs import platform_study_in_orthanc, radiograph

pytestmark = pytest.mark.django_db(transaction=True)


def orthanc_sends(dicomweb_root: str, node_port: int, ae_title: str, study_uid: str) -> dict:
    """Register the node as Orthanc's modality 'boneage' and C-STORE the study to it; Orthanc's answer."""
    root = dicomweb_root.rsplit("/dicom-web", 1)[0]
    modality = {"AET": ae_title, "Host": "127.0.0.1", "Port": node_port}
    assert requests.put(f"{root}/modalities/boneage", json=modality, timeout=10).ok
    found = requests.post(f"{root}/tools/lookup", data=study_uid, timeout=10).json()
    study = next(item["ID"] for item in found if item["Type"] == "Study")
    sent = requests.post(f"{root}/modalities/boneage/store", json={"Resources": [study], "Synchronous": True},
                         timeout=120)
    assert sent.ok, sent.text
    return sent.json()


def test_orthanc_c_stores_a_film_and_it_becomes_a_study_of_the_project_that_names_who_sent_it(
        orthanc, node_port, project):  # noqa: F811
    film = radiograph("DIMSE-1")
    DICOMwebClient(orthanc).store_instances([film])
    answer = orthanc_sends(orthanc, node_port, project.ae_title, film.StudyInstanceUID)
    assert answer["InstancesCount"] == 1 and answer["FailedInstancesCount"] == 0
    study = Study.objects.get(project=project)
    assert study.sop_instance_uid == film.SOPInstanceUID and study.source == "dimse"
    assert re.fullmatch(r"ORTHANC at 127\.0\.0\.1:\d+", IngestRecord.objects.get(project=project).sender)


def test_orthanc_c_stores_back_a_whole_study_that_came_from_the_platform_and_nothing_new_is_stored(
        orthanc, node_port, api_as, project, owner):  # noqa: F811
    source, study = platform_study_in_orthanc(orthanc, api_as(owner), project, owner, "DIMSE-2")
    answer = orthanc_sends(orthanc, node_port, project.ae_title, source.StudyInstanceUID)
    assert answer["InstancesCount"] == 3 and answer["FailedInstancesCount"] == 0
    assert Study.objects.filter(project=project).count() == 1
    assert DerivedObject.objects.filter(study=study).count() == 2
    assert IngestRecord.objects.filter(project=project, channel="dimse").get().outcome == "already_stored"
