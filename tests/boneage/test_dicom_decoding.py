"""What ingest does to DICOM pixels and tags: bright bone whatever the encoding."""
from __future__ import annotations

import numpy as np
import pytest
from boneage.studies.ingest.decode import decode_upload
from boneage.studies.ingest.errors import IngestError
from pydicom.data import get_testdata_file
from pydicom.uid import UID

from tests.dicom_factory import dicom_bytes, make_dicom_dataset, png_bytes, ramp

LIMIT = 64_000_000


def bone_brighter_than_background(unit: np.ndarray) -> bool:
    rows, columns = unit.shape
    return unit[rows // 2, columns // 2] > unit[2, 2] + 0.3


def test_monochrome2_keeps_bone_bright():
    decoded = decode_upload(dicom_bytes(photometric="MONOCHROME2"), max_pixels=LIMIT)
    assert bone_brighter_than_background(decoded.unit)


def test_monochrome1_is_inverted_to_look_the_same():
    pixels = ramp(64, 48)
    inverted = (4095 - pixels).astype(np.uint16)
    as_mono2 = decode_upload(dicom_bytes(make_dicom_dataset(pixels)), max_pixels=LIMIT).unit
    as_mono1 = decode_upload(dicom_bytes(make_dicom_dataset(inverted, photometric="MONOCHROME1")), max_pixels=LIMIT).unit
    assert bone_brighter_than_background(as_mono1)
    assert np.allclose(as_mono1, as_mono2, atol=1e-3)


def test_the_values_shown_black_and_white_are_the_files_own_for_the_window_level_readout():
    pixels = ramp(64, 48)  # 0..4095
    mono2 = decode_upload(dicom_bytes(make_dicom_dataset(pixels)), max_pixels=LIMIT)
    mono1 = decode_upload(dicom_bytes(make_dicom_dataset((4095 - pixels).astype(np.uint16), photometric="MONOCHROME1")),
                          max_pixels=LIMIT)
    rescaled = decode_upload(dicom_bytes(make_dicom_dataset(pixels, slope=2.0, intercept=-1000.0)), max_pixels=LIMIT)
    assert mono2.black_white == (float(pixels.min()), float(pixels.max()))
    assert mono1.black_white == (4095.0 - pixels.min(), 4095.0 - pixels.max())  # inverted: the lowest value is white
    assert rescaled.black_white == (2.0 * pixels.min() - 1000.0, 2.0 * pixels.max() - 1000.0)  # modality values
    png = decode_upload(png_bytes(np.zeros((8, 8), np.uint8)), max_pixels=LIMIT)
    assert png.black_white == (0.0, 255.0)


def test_rescale_slope_and_intercept_are_applied_before_the_window():
    # With slope -1 the stored values run backwards: only an applied modality LUT puts bone back on top.
    pixels = (4095 - ramp(64, 48)).astype(np.uint16)
    decoded = decode_upload(dicom_bytes(make_dicom_dataset(pixels, slope=-1.0, intercept=4095.0)), max_pixels=LIMIT)
    assert bone_brighter_than_background(decoded.unit)


def test_a_voi_window_stretches_the_range_it_covers():
    pixels = ramp(64, 48)  # background ramps 0..2047, bone is 4095
    plain = decode_upload(dicom_bytes(make_dicom_dataset(pixels)), max_pixels=LIMIT).unit
    windowed = decode_upload(dicom_bytes(make_dicom_dataset(pixels, window=(1024, 2048))), max_pixels=LIMIT).unit
    assert plain[2, -1] == pytest.approx(0.5, abs=0.01)  # without a window 2047 is mid-grey
    assert windowed[2, -1] == pytest.approx(1.0, abs=0.01)  # the window's top edge is white
    assert windowed[32, 24] == pytest.approx(1.0)  # values above the window saturate


def test_sex_age_and_uids_come_from_the_tags():
    ds = make_dicom_dataset(sex="M", age="018M")
    decoded = decode_upload(dicom_bytes(ds), max_pixels=LIMIT)
    assert (decoded.sex, decoded.chronological_age_months) == ("M", 18)
    assert decoded.sop_instance_uid == ds.SOPInstanceUID and decoded.study_instance_uid == ds.StudyInstanceUID


def test_age_comes_from_birth_and_study_dates_when_patient_age_is_missing():
    decoded = decode_upload(dicom_bytes(age=None, birth_date="20150115", study_date="20250115"), max_pixels=LIMIT)
    assert decoded.chronological_age_months == pytest.approx(120, abs=0.2)


@pytest.mark.parametrize(
    "file_name,syntax",
    [
        ("MR_small_RLE.dcm", "RLE Lossless"),
        ("JPGExtended.dcm", "JPEG Extended"),
        ("SC_rgb_jpeg_dcmtk.dcm", "JPEG Baseline"),
        ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless"),
        ("JPEGLSNearLossless_16.dcm", "JPEG-LS Lossy"),
        ("MR_small_jp2klossless.dcm", "JPEG 2000"),
    ],
)
def test_compressed_transfer_syntaxes_decode_through_the_pylibjpeg_plugins(file_name, syntax):
    with open(get_testdata_file(file_name), "rb") as handle:
        decoded = decode_upload(handle.read(), max_pixels=LIMIT)
    assert syntax in UID(decoded.transfer_syntax).name  # the UID is stored, its name is derived
    assert decoded.unit.ndim == 2 and decoded.unit.dtype == np.float32
    assert 0.0 <= decoded.unit.min() < decoded.unit.max() <= 1.0


def test_a_dicom_missing_its_image_attributes_is_refused_clearly():
    ds = make_dicom_dataset()
    del ds.Rows
    with pytest.raises(IngestError) as caught:
        decode_upload(dicom_bytes(ds), max_pixels=LIMIT)
    assert caught.value.status == 422 and "Rows" in caught.value.detail
