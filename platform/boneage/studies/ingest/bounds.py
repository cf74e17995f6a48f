"""The shapes a hand film can have: decided once, at ingest, from the header alone, before any pixel is decoded.

Every later reader (the display copy, the thumbnail, the network's work copy, the automask, the predictor's masks
and attention maps, DICOMweb frames) sizes its work from a film inside these bounds, so a file outside them is
refused here with its reason instead of taking a process down later: a 65535 × 1 film once made the work copy's
square canvas 65535 × 65535 float32 (17 GB) and the web server was killed for it (issue 34).

| bound | value | refused as |
|---|---|---|
| each side | MIN_SIDE (8) to MAX_SIDE (8192) pixels | `absurd_dimensions` |
| pixels of all frames | `UPLOAD_MAX_PIXELS` (64 million) | `absurd_dimensions` |
| longer side / shorter side | at most MAX_ASPECT (8) | `extreme_aspect_ratio` |
| frames | at most MAX_FRAMES (64; only the first is kept) | `too_many_frames` |
| bytes of the decoded pixel data | at most MAX_DECODED_BYTES (256 MiB) | `decoded_too_large` |
| bits | BitsAllocated 1, 8, 16 or 32; 1 ≤ BitsStored ≤ BitsAllocated (elements.check_pixel_layout) | `invalid_element` |

A hand radiograph is 1,000–5,000 pixels a side at 0.1–0.2 mm and about 1:1.3; 8192 leaves room for 0.05-mm
detectors, 8:1 for a film cropped to a finger. The square canvas the work copy is made on is then at most
MAX_SIDE² float32 (256 MiB), the largest intermediate any derivation makes.
"""
from __future__ import annotations

from boneage.studies.ingest.errors import IngestError

MIN_SIDE = 8
MAX_SIDE = 8192
MAX_ASPECT = 8.0
MAX_FRAMES = 64
MAX_DECODED_BYTES = 256 * 1024 * 1024


def check_bounds(rows: int, columns: int, *, frames: int = 1, samples: int = 1, bits_allocated: int = 8,
                 max_pixels: int) -> None:
    """Refuse (IngestError 422) a film whose declared shape no reader here is sized for; nothing is decoded."""
    shape = f"{columns}×{rows} pixels" + (f" in {frames} frames" if frames != 1 else "")
    if rows <= 0 or columns <= 0 or frames <= 0:
        raise IngestError(422, "absurd_dimensions", f"The image declares {shape}: an image has at least one of each.")
    longer, shorter = max(rows, columns), min(rows, columns)
    if longer / shorter > MAX_ASPECT:
        raise IngestError(422, "extreme_aspect_ratio",
                          f"The image declares {columns}×{rows} pixels: its longer side is {longer / shorter:,.1f} times "
                          f"its shorter; a hand film's is at most {MAX_ASPECT:g} times.")
    if shorter < MIN_SIDE:
        raise IngestError(422, "absurd_dimensions",
                          f"The image declares {columns}×{rows} pixels; a hand film is at least {MIN_SIDE} pixels a side.")
    if longer > MAX_SIDE:
        raise IngestError(422, "absurd_dimensions",
                          f"The image declares {columns}×{rows} pixels; a hand film is at most {MAX_SIDE} pixels a side.")
    if rows * columns * frames > max_pixels:
        raise IngestError(422, "absurd_dimensions",
                          f"The image declares {shape}, over the limit of {max_pixels:,} pixels.")
    if frames > MAX_FRAMES:
        raise IngestError(422, "too_many_frames",
                          f"The file declares {frames:,} frames; a hand film is one (at most {MAX_FRAMES} are read, "
                          "and only the first is kept).")
    decoded = rows * columns * frames * samples * max(1, bits_allocated // 8)
    if decoded > MAX_DECODED_BYTES:
        raise IngestError(422, "decoded_too_large",
                          f"The pixel data decodes to {decoded:,} bytes ({shape}, {samples} sample(s) of "
                          f"{bits_allocated} bits); the limit is {MAX_DECODED_BYTES:,}.")
