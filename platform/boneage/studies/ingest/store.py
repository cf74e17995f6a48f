"""Files of a study: the ingest's display copy. Writing and removing stored files is boneage.core.storage's (one
atomic writer, one PNG encoder); the names below stay importable from here."""
from __future__ import annotations

import numpy as np
from PIL import Image as PILImage

from boneage.core.storage import delete_quietly, png_bytes, save_atomic
from ml.imaging import unit_to_uint16

__all__ = ["delete_quietly", "display_array", "film_pngs", "png_bytes", "save_atomic"]


def film_pngs(unit: np.ndarray, display_max_side: int) -> tuple[bytes, bytes, tuple[int, int]]:
    """A decoded film's normalized 16-bit PNG (its own size), its 8-bit display PNG and the display's shape."""
    shown = display_array(unit, display_max_side)
    return png_bytes(unit_to_uint16(unit)), png_bytes(shown, compress_level=3), (int(shown.shape[0]), int(shown.shape[1]))


def display_array(unit: np.ndarray, max_side: int) -> np.ndarray:
    """An 8-bit copy no larger than max_side on its long side (area-averaged), for the worklist and viewer."""
    height, width = unit.shape
    scale = min(1.0, max_side / max(height, width))
    image8 = np.round(np.clip(unit, 0, 1) * 255).astype(np.uint8)
    if scale >= 1.0:
        return image8
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(PILImage.fromarray(image8).resize(size, PILImage.Resampling.BOX))
