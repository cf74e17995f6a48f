"""Inference with a trained unified network: age, calibrated std, hand mask/box, six attention maps.

`Predictor.predict_stream` yields each part as soon as it is computed, so the platform can publish
prediction.mask → prediction.age → prediction.attention ×6 → prediction.ready events live.
"""
from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ml.checkpoint import Checkpoint, load_checkpoint
from ml.data import to_square
from ml.models import paste_to_image
from ml.ood import UNKNOWN, OODReference, OODResult, pixel_statistics
from ml.tta import spread, view_ages
from ml.uncertainty import calibrated_std, check_method, mc_std


@dataclass(frozen=True)
class WorkImage:
    """An image already padded to a square and resized to the network's work size (what `to_square` makes), with the
    original's height and width: the predictor skips decoding and resizing the full-size image. Masks, boxes and
    attention maps still come out in the original's coordinates."""
    square: np.ndarray   # float32 side×side in [0, 1]
    height: int
    width: int


def work_image(unit: np.ndarray, side: int) -> WorkImage:
    """The full-size image (float [0, 1], H×W) as the predictor of a network with work size `side` would prepare it."""
    square, _, _ = to_square(np.clip(np.asarray(unit, np.float32), 0, 1), side, "bilinear")
    return WorkImage(square, int(unit.shape[0]), int(unit.shape[1]))


@dataclass
class Prediction:
    age_months: float
    std_months: float
    mask: np.ndarray                          # uint8 0/255, H×W in image coordinates
    box: tuple[float, float, float, float]    # x0, y0, x1, y1 in image pixels
    score: float                              # detection score (0: no hand found, whole image used)
    attention: dict[str, np.ndarray] = field(default_factory=dict)  # name → float32 H×W logits
    timings: dict[str, float] = field(default_factory=dict)         # ms
    # float32 [C]: the plain view's pooled trunk features, the age head's input (ml.active's core-set distances)
    embedding: np.ndarray | None = None
    # outside this model's experience (ml.ood): the flag, its reason in words ("no reference: …" when the checkpoint
    # cannot tell, then outside is False), and the feature distance over the version's threshold (nan: no reference)
    outside: bool = False
    outside_reason: str = UNKNOWN.reason
    ood_score: float = float("nan")
    pixels: np.ndarray | None = None  # ml.ood.pixel_statistics of the film: what its pixels look like to the network


