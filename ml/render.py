"""PNG renderings for the browser: attention heatmap overlays and hand masks."""
from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def heatmap_rgb(map_: np.ndarray) -> np.ndarray:
    """H×W float → H×W×3 uint8 'jet' colours, min-max normalised (a constant map is all blue)."""
    m = np.asarray(map_, dtype=np.float32)
    low, high = float(np.nanmin(m)), float(np.nanmax(m))
    unit = (m - low) / (high - low) if high > low else np.zeros_like(m)
    return (colormaps["jet"](np.nan_to_num(unit))[..., :3] * 255).astype(np.uint8)


def heatmap_png_bytes(map_: np.ndarray, image: np.ndarray | None = None, alpha: float = 0.45) -> bytes:
    """Attention map (H×W) as a PNG; with `image` (H×W float [0, 1]) blended over the grey radiograph."""
    rgb = heatmap_rgb(map_).astype(np.float32)
    if image is not None:
        image = np.asarray(image, dtype=np.float32)
        if image.shape != map_.shape:
            raise ValueError(f"image shape {image.shape} != map shape {map_.shape}")
        grey = np.repeat(np.clip(image, 0, 1)[..., None] * 255, 3, axis=2)
        rgb = (1 - alpha) * grey + alpha * rgb
    return _png(np.clip(rgb, 0, 255).astype(np.uint8))


def mask_png_bytes(mask: np.ndarray) -> bytes:
    """Mask (H×W, nonzero = hand) → 8-bit grey PNG, 0 / 255."""
    return _png(((np.asarray(mask) > 0) * 255).astype(np.uint8))
