"""Files of a study: written atomically (temp name, fsync, rename) and removed together on failure."""
from __future__ import annotations

import io
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from PIL import Image as PILImage

logger = logging.getLogger(__name__)


def save_atomic(name: str, data: bytes) -> str:
    """Write bytes under `name` in the default storage; a reader never sees a partial file."""
    if isinstance(default_storage, FileSystemStorage):
        path = Path(default_storage.path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return name
    # Object stores (S3) publish an object only once its upload completes: already atomic.
    return default_storage.save(name, ContentFile(data))


def delete_quietly(names: list[str], *, folder: bool = False) -> None:
    """Delete the files; folder=True also removes their folders once empty (object stores have none)."""
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:
            logger.warning("could not delete %s", name, exc_info=True)
    if folder and isinstance(default_storage, FileSystemStorage):
        for parent in {Path(default_storage.path(name)).parent for name in names}:
            try:
                parent.rmdir()
            except OSError:  # not empty (or gone): someone else's files stay
                pass


def png_bytes(array: np.ndarray, *, compress_level: int = 1) -> bytes:
    """uint8 or uint16 greyscale array → PNG bytes. Low compression: ingest speed matters more."""
    image = PILImage.fromarray(array if array.dtype == np.uint16 else array.astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def display_array(unit: np.ndarray, max_side: int) -> np.ndarray:
    """An 8-bit copy no larger than max_side on its long side (area-averaged), for the worklist and viewer."""
    height, width = unit.shape
    scale = min(1.0, max_side / max(height, width))
    image8 = np.round(np.clip(unit, 0, 1) * 255).astype(np.uint8)
    if scale >= 1.0:
        return image8
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(PILImage.fromarray(image8).resize(size, PILImage.Resampling.BOX))
