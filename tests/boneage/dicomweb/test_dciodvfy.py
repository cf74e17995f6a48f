"""dicom3tools' dciodvfy, the IOD checker integrators run, finds no error in the SEG and SR the platform exports, nor
in the CR and DX films `ml.phantoms` writes (the films the demo, the benches and the node tests send)."""
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


def findings(dciodvfy, tmp_path, name: str, data: bytes) -> list[str]:
    """Every line dciodvfy prints for one object (on stderr): the IOD it read it as first, then errors and warnings."""
    file = tmp_path / f"{name}.dcm"
    file.write_bytes(data)
    result = subprocess.run([dciodvfy, str(file)], capture_output=True, text=True, timeout=60, check=False)
    return (result.stdout + result.stderr).splitlines()


def verify(dciodvfy, tmp_path, name: str, data: bytes) -> list[str]:
    """dciodvfy's error lines for one object."""
    return [line for line in findings(dciodvfy, tmp_path, name, data) if line.startswith("Error")]


def phantom_films(tmp_path, count: int = 8) -> list[bytes]:
    """A small cohort as `python -m ml.phantoms --format dicom` writes it: CR and DX, MONOCHROME1 and 2, rescales."""
    from ml.phantoms.cohort import generate_cohort

    generate_cohort(tmp_path / "phantoms", count, seed=31, size=128, fmt="dicom", progress=False)
    return [path.read_bytes() for path in sorted((tmp_path / "phantoms" / "images").glob("*.dcm"))]


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


def test_every_variant_of_the_phantom_films_passes_dciodvfy_without_errors_or_warnings(dciodvfy, tmp_path):
    films = phantom_films(tmp_path)
    variants = set()
    for index, data in enumerate(films):
        ds = pydicom.dcmread(io.BytesIO(data))
        variants.add((ds.Modality, ds.PhotometricInterpretation))
        lines = findings(dciodvfy, tmp_path, f"phantom-{index}", data)
        assert lines == [{"CR": "CRImage", "DX": "DXImageForPresentation"}[ds.Modality]], (ds.Modality, lines)
    assert variants == {(m, p) for m in ("CR", "DX") for p in ("MONOCHROME1", "MONOCHROME2")}


def test_the_checker_is_the_real_one_a_dx_film_with_a_rescale_slope_of_two_is_an_error(dciodvfy, tmp_path):
    ds = next(pydicom.dcmread(io.BytesIO(data)) for data in phantom_films(tmp_path)
              if pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).Modality == "DX")
    ds.RescaleSlope = "2"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert any("Rescale Slope" in line for line in verify(dciodvfy, tmp_path, "slope-2", out.getvalue()))


def test_the_seg_and_sr_of_a_phantom_dx_film_pass_dciodvfy(dciodvfy, tmp_path, api_as, project, owner):
    data = next(data for data in phantom_films(tmp_path)
                if pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).Modality == "DX")
    study = do_ingest(project, owner, data, "phantom.dcm").study
    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    rows, columns = header.Rows, header.Columns
    mask = np.zeros((rows, columns), bool)
    mask[rows // 4:, columns // 4: 3 * columns // 4] = True
    do_save_mask(study, mask, source="expert", author=owner)
    do_save_label(study, 150.0, author=owner)
    client = api_as(owner)
    assert verify(dciodvfy, tmp_path, "seg", client.get(f"/api/studies/{study.pk}/export/seg/").content) == []
    assert verify(dciodvfy, tmp_path, "sr", client.get(f"/api/studies/{study.pk}/export/sr/").content) == []
