"""Helpers of the review tests (plain functions; fixtures are in conftest.py)."""
from __future__ import annotations

import itertools

import numpy as np

_counter = itertools.count(1)


def mask_file(array: np.ndarray) -> str:
    """Store a 0/255 PNG of a boolean mask, as a prediction's mask file."""
    from boneage.studies.ingest.store import png_bytes, save_atomic

    return save_atomic(f"predictions/test/{next(_counter)}.png", png_bytes(np.where(array, 255, 0).astype(np.uint8)))


def rectangle(box, shape=(48, 64)) -> np.ndarray:
    y0, y1, x0, x1 = box
    array = np.zeros(shape, bool)
    array[y0:y1, x0:x1] = True
    return array


def open_items(study, reason=None):
    from boneage.review.models import ReviewItem

    items = ReviewItem.objects.filter(study=study, state="open")
    return list(items.filter(reason=reason) if reason else items)
