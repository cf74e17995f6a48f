"""The unified network: image → best hand instance mask → masked, cropped image → regressor → age.

Gradient flow (training):
- L_cls + L_box + L_mask train the Mask R-CNN subnet from the (Canny or expert) ground-truth masks.
- L_reg (L1 in months / `reg_scale`) trains the regressor and, for samples that use the *predicted*
  mask, also flows into the segmenter through the soft mask probabilities that multiply the image
  (mask head → RoI features → FPN/backbone). Box coordinates are detached (cropping is not
  differentiable w.r.t. the box), as are scores.
- Teacher forcing: a per-sample flag replaces the predicted mask and box by the ground truth, so
  the regressor learns on clean crops while the segmenter is still poor. The trainer decays the
  teacher-forcing probability from 1 to 0 over the first epochs (see `TrainConfig`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from ml.models.segmentation import Detection, Segmenter

if TYPE_CHECKING:
    from ml.models.attention import ResidualAttentionNet
    from ml.models.baselines import VGG16Regressor


@dataclass
class UnifiedOutput:
    age: Tensor                      # [B] months
    losses: dict[str, Tensor]        # the Mask R-CNN losses (training only)
    masks: Tensor                    # [B, 1, H, W] soft mask used for the regressor input
    boxes: Tensor                    # [B, 4] crop box before squaring, image pixels
    scores: Tensor                   # [B]
    crop_boxes: Tensor               # [B, 4] square crop box actually resampled to S×S
    attention: dict[str, Tensor]     # name → [B, h, w] logits in crop coordinates
    crops: Tensor                    # [B, 1, S, S] regressor input


def standardize_crops(crops: Tensor) -> Tensor:
    """[B, 1, S, S] → (x − mean) / std over each crop's foreground (x > 1e-3), background stays 0.

    The phantoms (and real radiographs) vary in window/level, gamma and exposure per image; removing
    that per image made the regressor learn ~1.5× faster on 450 phantoms (docs/paper-tables.md).
    """
    fg = (crops > 1e-3).to(crops.dtype)
    n = fg.sum(dim=(1, 2, 3), keepdim=True).clamp(min=1.0)
    mean = (crops * fg).sum(dim=(1, 2, 3), keepdim=True) / n
    var = (((crops - mean) * fg) ** 2).sum(dim=(1, 2, 3), keepdim=True) / n
    return (crops - mean) / var.sqrt().clamp(min=1e-3) * fg


def square_boxes(boxes: Tensor, margin: float) -> Tensor:
    """[B, 4] x0,y0,x1,y1 → square boxes around the same centre, side = max(w, h)·(1 + 2·margin)."""
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).clamp(min=8.0) * (1 + 2 * margin)
    return torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dim=1)


def masked_hand_crops(images: Tensor, masks: Tensor, boxes: Tensor, crop_size: int, margin: float) -> tuple[Tensor, Tensor]:
    """The regressor's input before standardisation: image × mask resampled inside the squared box →
    ([B, 1, S, S], square boxes [B, 4]). One function for the network and the crop cache (ml.crops), so a cached
    crop is exactly what the network would cut from the same image and mask."""
    square = square_boxes(boxes, margin)
    crops = roi_align(images * masks, [bx.unsqueeze(0) for bx in square], output_size=crop_size,
                      spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return crops, square


class UnifiedNet(nn.Module):
    """images [B, 1, H, W] in [0, 1], sex [B] in {-1 female, 0 unknown, +1 male} → UnifiedOutput.

    `segmenter=None` is the "no segmentation subnet" ablation: the whole image is the crop.
    `regressor` (Attention-92 or the VGG-16 baseline): crops [B, 1, S, S], sex [B] → RegressorOutput.
    """

    def __init__(self, segmenter: Segmenter | None, regressor: ResidualAttentionNet | VGG16Regressor, crop_size: int, margin: float = 0.08,
                 standardize: bool = False) -> None:
        super().__init__()
        self.standardize = standardize
        self.segmenter = segmenter
        self.regressor = regressor
        self.crop_size = crop_size
        self.margin = margin
        self.mask_grad = True  # False: the soft mask is detached in the regression path (set by the trainer)

    def segment(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None,
                teacher: Tensor | None = None) -> tuple[dict[str, Tensor], Detection]:
        """Mask R-CNN losses (training) and the detection each sample's crop will use.

        teacher: [B] bool — use the ground-truth mask/box from `targets` for those samples.
        """
        b, _, h, w = images.shape
        if self.segmenter is None:
            return {}, Detection(images.new_ones(b, 1, h, w), images.new_tensor([[0.0, 0.0, w, h]]).expand(b, 4),
                                 images.new_ones(b))
        all_teacher = teacher is not None and bool(teacher.all())
        losses, det = self.segmenter(images, targets, detect=not all_teacher)
        if det is not None and not self.mask_grad:
            det = Detection(det.masks.detach(), det.boxes, det.scores)
        if teacher is None or not bool(teacher.any()):
            assert det is not None
            return losses, det
        assert targets is not None
        gt_masks = torch.stack([t["masks"][0] for t in targets]).unsqueeze(1).to(images.dtype)
        gt_boxes = torch.stack([t["boxes"][0] for t in targets]).to(images.dtype)
        if det is None:
            return losses, Detection(gt_masks, gt_boxes, images.new_ones(b))
        sel = teacher.view(b, 1, 1, 1)
        return losses, Detection(torch.where(sel, gt_masks, det.masks), torch.where(teacher.view(b, 1), gt_boxes, det.boxes),
                                 torch.where(teacher, torch.ones_like(det.scores), det.scores))

    def crop(self, images: Tensor, det: Detection) -> tuple[Tensor, Tensor]:
        """Masked image resampled inside the squared box → ([B, 1, S, S], crop boxes [B, 4]).

        With `standardize` the crop is then standardised per image over its non-zero (hand) pixels.
        """
        if self.segmenter is None:  # whole (square) image: plain resize, exact when sizes match
            size = (self.crop_size, self.crop_size)
            crops = images if images.shape[-2:] == size else F.interpolate(images, size=size, mode="bilinear",
                                                                           align_corners=False, antialias=True)
            return self._standardize(crops), square_boxes(det.boxes, 0.0)
        crops, boxes = masked_hand_crops(images, det.masks, det.boxes, self.crop_size, self.margin)
        return self._standardize(crops), boxes

    def _standardize(self, crops: Tensor) -> Tensor:
        return standardize_crops(crops) if self.standardize else crops

    def forward(self, images: Tensor, sex: Tensor, targets: list[dict[str, Tensor]] | None = None,
                teacher: Tensor | None = None) -> UnifiedOutput:
        losses, det = self.segment(images, targets, teacher)
        crops, boxes = self.crop(images, det)
        out = self.regressor(crops, sex)
        return UnifiedOutput(out.age, losses, det.masks, det.boxes, det.scores, boxes, out.attention, crops)

    def forward_regressor_only(self, images: Tensor, sex: Tensor, targets: list[dict[str, Tensor]]) -> UnifiedOutput:
        """Training step that skips the segmenter: crops from the ground-truth masks (full teacher forcing), no
        segmentation losses. `TrainConfig.seg_every` uses it on the steps where the segmenter does not train —
        the tiny Mask R-CNN is ~70 % of a light-preset step on CPU."""
        b = images.shape[0]
        if self.segmenter is None:
            det = self.segment(images)[1]
        else:
            det = Detection(torch.stack([t["masks"][0] for t in targets]).unsqueeze(1).to(images.dtype),
                            torch.stack([t["boxes"][0] for t in targets]).to(images.dtype), images.new_ones(b))
        crops, boxes = self.crop(images, det)
        out = self.regressor(crops, sex)
        return UnifiedOutput(out.age, {}, det.masks, det.boxes, det.scores, boxes, out.attention, crops)


def paste_to_image(map_: Tensor, crop_box: Tensor, height: int, width: int) -> Tensor:
    """A map over a square crop [h, w] → [height, width] in image coordinates; outside the crop = map min."""
    x0, y0, x1, y1 = (float(v) for v in crop_box)
    side_x, side_y = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    # Resample with an affine grid so fractional and out-of-image crop boxes are handled exactly.
    ys = (torch.arange(height, dtype=map_.dtype, device=map_.device) + 0.5 - y0) / side_y * 2 - 1
    xs = (torch.arange(width, dtype=map_.dtype, device=map_.device) + 0.5 - x0) / side_x * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).unsqueeze(0)
    low = map_.min()
    out = F.grid_sample((map_ - low)[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[0, 0] + low
