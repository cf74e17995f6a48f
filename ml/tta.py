"""Test-time augmentation on the network's input: the views a reading is averaged over, and the spread that goes with
them (the `both` uncertainty of docs/benchmarks.md, "Does the std rank the errors?").

The views are what the starter was trained with (mirror, gamma, a 6 % zoom), applied to the work canvas as tensors so
they run on the model's device. `spread` pools them with the plain reading's MC-dropout std: the age is the views'
mean, the raw std √(variance over the views + MC std²) — the law of total variance for one member
(ml.uncertainty_eval.pooled_spread).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VIEWS = ("identity", "mirror", "gamma 0.8", "gamma 1.25", "zoom in 6 %", "zoom out 6 %")
ZOOM = 1.06


def _zoom(images: Tensor, factor: float) -> Tensor:
    """Rescale about the centre and keep the size: cropped when larger, edge-padded when smaller."""
    h, w = images.shape[-2:]
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    scaled = F.interpolate(images, size=(nh, nw), mode="bilinear", align_corners=False)
    if factor >= 1:
        top, left = (nh - h) // 2, (nw - w) // 2
        return scaled[..., top:top + h, left:left + w].contiguous()
    top, left = (h - nh) // 2, (w - nw) // 2
    return F.pad(scaled, (left, w - nw - left, top, h - nh - top), mode="replicate")


def augmented_views(images: Tensor) -> list[Tensor]:
    """images [B, 1, H, W] in [0, 1] → VIEWS[1:], each the same shape (the identity is the caller's plain reading)."""
    clipped = images.clamp(0.0, 1.0)
    return [torch.flip(images, dims=(-1,)), clipped.pow(0.8), clipped.pow(1.25), _zoom(images, ZOOM),
            _zoom(images, 1 / ZOOM)]


@torch.no_grad()
def view_ages(model: nn.Module, images: Tensor, sex: Tensor) -> Tensor:
    """The unified network's age for each augmented view, [len(VIEWS) − 1, B] months (eval mode: predicted masks)."""
    return torch.stack([model(view, sex).age.float() for view in augmented_views(images)])


@dataclass(frozen=True)
class Spread:
    age: Tensor      # [B] months: the mean over the views
    raw_std: Tensor  # [B] months, before calibration


def spread(plain_age: Tensor, other_ages: Tensor | None, mc_std: Tensor) -> Spread:
    """Pool the plain reading [B], the other views' readings [V, B] (None: no views) and the MC std [B]."""
    readings = plain_age.float()[None] if other_ages is None else torch.cat([plain_age.float()[None], other_ages])
    variance = readings.var(dim=0, unbiased=False) + mc_std.float() ** 2
    return Spread(readings.mean(dim=0), variance.clamp(min=0).sqrt())


@torch.no_grad()
def head_spread(head: nn.Module, feats_by_view: list[Tensor], sex: Tensor, mc_samples: int, seed: int) -> Spread:
    """The `both` reading from the age head's inputs of every view (the plain view first): the head on each view,
    MC dropout on the plain one (dropout modules only, a fixed seed), pooled by `spread`."""
    from ml.uncertainty import mc_dropout

    readings = torch.stack([head(feats, sex) for feats in feats_by_view])
    with mc_dropout(head, seed=seed):
        samples = head(feats_by_view[0].repeat(mc_samples, 1), sex.repeat(mc_samples)).view(mc_samples, len(sex))
    return spread(readings[0], readings[1:], samples.std(dim=0))
