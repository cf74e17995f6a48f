"""De-identification on ingest: PS3.15 basic profile with patient characteristics retained."""
from __future__ import annotations

import io

import pydicom
import pytest
from boneage.studies.actions import do_ingest
from boneage.studies.models import Study
from django.core.files.storage import default_storage

from tests.dicom_factory import dicom_bytes, make_dicom_dataset

pytestmark = pytest.mark.django_db


def test_a_deidentifying_project_stores_no_name_id_or_dates_but_keeps_sex_and_age(project, owner):
    project.deidentify = True
    project.save()
    original = make_dicom_dataset(sex="F", age="009Y", birth_date="20160101", study_date="20250101")
    original.InstitutionName = "St. Elsewhere"
    result = do_ingest(project, owner, dicom_bytes(original), "hand.dcm")
    assert result.status == 201
    stored = pydicom.dcmread(io.BytesIO(default_storage.open(result.study.image.original).read()))
    assert "Doe" not in str(stored.PatientName) and stored.PatientID == ""
    assert "InstitutionName" not in stored and stored.get("PatientBirthDate", "") == ""
    assert stored.PatientIdentityRemoved == "YES"
    assert (stored.PatientSex, stored.PatientAge) == ("F", "009Y")
    assert stored.SOPInstanceUID != original.SOPInstanceUID
    assert result.study.sop_instance_uid == stored.SOPInstanceUID


def test_uid_replacement_is_consistent_so_a_reupload_is_recognised(project, owner):
    project.deidentify = True
    project.save()
    data = dicom_bytes()
    first, second = do_ingest(project, owner, data, "a.dcm"), do_ingest(project, owner, data, "a.dcm")
    assert (first.status, second.status) == (201, 200)
    assert Study.objects.count() == 1
