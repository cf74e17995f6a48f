"""dicom3tools' dciodvfy, the IOD checker integrators run, finds no error in the SEG and SR the platform exports."""
from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from boneage.annotations.actions import do_save_label, do_save_mask
from boneage.studies.actions import do_ingest

from tests.dicom_factory import dicom_bytes, make_dicom_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def dciodvfy():
    path = shutil.which("dciodvfy")
    if path is None:
        pytest.fail("dciodvfy (dicom3tools) is missing: make dicomtools")
    return path


def verify(dciodvfy, tmp_path, name: str, data: bytes) -> list[str]:
    """dciodvfy's error lines for one object (it prints its findings on stderr)."""
    file = tmp_path / f"{name}.dcm"
    file.write_bytes(data)
    result = subprocess.run([dciodvfy, str(file)], capture_output=True, text=True, timeout=60, check=False)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("orientation", ["A\\F", None])
def test_the_seg_and_the_verified_sr_pass_dciodvfy(dciodvfy, tmp_path, api_as, project, owner, orientation):
    film = make_dicom_dataset(study_date="20240301")
    if orientation:
        film.PatientOrientation = orientation
    study = do_ingest(project, owner, dicom_bytes(film), "hand.dcm").study
    mask = np.zeros((64, 48), bool)
    mask[8:56, 10:40] = True
    do_save_mask(study, mask, source="expert", author=owner)
    do_save_label(study, 120.0, author=owner)
    client = api_as(owner)
    seg = client.get(f"/api/studies/{study.pk}/export/seg/").content
    sr = client.get(f"/api/studies/{study.pk}/export/sr/").content
    assert verify(dciodvfy, tmp_path, "seg", seg) == []
    assert verify(dciodvfy, tmp_path, "sr", sr) == []
    assert pydicom.dcmread(io.BytesIO(seg)).PatientOrientation == (orientation.split("\\") if orientation else "")
