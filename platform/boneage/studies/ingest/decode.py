"""Validate and decode an upload: DICOM Part 10 (pydicom + pylibjpeg plugins), PNG or JPEG.

Never `force=True`: a file without the DICM preamble is not DICOM to us. Every refusal is an
IngestError with a status (400/413/415/422) and a readable reason; nothing here writes anything.
Every parser and decoder call runs inside `refusing(...)`, which also turns native-library panics
into refusals; what is accepted here decodes later to one grey frame (elements.decode_grey). The declared shape
(Rows, Columns, NumberOfFrames, samples and bits; a PNG's or JPEG's header size and mode) is held against
ingest.bounds before any pixel is decoded.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from PIL import Image as PILImage

from boneage.studies.ingest.bounds import check_bounds
from boneage.studies.ingest.elements import (
    check_code_string,
    check_pixel_layout,
    check_transfer_syntax,
    check_uid,
    decode_grey,
    non_image_kind,
)
from boneage.studies.ingest.elements import (
    spacing_mm as _spacing_mm,
)
from boneage.studies.ingest.errors import IngestError, refusing
from ml.imaging import dicom_black_white, raster_to_unit

MAX_SEQUENCE_DEPTH = 8
# Pillow modes a PNG or JPEG opens in: samples per pixel and bytes per sample once decoded (ingest.bounds).
_RASTER_MODES = {"1": (1, 1), "L": (1, 1), "P": (1, 1), "LA": (2, 1), "PA": (2, 1), "RGB": (3, 1), "YCbCr": (3, 1),
                 "RGBA": (4, 1), "CMYK": (4, 1), "I;16": (1, 2), "I;16B": (1, 2), "I;16L": (1, 2), "I": (1, 4),
                 "F": (1, 4)}


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
    frames: int = 1  # >1: only the first frame is kept
    black_white: tuple[float, float] | None = None  # the stored values `unit` shows as 0 and 1 (window/level readout)
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
    with refusing(422, "unreadable_image", f"The {media_type} header cannot be read"):
        image = PILImage.open(io.BytesIO(data))
        width, height = image.size
    samples, sample_bytes = _RASTER_MODES.get(image.mode, (4, 4))  # an unknown mode counts as the widest
    check_bounds(height, width, samples=samples, bits_allocated=8 * sample_bytes, max_pixels=max_pixels)
    with refusing(422, "truncated_image", "The image data is truncated or corrupt"):
        image.load()
        unit = raster_to_unit(image)
    bits = 16 if image.mode.startswith("I") else 8
    return Decoded(media_type=media_type, unit=unit, rows=height, columns=width, bits_stored=bits,
                   black_white=(0.0, float(2 ** bits - 1)))


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

    with refusing(422, "unreadable_dicom", "The DICOM file cannot be parsed"):
        ds = pydicom.dcmread(io.BytesIO(data))
        _check_sequence_depth(ds)
    with refusing(422, "unreadable_dicom", "The DICOM attributes cannot be read"):
        return _inspect_dicom(ds, max_pixels=max_pixels, pixels=pixels)


def _inspect_dicom(ds, *, max_pixels: int, pixels: bool) -> Decoded:
    sop_class = str(ds.get("SOPClassUID", "") or "")
    kind = non_image_kind(sop_class, str(ds.get("Modality", "") or ""))
    if kind is not None:
        name = getattr(ds.get("SOPClassUID"), "name", None) or kind.upper()
        raise IngestError(422, "not_an_image", f"This DICOM object ({_printable(name)}) is not a radiograph to label. "
                          "STOW-RS keeps segmentations, reports, key-object selections and presentation states with the "
                          "study they belong to.")
    transfer_syntax = check_transfer_syntax(ds)
    if "PixelData" not in ds:
        sop_class = getattr(ds.get("SOPClassUID"), "name", None) or str(ds.get("SOPClassUID", "unknown"))
        raise IngestError(422, "no_pixel_data", f"This DICOM object ({sop_class}) holds no image pixel data.")
    layout = check_pixel_layout(ds)
    check_bounds(layout.rows, layout.columns, frames=layout.frames, samples=layout.samples,
                 bits_allocated=layout.bits_allocated, max_pixels=max_pixels)
    if not transfer_syntax.is_compressed:
        from pydicom.pixels.utils import get_expected_length

        expected = get_expected_length(ds)
        if len(ds.PixelData) < expected:
            raise IngestError(
                422,
                "truncated_pixel_data",
                f"Pixel data is truncated: {len(ds.PixelData):,} bytes where {layout.columns}×{layout.rows}"
                f"×{layout.frames} frame(s) of {layout.photometric} at {layout.bits_allocated} bits needs {expected:,}.",
            )
    with refusing(422, "pixel_decode_failed", f"The pixel data ({transfer_syntax.name}) cannot be decoded"):
        unit = decode_grey(ds, layout, full=pixels)
        black_white = dicom_black_white(ds) if pixels else None  # pixel_array is decoded already: one more pass
    uids = {keyword: check_uid(ds, keyword)
            for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID")}
    return Decoded(
        media_type="application/dicom",
        unit=unit if pixels else None,
        rows=layout.rows,
        columns=layout.columns,
        sex=_sex_from_tag(ds.get("PatientSex", "")),
        chronological_age_months=_age_months(ds),
        sop_instance_uid=uids["SOPInstanceUID"],
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        photometric=layout.photometric,
        bits_stored=layout.bits_stored,
        modality=check_code_string(ds, "Modality"),
        transfer_syntax=str(transfer_syntax),
        pixel_spacing_mm=_spacing_mm(ds),
        frames=layout.frames,
        black_white=black_white,
        dataset=ds,
    )


def check_instance_uids(decoded: Decoded) -> None:
    """A DICOM instance must name its study, series and itself: every later reader addresses it by these three
    (DICOMweb URLs, QIDO's grouping, the SEG/SR references, dedupe). One without them is refused, not given made-up
    UIDs: the sender would not know them, and each resend would become another study."""
    if decoded.media_type != "application/dicom":
        return
    present = {"StudyInstanceUID": decoded.study_instance_uid, "SeriesInstanceUID": decoded.series_instance_uid,
               "SOPInstanceUID": decoded.sop_instance_uid}
    missing = [keyword for keyword, value in present.items() if not value]
    if missing:
        raise IngestError(422, "missing_uid", f"The instance has no {' and no '.join(missing)}: a DICOM instance must carry "
                          "its Study, Series and SOP Instance UIDs. Nothing was stored.")


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))[:80]


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
