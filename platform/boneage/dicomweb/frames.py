"""Frames of an instance as raw little-endian pixels (application/octet-stream), compressed or not on disk."""
from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from boneage.core.errors import AppError


class FrameError(AppError):
    """A frame request refused (boneage.core.errors)."""


def frame_bytes(ds: Dataset, numbers: list[int]) -> list[bytes]:
    if "PixelData" not in ds:
        raise FrameError(404, "no_pixel_data", "This instance has no pixel data, so no frames.")
    count = int(ds.get("NumberOfFrames", 1) or 1)
    bad = [n for n in numbers if not 1 <= n <= count]
    if bad:
        raise FrameError(404, "no_such_frame", f"Frame(s) {', '.join(map(str, bad))} do not exist; the instance has {count}.")
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        pixels = ds.pixel_array.reshape(count, *ds.pixel_array.shape[-2:]) if count > 1 else ds.pixel_array[np.newaxis]
        return [np.ascontiguousarray(pixels[n - 1]).astype(pixels.dtype.newbyteorder("<")).tobytes() for n in numbers]
    data = bytes(ds.PixelData)
    if int(ds.BitsAllocated) == 1:  # a binary SEG: frames are packed bits, not byte-aligned in general
        bits = int(ds.Rows) * int(ds.Columns)
        unpacked = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
        return [np.packbits(unpacked[(n - 1) * bits:n * bits], bitorder="little").tobytes() for n in numbers]
    size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * (int(ds.BitsAllocated) // 8)
    return [data[(n - 1) * size:n * size] for n in numbers]
