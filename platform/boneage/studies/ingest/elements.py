"""The DICOM elements ingest stores or relies on, each checked against what its column and the decoder accept.

A value that fits no column or that no decoder can use is refused here, at upload, with the element's
name; it never reaches the database (where it would be a 500) or a later stage (where it would break
a study already accepted).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from boneage.studies.ingest.errors import IngestError
from ml.imaging import dicom_to_unit

UID_MAX = 64  # PS3.5 §9.1; also the width of every UID column
CODE_STRING_MAX = 16  # VR CS
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_CODE_STRING = re.compile(r"^[A-Z0-9 _]*$")
# Photometric interpretations decode_grey turns into one grey frame, with the samples per pixel each needs.
PHOTOMETRIC_SAMPLES = {
    "MONOCHROME1": 1, "MONOCHROME2": 1, "PALETTE COLOR": 1,
    "RGB": 3, "YBR_FULL": 3, "YBR_FULL_422": 3, "YBR_ICT": 3, "YBR_RCT": 3, "YBR_PARTIAL_420": 3,
}
BITS_ALLOCATED = (1, 8, 16, 32)
SAMPLED_CHECK_STEP = 8  # the upload proves the LUT path on every 8th pixel; the full image is made later


@dataclass(frozen=True)
class PixelLayout:
    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    photometric: str

    def decoded_shape(self) -> tuple[int, ...]:
        """The shape pydicom's pixel_array has for this layout."""
        return ((self.frames,) if self.frames > 1 else ()) + (self.rows, self.columns) + \
            ((self.samples,) if self.samples > 1 else ())


# DICOM objects that are not radiographs, by SOP class (PS3.4 Annex B; a class or any class under it, the first match
# wins) or else by Modality.
_NON_IMAGE_CLASSES = (("1.2.840.10008.5.1.4.1.1.66.4", "seg"), ("1.2.840.10008.5.1.4.1.1.88.59", "ko"),
                      ("1.2.840.10008.5.1.4.1.1.88", "sr"), ("1.2.840.10008.5.1.4.1.1.11", "pr"),
                      ("1.2.840.10008.5.1.4.1.1.66", "other"), ("1.2.840.10008.5.1.4.1.1.104", "other"))
_NON_IMAGE_MODALITIES = {"SEG": "seg", "SR": "sr", "KO": "ko", "PR": "pr", "DOC": "other", "REG": "other"}


def non_image_kind(sop_class: str, modality: str) -> str | None:
    """'seg', 'sr', 'ko', 'pr' (or 'other': a registration, an encapsulated document) for a DICOM object that is not
    a radiograph to label, None for an image. A SEG has pixel data, so only its class or modality tells."""
    for prefix, kind in _NON_IMAGE_CLASSES:
        if sop_class == prefix or sop_class.startswith(prefix + "."):
            return kind
    return _NON_IMAGE_MODALITIES.get(modality.strip().upper())


