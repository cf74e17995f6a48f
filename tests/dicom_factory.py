"""DICOM files made in memory for tests: any size, photometric, bit depth, rescale, window."""
from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def ramp(rows: int, columns: int, bits: int = 12) -> np.ndarray:
    """A left-to-right ramp with a bright square in the middle (the 'bone')."""
    top = 2**bits - 1
    image = np.tile(np.linspace(0, top // 2, columns, dtype=np.float64), (rows, 1))
    image[rows // 4 : 3 * rows // 4, columns // 4 : 3 * columns // 4] = top
    return image.astype(np.uint16)


def make_dicom_dataset(
    pixels: np.ndarray | None = None,
    *,
    rows: int = 64,
    columns: int = 48,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    sex: str = "F",
    age: str | None = "010Y",
    birth_date: str | None = None,
    study_date: str | None = None,
    sop_uid: str | None = None,
) -> Dataset:
    if pixels is None:
        pixels = ramp(rows, columns, bits_stored)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "CR"
    ds.PatientName, ds.PatientID, ds.PatientSex = "Doe^Jane", "PID-42", sex
    if age:
        ds.PatientAge = age
    if birth_date:
        ds.PatientBirthDate = birth_date
    if study_date:
        ds.StudyDate = study_date
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept or 0, "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


def dicom_bytes(ds: Dataset | None = None, **kwargs) -> bytes:
    ds = ds if ds is not None else make_dicom_dataset(**kwargs)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