class Predictor:
    """Predictor(ckpt_path, device=None): loads once, predicts many. Device: cuda if available, else cpu."""

    def __init__(self, ckpt_path: str | Path, device: str | torch.device | None = None) -> None:
        self.path = Path(ckpt_path)
        self.checkpoint: Checkpoint = load_checkpoint(ckpt_path)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = self.checkpoint.build().to(self.device).eval()
        self.config = self.checkpoint.model_config
        self.mc_samples = int(self.checkpoint.train_config.get("mc_samples", 8))
        # what the checkpoint's calibration was fitted on (ml.tta); checkpoints from before the setting read "mc"
        self.uncertainty = check_method(str(self.checkpoint.train_config.get("uncertainty", "mc")))
        self.calibration = self.checkpoint.calibration or {"scale": 1.0, "floor": 0.0}
        # what the model has seen (ml.ood); None for checkpoints written before it: every reading then says so
        self.ood_reference: OODReference | None = OODReference.from_payload(self.checkpoint.ood)

    def assess(self, embedding: np.ndarray | None, hand_score: float | None,
               mask_quality: float | None = None, pixels: np.ndarray | None = None) -> OODResult:
        """Is this film outside the model's experience? (ml.ood; UNKNOWN without a reference in the checkpoint.)"""
        if self.ood_reference is None:
            return UNKNOWN
        return self.ood_reference.assess(embedding, hand_score, mask_quality, pixels)

    @functools.cached_property
    def attention_cells(self) -> int:
        """The finest attention map's side in cells (Att1_1: 32 on a 128 px crop; 0 without attention): a grid of
        twice that over the image holds everything the maps show, since a map never covers more than the image."""
        size = self.config.crop_size
        with torch.no_grad():
            out = self.model.regressor(torch.zeros(1, 1, size, size, device=self.device), self._sex([True], self.device))
        return max((int(m.shape[-1]) for m in out.attention.values()), default=0)

    def _prepare(self, images: Sequence[np.ndarray | WorkImage]) -> tuple[torch.Tensor, list[tuple[int, int, float]]]:
        batch, geometry = [], []
        side = self.config.work_size
        for image in images:
            if isinstance(image, WorkImage):
                if image.square.shape != (side, side):
                    raise ValueError(f"a work image of {image.square.shape} for a network that works at {side}×{side}")
                batch.append(torch.from_numpy(np.asarray(image.square, np.float32)))
                geometry.append((image.height, image.width, side / max(image.height, image.width)))
                continue
            image = np.asarray(image, dtype=np.float32)
            if image.ndim != 2:
                raise ValueError(f"expected a 2-D grey image, got shape {image.shape}")
            square, scale, _ = to_square(np.clip(image, 0, 1), self.config.work_size, "bilinear")
            batch.append(torch.from_numpy(square))
            geometry.append((image.shape[0], image.shape[1], scale))
        return torch.stack(batch)[:, None].to(self.device), geometry

    @staticmethod
    def _sex(males: Sequence[bool | None], device: torch.device) -> torch.Tensor:
        return torch.tensor([0.0 if m is None else (1.0 if m else -1.0) for m in males], device=device)

    def _to_image(self, map_: torch.Tensor, crop_box: torch.Tensor, geom: tuple[int, int, float],
                  side: int | None = None) -> np.ndarray:
        """A map on the work canvas's crop → float32 on the original image: H×W, or with `side` a grid that covers it
        with one cell per `step` pixels, step = ceil(max(H, W) / side) (the maps are 8×8–32×32 on the crop, so a
        full-size paste computes millions of interpolated values nobody sees: 0.65 ms a map at 512 px)."""
        h, w, scale = geom
        step = max(1, math.ceil(max(h, w) / side)) if side else 1
        grid_h, grid_w = math.ceil(h / step), math.ceil(w / step)
        return paste_to_image(map_.float(), crop_box / (scale * step), grid_h, grid_w).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def predict_stream_batch(self, images: Sequence[np.ndarray | WorkImage], males: Sequence[bool | None], *,
                             with_attention: bool = True, mc_samples: int | None = None,
                             attention_side: int | None = None,
                             uncertainty: str | None = None) -> Iterator[tuple[Any, ...]]:
        """Per stage, for a batch: ("mask", masks, boxes, scores) → ("age", ages, stds) →
        ("attention", name, maps) ×6 → ("done", predictions). Lists are per image. `attention_side`: the maps'
        longest side at most this many cells (see _to_image); None: the original image's size. `uncertainty`: "mc"
        or "both" (ml.tta); None: the checkpoint's own, the one its calibration fits. Masks and maps come from the
        plain view."""
        t0 = time.perf_counter()
        x, geometry = self._prepare(images)
        sex = self._sex(males, self.device)
        t1 = time.perf_counter()
        model = self.model
        _, det = model.segment(x)
        crops, crop_boxes = model.crop(x, det)
        masks, boxes = [], []
        for i, (h, w, scale) in enumerate(geometry):
            side = max(h, w)
            m = F.interpolate(det.masks[i:i + 1].float(), size=(side, side), mode="bilinear", align_corners=False)
            masks.append(((m[0, 0, :h, :w] > 0.5).to(torch.uint8) * 255).cpu().numpy())
            bx = (det.boxes[i].float() / scale).cpu().numpy()
            boxes.append((float(np.clip(bx[0], 0, w)), float(np.clip(bx[1], 0, h)),
                          float(np.clip(bx[2], 0, w)), float(np.clip(bx[3], 0, h))))
        scores = [float(s) for s in det.scores]
        t2 = time.perf_counter()
        yield ("mask", masks, boxes, scores)
        out = model.regressor(crops, sex)
        method = self.uncertainty if uncertainty is None else check_method(uncertainty)
        views = view_ages(model, x, sex) if method == "both" else None
        t3 = time.perf_counter()
        n_mc = self.mc_samples if mc_samples is None else mc_samples
        reading = spread(out.age, views, mc_std(model.regressor, crops, sex, n_mc))
        embeddings = out.features.float().cpu().numpy()
        ages = reading.age.cpu().numpy()
        stds = calibrated_std(reading.raw_std.cpu().numpy(), self.calibration)
        t4 = time.perf_counter()
        yield ("age", [float(a) for a in ages], [float(s) for s in stds])
        attention: list[dict[str, np.ndarray]] = [{} for _ in geometry]
        if with_attention:
            for name, maps in out.attention.items():
                per_image = [self._to_image(maps[i], crop_boxes[i], g, attention_side) for i, g in enumerate(geometry)]
                for i, a in enumerate(per_image):
                    attention[i][name] = a
                yield ("attention", name, per_image)
        t5 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) * 1e3, "segment": (t2 - t1) * 1e3, "regress": (t3 - t2) * 1e3,
                   "uncertainty": (t4 - t3) * 1e3, "attention": (t5 - t4) * 1e3, "total": (t5 - t0) * 1e3}
        pixels = pixel_statistics(x.cpu(), crops.cpu())
        verdicts = [self.assess(embeddings[i], scores[i], pixels=pixels[i]) for i in range(len(geometry))]
        preds = [Prediction(float(ages[i]), float(stds[i]), masks[i], boxes[i], scores[i], attention[i], dict(timings),
                            embeddings[i], v.outside, v.reason, v.score, pixels[i]) for i, v in enumerate(verdicts)]
        yield ("done", preds)

    def predict_stream(self, image: np.ndarray, male: bool | None, *, with_attention: bool = True,
                       mc_samples: int | None = None, attention_side: int | None = None,
                       uncertainty: str | None = None) -> Iterator[tuple[Any, ...]]:
        """("mask", mask, box, score) → ("age", age, std) → ("attention", name, map) ×6 → ("done", Prediction)."""
        for event in self.predict_stream_batch([image], [male], with_attention=with_attention, mc_samples=mc_samples,
                                               attention_side=attention_side, uncertainty=uncertainty):
            kind = event[0]
            if kind == "mask":
                yield ("mask", event[1][0], event[2][0], event[3][0])
            elif kind == "age":
                yield ("age", event[1][0], event[2][0])
            elif kind == "attention":
                yield ("attention", event[1], event[2][0])
            else:
                yield ("done", event[1][0])

    def predict(self, image: np.ndarray, male: bool | None, *, with_attention: bool = True,
                mc_samples: int | None = None, attention_side: int | None = None,
                uncertainty: str | None = None) -> Prediction:
        return self.predict_batch([image], [male], with_attention=with_attention, mc_samples=mc_samples,
                                  attention_side=attention_side, uncertainty=uncertainty)[0]

    def predict_batch(self, images: Sequence[np.ndarray | WorkImage], males: Sequence[bool | None], *,
                      with_attention: bool = True, mc_samples: int | None = None,
                      attention_side: int | None = None, uncertainty: str | None = None) -> list[Prediction]:
        if len(images) != len(males):
            raise ValueError(f"{len(images)} images but {len(males)} sex values")
        if not len(images):
            return []
        result: list[Prediction] = []
        for event in self.predict_stream_batch(images, males, with_attention=with_attention, mc_samples=mc_samples,
                                               attention_side=attention_side, uncertainty=uncertainty):
            if event[0] == "done":
                result = event[1]
        return result
