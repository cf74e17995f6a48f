"""Reading radiographs into one convention: float32 in [0, 1], bright bone on a dark background.

Shared by the training data loader and the platform's ingest so both see identical pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def dicom_to_unit(ds, pixels: np.ndarray | None = None) -> np.ndarray:
    """Pixel data of a pydicom Dataset → (H, W) float32 in [0, 1], bright bone.

    Applies the modality LUT (rescale slope/intercept), then the VOI LUT or window when the file
    has one, and inverts MONOCHROME1 so that the result looks the same whatever the photometric
    interpretation. Multi-frame objects keep their first frame; colour (RGB, YBR converted to RGB by
    pydicom, PALETTE COLOR through its LUT) becomes its luminance. `pixels`: the decoded array when the
    caller has it already. Raises ValueError when the result is not one 2-D frame.
    """
    values = dicom_values(ds, pixels)
    with np.errstate(over="ignore", invalid="ignore"):  # absurd rescale values overflow float32: to_unit drops them
        unit = to_unit(np.asarray(values, dtype=np.float32))
    if unit.ndim != 2:
        raise ValueError(f"expected one 2-D grey frame, got shape {unit.shape}")
    if str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        unit = 1.0 - unit
    return unit


def dicom_values(ds, pixels: np.ndarray | None = None) -> np.ndarray:
    """The first grey frame in the file's own values: the modality LUT (rescale), then the VOI LUT or window when the
    file has one."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    grey = grey_frame(ds, ds.pixel_array if pixels is None else pixels)
    values = apply_modality_lut(grey, ds)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        values = apply_voi_lut(values, ds, prefer_lut=True)
    return values


def dicom_black_white(ds, pixels: np.ndarray | None = None) -> tuple[float, float]:
    """The file's values that dicom_to_unit maps to 0 (black) and 1 (white): its min and max, swapped for
    MONOCHROME1 (inverted so that bone is bright). A viewer states window/level in these values."""
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(dicom_values(ds, pixels), dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        return high, low
    return low, high


def grey_frame(ds, pixels: np.ndarray) -> np.ndarray:
    """The first frame of a decoded pixel array, as one grey channel: (H, W)."""
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1 and pixels.ndim == (3 if samples == 1 else 4):
        pixels = pixels[0]
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "PALETTE COLOR" and pixels.ndim == 2:
        from pydicom.pixels import apply_color_lut

        pixels = apply_color_lut(pixels, ds)
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):  # colour: luminance is what a radiograph carries
        pixels = pixels[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if pixels.ndim != 2:
        raise ValueError(f"expected one 2-D grey frame, got shape {pixels.shape}")
    return pixels


def to_unit(values: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] float32; a constant image becomes zeros."""
    values = np.asarray(values)
    finite = np.isfinite(values)
    if not finite.all():  # inf/NaN (absurd rescale values): they carry no contrast
        values = np.where(finite, values, 0)
    low, high = float(values.min()), float(values.max())
    if not high > low:
        return np.zeros(values.shape, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        unit = ((values - low) / (high - low)).astype(np.float32)
    return np.clip(np.nan_to_num(unit, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def raster_to_unit(image: Image.Image) -> np.ndarray:
    """A Pillow image (8- or 16-bit grey, RGB) → float32 in [0, 1] on its own bit depth's scale."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float32)
        return np.clip(array / 65535.0, 0.0, 1.0)
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image, dtype=np.float32) / 255.0


def load_image(path: str | Path) -> np.ndarray:
    """Any radiograph file this project reads (PNG/JPEG 8 or 16 bit, DICOM) → float32 [0, 1]."""
    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom"):
        import pydicom

        return dicom_to_unit(pydicom.dcmread(path))
    with Image.open(path) as image:
        image.load()
        return raster_to_unit(image)


def unit_to_uint16(unit: np.ndarray) -> np.ndarray:
    return np.round(np.clip(unit, 0.0, 1.0) * 65535.0).astype(np.uint16)


def unit_to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
