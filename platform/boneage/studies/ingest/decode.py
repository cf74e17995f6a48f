"""Validate and decode an upload: DICOM Part 10 (pydicom + pylibjpeg plugins), PNG or JPEG.

Never `force=True`: a file without the DICM preamble is not DICOM to us. Every refusal is an
IngestError with a status (400/413/415/422) and a readable reason; nothing here writes anything.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from PIL import Image as PILImage

from boneage.studies.ingest.errors import IngestError
from ml.imaging import dicom_to_unit, raster_to_unit

MAX_SEQUENCE_DEPTH = 8


@dataclass
class Decoded:
    media_type: str  # application/dicom, image/png, image/jpeg
    unit: np.ndarray | None  # float32 (H, W) in [0, 1], bright bone; None when only validated
    rows: int = 0
    columns: int = 0
    sex: str = ""  # "M", "F" or ""
    chronological_age_months: float | None = None
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    photometric: str = ""
    bits_stored: int | None = None
    modality: str = ""
    transfer_syntax: str = ""
    pixel_spacing_mm: float | None = None
    dataset: Any = field(default=None, repr=False)  # pydicom Dataset for de-identification

    @property
    def height(self) -> int:
        return self.rows

    @property
    def width(self) -> int:
        return self.columns


def sniff_media_type(data: bytes) -> str:
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "application/dicom"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    raise IngestError(
        415,
        "unsupported_media_type",
        "This is not a DICOM Part 10 file (no 'DICM' marker at byte 128), a PNG or a JPEG.",
    )


def decode_upload(data: bytes, *, max_pixels: int, pixels: bool = True) -> Decoded:
    """Validate the file; with pixels=False, uncompressed DICOM is checked by its length alone and
    no normalized array is made (ingest does that later, off the request path)."""
    if not data:
        raise IngestError(400, "empty_file", "The file is empty (0 bytes).")
    media_type = sniff_media_type(data)
    if media_type == "application/dicom":
        return _decode_dicom(data, max_pixels=max_pixels, pixels=pixels)
    return _decode_raster(data, media_type, max_pixels=max_pixels)


def _decode_raster(data: bytes, media_type: str, *, max_pixels: int) -> Decoded:
    try:
        image = PILImage.open(io.BytesIO(data))
        width, height = image.size
    except Exception as exc:
        raise IngestError(422, "unreadable_image", f"The {media_type} header cannot be read: {exc}") from exc
    _check_dimensions(height, width, 1, max_pixels)
    try:
        image.load()
    except Exception as exc:
        raise IngestError(422, "truncated_image", f"The image data is truncated or corrupt: {exc}") from exc
    return Decoded(media_type=media_type, unit=raster_to_unit(image), rows=height, columns=width,
                   bits_stored=16 if image.mode.startswith("I") else 8)


def _check_dimensions(rows: int, columns: int, frames: int, max_pixels: int) -> None:
    if rows <= 0 or columns <= 0:
        raise IngestError(422, "absurd_dimensions", f"The image declares {columns}×{rows} pixels.")
    if rows * columns * max(frames, 1) > max_pixels:
        raise IngestError(
            422,
            "absurd_dimensions",
            f"The image declares {columns}×{rows} pixels ({frames} frame(s)), over the limit of {max_pixels:,} pixels.",
        )


def _check_sequence_depth(dataset, depth: int = 0) -> None:
    """Walk nested sequences level by level, refusing absurd nesting before it exhausts the stack."""
    if depth > MAX_SEQUENCE_DEPTH:
        raise IngestError(422, "nested_too_deep", f"Sequences are nested deeper than {MAX_SEQUENCE_DEPTH} levels.")
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                _check_sequence_depth(item, depth + 1)


def _decode_dicom(data: bytes, *, max_pixels: int, pixels: bool) -> Decoded:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        _check_sequence_depth(ds)
    except IngestError:
        raise
    except RecursionError as exc:
        raise IngestError(422, "nested_too_deep", "Sequences are nested too deeply to read.") from exc
    except (InvalidDicomError, Exception) as exc:
        raise IngestError(422, "unreadable_dicom", f"The DICOM file cannot be parsed: {exc}") from exc

    if "PixelData" not in ds:
        sop_class = getattr(ds.get("SOPClassUID"), "name", None) or str(ds.get("SOPClassUID", "unknown"))
        raise IngestError(422, "no_pixel_data", f"This DICOM object ({sop_class}) holds no image pixel data.")
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits_allocated = int(ds.BitsAllocated)
    except Exception as exc:
        raise IngestError(422, "unreadable_dicom", f"The image attributes (Rows, Columns, BitsAllocated) are missing or invalid: {exc}") from exc
    _check_dimensions(rows, columns, frames, max_pixels)
    transfer_syntax = ds.file_meta.TransferSyntaxUID
    if not transfer_syntax.is_compressed:
        expected = rows * columns * frames * samples * bits_allocated // 8
        if len(ds.PixelData) < expected:
            raise IngestError(
                422,
                "truncated_pixel_data",
                f"Pixel data is truncated: {len(ds.PixelData):,} bytes where {columns}×{rows}×{bits_allocated}-bit needs {expected:,}.",
            )
    try:
        unit = None
        if pixels:
            unit = dicom_to_unit(ds)
        elif transfer_syntax.is_compressed:
            ds.pixel_array  # noqa: B018 — proves the codestream decodes; the pixels themselves are made later
    except Exception as exc:
        raise IngestError(
            422, "pixel_decode_failed", f"The pixel data ({transfer_syntax.name}) cannot be decoded: {exc}"
        ) from exc

    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    return Decoded(
        media_type="application/dicom",
        unit=unit,
        rows=rows,
        columns=columns,
        sex=_sex_from_tag(ds.get("PatientSex", "")),
        chronological_age_months=_age_months(ds),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        photometric=str(ds.get("PhotometricInterpretation", "")),
        bits_stored=int(ds.get("BitsStored", bits_allocated)),
        modality=str(ds.get("Modality", "")),
        transfer_syntax=transfer_syntax.name,
        pixel_spacing_mm=float(spacing[0]) if spacing else None,
        dataset=ds,
    )


def _sex_from_tag(value) -> str:
    value = str(value or "").strip().upper()
    return value if value in ("M", "F") else ""


_AGE = re.compile(r"^(\d{3})([DWMY])$")
_MONTHS_PER_UNIT = {"D": 12 / 365.25, "W": 12 * 7 / 365.25, "M": 1.0, "Y": 12.0}


def _age_months(ds) -> float | None:
    match = _AGE.match(str(ds.get("PatientAge", "") or "").strip())
    if match:
        return round(int(match.group(1)) * _MONTHS_PER_UNIT[match.group(2)], 2)
    birth, seen = _dicom_date(ds.get("PatientBirthDate")), _dicom_date(ds.get("StudyDate") or ds.get("AcquisitionDate"))
    if birth and seen and seen >= birth:
        return round((seen - birth).days / 365.25 * 12, 2)
    return None


def _dicom_date(value) -> date | None:
    text = str(value or "").strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None
