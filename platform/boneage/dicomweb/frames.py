"""Frames of an instance as raw little-endian pixels (application/octet-stream), compressed or not on disk. A
compressed one is decoded in a child process with a memory and a time limit (studies.isolated_decode, issue 34)."""
from __future__ import annotations

import io

import numpy as np
import pydicom

from boneage.core.errors import AppError
from boneage.studies.isolated_decode import decode_frames


class FrameError(AppError):
    """A frame request refused (boneage.core.errors)."""


def frame_bytes(data: bytes, numbers: list[int]) -> list[bytes]:
    """The frames (1-based) of the stored instance `data`."""
    ds = pydicom.dcmread(io.BytesIO(data))
    if "PixelData" not in ds:
        raise FrameError(404, "no_pixel_data", "This instance has no pixel data, so no frames.")
    count = int(ds.get("NumberOfFrames", 1) or 1)
    bad = [n for n in numbers if not 1 <= n <= count]
    if bad:
        raise FrameError(404, "no_such_frame", f"Frame(s) {', '.join(map(str, bad))} do not exist; the instance has {count}.")
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return decode_frames(data, numbers)
    pixel_data = bytes(ds.PixelData)
    if int(ds.BitsAllocated) == 1:  # a binary SEG: frames are packed bits, not byte-aligned in general
        bits = int(ds.Rows) * int(ds.Columns)
        unpacked = np.unpackbits(np.frombuffer(pixel_data, np.uint8), bitorder="little")
        return [np.packbits(unpacked[(n - 1) * bits:n * bits], bitorder="little").tobytes() for n in numbers]
    size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * (int(ds.BitsAllocated) // 8)
    return [pixel_data[(n - 1) * size:n * size] for n in numbers]
