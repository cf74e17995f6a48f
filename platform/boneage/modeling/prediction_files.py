"""A prediction's files: the hand mask and six attention overlays as PNGs, rendered now or on first view.

A study predicted alone (on ingest, streamed live) gets all seven PNGs at once. A batch re-prediction after a
promotion writes the mask and one small 'attention sheet' instead: the six maps' colour indices stacked in one
grey PNG. Each overlay is drawn from the sheet the first time somebody opens it. Most of a 12,611-study project's
overlays are never looked at, and writing six files per study cost more than the rest of the study's storage.
"""
from __future__ import annotations

import io

import numpy as np
from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image as PILImage

from boneage.core.storage import delete_quietly, list_files, png_bytes, save_atomic
from boneage.modeling import conf
from boneage.modeling.models import ActiveScore, Prediction
from boneage.studies.models import Study
from ml.attention_names import ATTENTION_NAMES

ATTENTION_PARTS = ATTENTION_NAMES  # the paper's six modules, as the network names its maps
PREDICTION_FILES = ("mask", *ATTENTION_PARTS)
SHEET = "attention-sheet"  # not served: the overlays are
OVERLAY_ALPHA = 150


def heatmap_side(predictor) -> int:
    """The overlays' grid: twice the finest attention map's cells (64 for the default network, whose Att1_1 has 32
    across its crop), at most HEATMAP_MAX_SIDE. A finer grid only interpolates: 128 cost a 512-px study 4× the cells
    to paste and encode for the same picture once the browser scales it up."""
    return min(conf.HEATMAP_MAX_SIDE, 2 * predictor.attention_cells) or conf.HEATMAP_MAX_SIDE


def prediction_file_name(study: Study, version_id: int, part: str) -> str:
    """Deterministic storage name of a prediction PNG: a second run overwrites the same file."""
    return f"predictions/{study.project_id}/{study.pk}/v{version_id}/{part}.png"


def prediction_files_of_deleted_study(sender, study: Study, **kwargs) -> list[str]:
    """core.signals.study_deleting: every prediction file of the study (all versions), removed once its deletion
    commits."""
    return [stored.name for stored in list_files(f"predictions/{study.project_id}/{study.pk}")]


def forget_readings_of_reframed_study(sender, study_id: int, **kwargs) -> None:
    """core.signals.study_reframed: the study's film is read in another frame (turned or inverted), so every reading
    made in the old one (its age, mask, box, attention maps and next-case scores) is gone with the change, and its files
    once the change commits; the pipeline reads the study again."""
    study = Study.objects.filter(pk=study_id).first()
    if study is None:
        return
    names = prediction_files_of_deleted_study(sender, study)
    Prediction.objects.filter(study_id=study_id).delete()
    ActiveScore.objects.filter(study_id=study_id).delete()
    transaction.on_commit(lambda: delete_quietly(names))


def prediction_file_url(study_id: int, version_id: int, part: str) -> str:
    return f"/api/studies/{study_id}/predictions/{version_id}/{part}.png"


def save_derived(name: str, data: bytes) -> str:
    """Atomic but not fsynced: prediction PNGs are derived data that a re-run recreates."""
    return save_atomic(name, data, durable=False)


def fast_png(array: np.ndarray) -> bytes:
    """Fast PNG (zlib level 1): these files are rewritten on every promotion, speed beats size."""
    return png_bytes(array, compress_level=1)


_JET: np.ndarray | None = None


def jet_lut() -> np.ndarray:
    """matplotlib's 'jet' as a 256×3 uint8 table (the same colours as ml.render.heatmap_rgb, ~10× faster)."""
    global _JET
    if _JET is None:
        from matplotlib import colormaps

        _JET = (colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    return _JET


def heat_index(map_: np.ndarray) -> np.ndarray:
    """A map → uint8 colour indices (min-max), no larger than HEATMAP_MAX_SIDE (the predictor is asked for maps
    of that size; a larger map is subsampled)."""
    step = max(1, int(np.ceil(max(map_.shape) / conf.HEATMAP_MAX_SIDE)))
    small = np.nan_to_num(np.asarray(map_[::step, ::step], np.float32))
    low, high = float(small.min()), float(small.max())
    if high <= low:
        return np.zeros(small.shape, np.uint8)
    return ((small - low) * (255.0 / (high - low))).astype(np.uint8)


def overlay_png(index: np.ndarray) -> bytes:
    """Colour indices → an RGBA 'jet' overlay; the browser scales it to the radiograph's box."""
    rgba = np.empty((*index.shape, 4), np.uint8)
    rgba[..., :3] = jet_lut()[index]
    rgba[..., 3] = OVERLAY_ALPHA
    return fast_png(rgba)


def heatmap_png(map_: np.ndarray) -> bytes:
    """The attention map as an RGBA 'jet' overlay (min-max). The maps are coarse by nature (Att3_* are 8×8 on a
    64 px crop), so a small PNG loses nothing."""
    return overlay_png(heat_index(map_))


def mask_png(mask: np.ndarray) -> bytes:
    """A 1-bit PNG (black background, white hand): a quarter of the grey PNG's encoding time and size; readers that
    convert to "L" see 0/255 as before."""
    buffer = io.BytesIO()
    PILImage.fromarray(np.asarray(mask) > 0).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def sheet_png(attention: dict[str, np.ndarray]) -> bytes:
    """The six maps' colour indices, stacked top to bottom in ATTENTION_PARTS order, as one grey PNG."""
    return fast_png(np.concatenate([heat_index(attention[part]) for part in ATTENTION_PARTS], axis=0))


def overlay_from_sheet(sheet: bytes, part: str) -> bytes:
    stacked = np.asarray(PILImage.open(io.BytesIO(sheet)).convert("L"))
    rows = stacked.shape[0] // len(ATTENTION_PARTS)
    at = ATTENTION_PARTS.index(part) * rows
    return overlay_png(stacked[at:at + rows])


def ensure_prediction_file(study: Study, version_id: int, part: str) -> str | None:
    """The stored name of a prediction PNG, drawing an attention overlay from the study's sheet when only the sheet
    exists; None when neither does. Two viewers at once both draw it: the write is atomic, each reads a whole file."""
    name = prediction_file_name(study, version_id, part)
    if default_storage.exists(name):
        return name
    sheet_name = prediction_file_name(study, version_id, SHEET)
    if part not in ATTENTION_PARTS or not default_storage.exists(sheet_name):
        return None
    with default_storage.open(sheet_name, "rb") as handle:
        return save_derived(name, overlay_from_sheet(handle.read(), part))
