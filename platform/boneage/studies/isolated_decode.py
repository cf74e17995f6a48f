"""Decoding a stored film's pixels, always in a child process with a memory and a time limit (core.isolation, issue 34).

Every decode of a stored file runs here, for the web process (a study's first view, DICOMweb /rendered and frames)
and for the worker alike: what a native decoder does with a hostile file (crash, hang, ask for 15 GB) then ends one
child with a reason (`decode_crashed`, `decode_timed_out`, `decode_out_of_memory`) that the study records, never the
server. The child imports no Django model and no torch (about half a second to start); the limits are the typed
settings DECODE_MEMORY_MB, DECODE_TIMEOUT_S and DECODE_CONCURRENCY (docs/scaling.md).

Run as `python -m boneage.studies.isolated_decode '{"task": "derive" | "frames", …}'` by run_isolated only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from boneage.core.isolation import Answer, Limits, run_isolated

ISOLATION_CODES = frozenset({"decode_crashed", "decode_timed_out", "decode_out_of_memory"})


@dataclass(frozen=True)
class DecodedFilm:
    """What deriving needs from a stored film, made in the child: the 16-bit normalized PNG (the film's own size) and
    the 8-bit display PNG (at most DISPLAY_MAX_SIDE on its long side), and the window readout."""

    normalized: bytes
    display: bytes
    display_shape: tuple[int, int]
    black_white: tuple[float, float] | None


def limits() -> Limits:
    return Limits(memory_bytes=settings.DECODE_MEMORY_MB * 2**20, seconds=float(settings.DECODE_TIMEOUT_S))


def decode_film(data: bytes, *, turns: int = 0, inverted: bool = False, hand: str = "") -> DecodedFilm:
    """The derived PNGs of a stored original, in the frame the platform reads it (studies.frame: inverted, then turned
    by np.rot90 `turns`, then only the `hand` half kept, the other dark); IngestError-like AppError when ingest's
    checks refuse it now, IsolatedFailure when the decoder crashed, hung or ran out of memory."""
    params = {"task": "derive", "max_pixels": settings.UPLOAD_MAX_PIXELS, "display_max_side": settings.DISPLAY_MAX_SIDE,
              "turns": int(turns) % 4, "inverted": bool(inverted), "hand": hand}
    meta, (normalized, display) = run_isolated(__name__, data, params, limits(),
                                               concurrency=settings.DECODE_CONCURRENCY)
    black_white = meta.get("black_white")
    return DecodedFilm(normalized=normalized, display=display,
                       display_shape=(int(meta["display_shape"][0]), int(meta["display_shape"][1])),
                       black_white=(float(black_white[0]), float(black_white[1])) if black_white else None)


def decode_frames(data: bytes, numbers: list[int]) -> list[bytes]:
    """Frames (1-based) of a compressed DICOM instance as raw little-endian pixels."""
    _, frames = run_isolated(__name__, data, {"task": "frames", "numbers": numbers}, limits(),
                             concurrency=settings.DECODE_CONCURRENCY)
    return frames


# --- the child ----------------------------------------------------------------------------------------------------


def _derive(data: bytes, params: dict[str, Any]) -> Answer:
    import numpy as np

    from boneage.studies.ingest.decode import decode_upload
    from boneage.studies.ingest.store import film_pngs

    decoded = decode_upload(data, max_pixels=int(params["max_pixels"]))
    assert decoded.unit is not None
    unit, black_white = decoded.unit, decoded.black_white
    if params.get("inverted"):  # the frame the platform reads (studies.frame): in place, no second full-size copy
        np.subtract(1.0, unit, out=unit)
        black_white = (black_white[1], black_white[0]) if black_white else None
    if int(params.get("turns", 0)) % 4:
        unit = np.rot90(unit, int(params["turns"]) % 4)  # a view; the PNG encoders copy it once
    if params.get("hand") in ("left", "right"):  # two hands: read the picked one, the other half dark
        half = unit.shape[1] // 2  # studies.frame.Frame.other_half
        unit[:, slice(half, None) if params["hand"] == "left" else slice(0, half)] = 0.0
    normalized, display, display_shape = film_pngs(unit, int(params["display_max_side"]))
    meta = {"display_shape": list(display_shape), "black_white": list(black_white) if black_white else None}
    return meta, [normalized, display]


def _frames(data: bytes, params: dict[str, Any]) -> Answer:
    import io

    import numpy as np
    import pydicom

    from boneage.studies.ingest.errors import refusing

    with refusing(422, "pixel_decode_failed", "The pixel data cannot be decoded"):
        ds = pydicom.dcmread(io.BytesIO(data))
        count = int(ds.get("NumberOfFrames", 1) or 1)
        pixels = ds.pixel_array
        frames = pixels.reshape(count, *pixels.shape[-2:]) if count > 1 else pixels[np.newaxis]
        return {}, [np.ascontiguousarray(frames[n - 1]).astype(frames.dtype.newbyteorder("<")).tobytes()
                    for n in params["numbers"]]


def _work(data: bytes, params: dict[str, Any]) -> Answer:
    return (_derive if params["task"] == "derive" else _frames)(data, params)


def _warm_up() -> None:
    """Load what every decode needs before the limit is set, so the limit is spent on the film's pixels."""
    import numpy as np
    import pydicom.pixels  # noqa: F401

    from boneage.studies.ingest.decode import decode_upload  # noqa: F401
    from boneage.studies.ingest.store import film_pngs

    film_pngs(np.zeros((16, 16), np.float32), 8)


if __name__ == "__main__":
    from boneage.core.isolation import serve

    serve(_work, warm_up=_warm_up)