def check_transfer_syntax(ds):
    """The file's transfer syntax UID, refused when missing, malformed or not one a decoder here handles."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID, AllTransferSyntaxes

    meta = getattr(ds, "file_meta", None)
    raw = str(meta.get("TransferSyntaxUID", "") or "").strip() if meta is not None else ""
    if not raw:
        raise IngestError(422, "missing_transfer_syntax",
                          "The file meta information has no Transfer Syntax UID (0002,0010): the pixel encoding is unknown.")
    shown = _shown(raw)
    if len(raw) > UID_MAX or not _UID.match(raw):
        raise IngestError(422, "invalid_transfer_syntax", f"The Transfer Syntax UID {shown} is not a valid UID.")
    uid = UID(raw)
    if uid not in AllTransferSyntaxes:
        raise IngestError(422, "unsupported_transfer_syntax", f"The transfer syntax {shown} is not one DICOM defines.")
    if "PixelData" in ds:
        try:
            available = get_decoder(uid).is_available
        except NotImplementedError:
            available = False
        if not available:
            raise IngestError(422, "unsupported_transfer_syntax",
                              f"No decoder here reads pixel data in {uid.name} ({uid}).")
    return uid


def check_pixel_layout(ds) -> PixelLayout:
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    frames = _int(ds, "NumberOfFrames", 1)
    samples = _int(ds, "SamplesPerPixel", 1)
    bits_allocated = _int(ds, "BitsAllocated")
    bits_stored = _int(ds, "BitsStored", bits_allocated)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if bits_allocated not in BITS_ALLOCATED:
        raise _invalid("BitsAllocated", bits_allocated, f"one of {', '.join(map(str, BITS_ALLOCATED))}")
    if not 1 <= bits_stored <= bits_allocated:
        raise _invalid("BitsStored", bits_stored, f"between 1 and BitsAllocated ({bits_allocated})")
    if photometric not in PHOTOMETRIC_SAMPLES:
        raise IngestError(422, "unsupported_photometric",
                          f"PhotometricInterpretation {_shown(photometric)} is not one this platform reads "
                          f"({', '.join(sorted(PHOTOMETRIC_SAMPLES))}).")
    if samples != PHOTOMETRIC_SAMPLES[photometric]:
        raise _invalid("SamplesPerPixel", samples, f"{PHOTOMETRIC_SAMPLES[photometric]} for {photometric}")
    return PixelLayout(rows, columns, frames, samples, bits_allocated, bits_stored, photometric)


def decode_grey(ds, layout: PixelLayout, *, full: bool) -> np.ndarray:
    """Decode the pixel data and prove it becomes one grey frame; full=False checks every 8th pixel only
    (the whole normalization is the slow part, done later off the request path)."""
    pixels = ds.pixel_array
    if tuple(pixels.shape) != layout.decoded_shape():
        raise ValueError(f"decoded shape {tuple(pixels.shape)} does not match the declared {layout.decoded_shape()}")
    if not full:
        step = SAMPLED_CHECK_STEP
        pixels = pixels[..., ::step, ::step, :] if layout.samples > 1 else pixels[..., ::step, ::step]
    unit = dicom_to_unit(ds, pixels)
    if full and unit.shape != (layout.rows, layout.columns):
        raise ValueError(f"normalized shape {unit.shape} is not {layout.rows}×{layout.columns}")
    return unit


def check_uid(ds, keyword: str) -> str:
    """A UID element as stored: empty when absent, else at most 64 characters of digits and dots."""
    value = str(ds.get(keyword, "") or "").strip().rstrip("\0")
    if value and (len(value) > UID_MAX or not _UID.match(value)):
        raise IngestError(422, "invalid_uid", f"{keyword} {_shown(value)} is not a valid UID "
                          f"(at most {UID_MAX} characters, digits in dot-separated parts without leading zeros).")
    return value


def check_code_string(ds, keyword: str) -> str:
    value = str(ds.get(keyword, "") or "").strip()
    if len(value) > CODE_STRING_MAX or not _CODE_STRING.match(value):
        raise IngestError(422, "invalid_element", f"{keyword} {_shown(value)} is not a DICOM code string "
                          f"(at most {CODE_STRING_MAX} upper-case letters, digits, spaces or underscores).")
    return value


def spacing_mm(ds) -> float | None:
    """The row spacing of PixelSpacing (or ImagerPixelSpacing) in mm; None when absent or not a positive number."""
    from pydicom.multival import MultiValue

    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            value = ds.get(keyword)
            if value is None or value == "":
                continue
            spacing = float(value[0] if isinstance(value, (MultiValue, list, tuple)) else value)
        except Exception:  # noqa: BLE001, S112 — a garbled optional value is ignored, not stored
            continue
        if math.isfinite(spacing) and 0 < spacing < 1000:
            return spacing
    return None


def _int(ds, keyword: str, default: int | None = None) -> int:
    raw = ds.get(keyword)
    if raw in (None, ""):
        if default is None:
            raise IngestError(422, "invalid_element", f"{keyword} is missing.")
        return default
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise _invalid(keyword, raw, "a whole number") from exc


def _invalid(keyword: str, value, expected: str) -> IngestError:
    return IngestError(422, "invalid_element", f"{keyword} is {_shown(value)}; it must be {expected}.")


def _shown(value) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return repr(text if len(text) <= 80 else text[:79] + "…")
