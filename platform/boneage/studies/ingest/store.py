"""Files of a study: the ingest's display copy. Writing and removing stored files is boneage.core.storage's (one
atomic writer, one PNG encoder); the names below stay importable from here."""
from __future__ import annotations

import numpy as np
from PIL import Image as PILImage

from boneage.core.storage import delete_quietly, png_bytes, save_atomic

__all__ = ["delete_quietly", "display_array", "png_bytes", "save_atomic"]


def display_array(unit: np.ndarray, max_side: int) -> np.ndarray:
    """An 8-bit copy no larger than max_side on its long side (area-averaged), for the worklist and viewer."""
    height, width = unit.shape
    scale = min(1.0, max_side / max(height, width))
    image8 = np.round(np.clip(unit, 0, 1) * 255).astype(np.uint8)
    if scale >= 1.0:
        return image8
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(PILImage.fromarray(image8).resize(size, PILImage.Resampling.BOX))
