"""Regressor training on cached hand crops: the cheap first phase of the starter recipe (ml/weights/README.md).

While the regressor learns on crops cut with the ground-truth mask (full teacher forcing) the segmenter plays no
part in its loss, so running it every step only costs time (~70 % of a light-preset step on CPU). Here every
image is decoded, masked and cropped once (`hand_crops`, the same `masked_hand_crops` the network uses), and the
regressor trains on the cached crops with cheap batched augmentation in crop space. The segmenter and the joint
loss come back in the end-to-end phase (`ml.train` with `--init`, mask gradient on).

BatchNorm: the shipped statistics are exact averages over every (un-augmented) training crop, computed once after
the last step with the final weights (`exact_bn_statistics`): a deterministic function of weights and data, so the
number measured is the number shipped (no 4-batch re-estimate, no best-epoch pick on a few dozen images).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ml.data import Sample, load_sample, mask_box
from ml.models import UnifiedNet
from ml.models.unified import masked_hand_crops, standardize_crops
from ml.train import exact_batchnorm_statistics


@dataclass(frozen=True)
class CropCache:
    crops: Tensor      # [N, 1, S, S] float16: image × ground-truth mask inside the squared box, not standardised
    ages: Tensor       # [N] months
    sex: Tensor        # [N] +1 male / -1 female / 0 unknown
    ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)


def hand_crops(samples: list[Sample], work_size: int, crop_size: int, margin: float = 0.08,
               segmenter: UnifiedNet | None = None, batch_size: int = 16) -> CropCache:
    """Each sample decoded at `work_size` (as the network sees it) and cut to its hand crop: with the ground-truth
    mask and box, or — `segmenter` given — with that network's own eval-mode detection (soft mask, predicted box),
    i.e. exactly the crop it will feed its regressor at inference. The ground-truth crops are not that: a
    regressor trained on them read the segmenter's crops 2.5× worse (docs/benchmarks.md)."""
    crops = []
    for k in range(0, len(samples), batch_size):
        loaded = [load_sample(s, work_size) for s in samples[k:k + batch_size]]
        images, masks = torch.stack([i for i, _ in loaded]), torch.stack([m for _, m in loaded])
        if segmenter is None:
            boxes = torch.stack([mask_box(m) for m in masks])
        else:
            segmenter.eval()
            with torch.no_grad():
                det = segmenter.segment(images)[1]
            masks, boxes = det.masks, det.boxes
        crops.append(masked_hand_crops(images, masks, boxes, crop_size, margin)[0].half())
    ages = [float(s.age_months) for s in samples]
    sexes = [0.0 if s.male is None else (1.0 if s.male else -1.0) for s in samples]
    return CropCache(torch.cat(crops), torch.tensor(ages), torch.tensor(sexes), tuple(s.id for s in samples))


def augment_crops(crops: Tensor, gen: torch.Generator, rotate: float = 12.0, scale: tuple[float, float] = (0.92, 1.08),
                  shift: float = 0.04, gamma: float = 0.2) -> Tensor:
    """Batched random rotation, zoom, shift, mirror and gamma of [B, 1, S, S] crops (one affine grid per crop).

    Milder than the full-image augmentation of ml.data: the crop already removes position and most of the scale."""
    b = crops.shape[0]
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(b, generator=gen)
    angle = u(-rotate, rotate) * math.pi / 180
    s = 1.0 / u(*scale)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * s, torch.sin(angle) * s
    theta = torch.stack([torch.stack([cos * flip, -sin, u(-shift, shift) * 2], 1),
                         torch.stack([sin * flip, cos, u(-shift, shift) * 2], 1)], 1)
    grid = F.affine_grid(theta, list(crops.shape), align_corners=False)
    out = F.grid_sample(crops, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(min=0)
    return out ** torch.exp(u(-gamma, gamma)).view(b, 1, 1, 1)


@dataclass(frozen=True)
class CropTrainConfig:
    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.03
    grad_clip: float = 10.0
    sex_dropout: float = 0.1         # fraction of samples shown with sex unknown (the platform allows it)
    augment: bool = True
    seed: int = 0
    max_seconds: float | None = None  # the cosine schedule ends at whichever comes first: epochs or this budget
    eval_every: int = 1
    # An exponential moving average of the weights (0 = none). At the end both the last and the averaged weights get
    # exact BatchNorm statistics and the one that reads the validation crops better is kept (the result says which).
    ema_decay: float = 0.0
    # The regressor's weights and activations in channels-last layout while it trains: the same arithmetic, ~1.6× less
    # CPU a step on this 2-core box (oneDNN's convolutions prefer it; docs/benchmarks.md), so the budget buys more
    # epochs of a regressor that underfits (docs/real-films.md, run 6). The stage ends in the usual layout.
    channels_last: bool = True


@dataclass
class CropTrainResult:
    val_mae: float | None            # with the final weights and exact BatchNorm statistics
    curve: list[dict[str, Any]] = field(default_factory=list)
    epochs: int = 0
    seconds: float = 0.0
    images_per_s: float = 0.0
    cancelled: bool = False
    kept: str = "last"                # "last" | "average": which weights the stage ended with
    val_mae_last: float | None = None
    val_mae_average: float | None = None


def predict_crops(model: UnifiedNet, cache: CropCache, batch_size: int = 64) -> np.ndarray:
    """Eval-mode ages [N] for cached crops (the regressor only; crops standardised as the network does)."""
    model.eval()
    out = []
    with torch.no_grad():
        for k in range(0, len(cache), batch_size):
            crops = _prepare(model, cache.crops[k:k + batch_size].float())
            out.append(model.regressor(crops, cache.sex[k:k + batch_size]).age.float())
    return torch.cat(out).numpy().astype(float) if out else np.zeros(0)


def exact_bn_statistics(model: UnifiedNet, cache: CropCache, batch_size: int = 64) -> None:
    """The regressor's BatchNorm statistics := exact averages over every un-augmented crop of `cache`."""
    with torch.no_grad(), exact_batchnorm_statistics(model.regressor):
        for k in range(0, len(cache), batch_size):
            model.regressor(_prepare(model, cache.crops[k:k + batch_size].float()), cache.sex[k:k + batch_size])
    model.eval()


def _prepare(model: UnifiedNet, crops: Tensor) -> Tensor:
    return standardize_crops(crops) if model.standardize else crops


def train_regressor_on_crops(model: UnifiedNet, train: CropCache, val: CropCache | None, config: CropTrainConfig,
                             on_epoch: Callable[[dict[str, Any]], None] | None = None,
                             should_stop: Callable[[], bool] | None = None,
                             resume: RegressorProgress | None = None,
                             on_progress: Callable[[RegressorProgress], None] | None = None) -> CropTrainResult:
    """Train `model.regressor` in place on cached crops (L1 on the normalised age; AdamW, warm-up + cosine to 0),
    then set exact BatchNorm statistics over `train`. The segmenter is not touched. `should_stop` (a cancelled run) is
    asked every step: the epoch ends there and the result says `cancelled`. `on_progress` gets the stage's state after
    every epoch (ml.resume writes it); `resume` continues from such a state (the model's weights already loaded)."""
    t0 = time.perf_counter() - (resume.seconds if resume else 0.0)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    reg = model.regressor
    opt = torch.optim.AdamW(reg.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(len(train) // config.batch_size, 1)
    total = config.epochs * steps_per_epoch
    scale = float(reg.head.age_std)
    step, seen, curve = 0, 0, list[dict[str, Any]]()
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    reg.to(memory_format=layout)
    average = _WeightAverage(reg, config.ema_decay) if config.ema_decay > 0 else None
    if resume is not None:
        opt.load_state_dict(resume.optimizer)
        gen.set_state(resume.generator)
        step, curve = resume.step, list(resume.curve)
        if average is not None and resume.average is not None:
            average.load(resume.average)
    for epoch in range(len(curve), config.epochs):
        reg.train()
        perm = torch.randperm(len(train), generator=gen)
        losses = []
        for k in range(steps_per_epoch):
            if should_stop is not None and should_stop():
                reg.to(memory_format=torch.contiguous_format)
                return CropTrainResult(None, curve, len(curve), time.perf_counter() - t0, 0.0, cancelled=True)
            idx = perm[k * config.batch_size:(k + 1) * config.batch_size]
            crops = train.crops[idx].float()
            if config.augment:
                crops = augment_crops(crops, gen)
            crops = crops.contiguous(memory_format=layout)
            sex = train.sex[idx] * (torch.rand(len(idx), generator=gen) >= config.sex_dropout)
            progress = max(step / total, (time.perf_counter() - t0) / config.max_seconds if config.max_seconds else 0.0)
            for group in opt.param_groups:
                group["lr"] = cosine_lr(config.lr, min(progress, 1.0), config.warmup_fraction)
            loss = (reg(_prepare(model, crops), sex).age.float() - train.ages[idx]).abs().mean() / scale
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(reg.parameters(), config.grad_clip)
            opt.step()
            if average is not None:
                average.update(reg)
            losses.append(float(loss.detach()))
            step, seen = step + 1, seen + len(idx)
        elapsed = time.perf_counter() - t0
        row: dict[str, Any] = {"epoch": epoch + 1, "train_l1_months": float(np.mean(losses)) * scale,
                               "lr": opt.param_groups[0]["lr"], "seconds": round(elapsed, 1),
                               "expected_epochs": _expected_epochs(config, epoch + 1, elapsed)}
        if val is not None and ((epoch + 1) % config.eval_every == 0):  # running statistics: a progress reading only
            row["val_mae_running_bn"] = float(np.abs(predict_crops(model, val) - val.ages.numpy()).mean())
        curve.append(row)
        if on_progress is not None:  # before on_epoch: a run killed while reporting keeps this epoch
            on_progress(RegressorProgress(list(curve), step, time.perf_counter() - t0, opt.state_dict(),
                                          gen.get_state(), average.state() if average is not None else None))
        if on_epoch is not None:
            on_epoch(row)
        if config.max_seconds and time.perf_counter() - t0 > config.max_seconds:
            break
    train_seconds = time.perf_counter() - t0
    reg.to(memory_format=torch.contiguous_format)
    exact_bn_statistics(model, train)
    val_mae = _val_mae(model, val)
    result = CropTrainResult(val_mae, curve, len(curve), time.perf_counter() - t0, seen / max(train_seconds, 1e-9),
                             val_mae_last=val_mae)
    if average is not None and step > 0:
        last = {k: v.clone() for k, v in reg.state_dict().items()}
        average.copy_to(reg)
        exact_bn_statistics(model, train)
        result.val_mae_average = _val_mae(model, val)
        # the average is kept where it reads validation at least as well (without validation: the average, as
        # weight averaging is meant to be used)
        if val is None or result.val_mae_average <= val_mae:  # type: ignore[operator]
            result.kept, result.val_mae = "average", result.val_mae_average
        else:
            reg.load_state_dict(last)
            model.eval()
        result.seconds = time.perf_counter() - t0
    return result


def _val_mae(model: UnifiedNet, val: CropCache | None) -> float | None:
    return float(np.abs(predict_crops(model, val) - val.ages.numpy()).mean()) if val is not None else None


class _WeightAverage:
    """An exponential moving average of a module's parameters (not its BatchNorm buffers: those are computed exactly
    for whichever weights are kept). The decay warms up as min(decay, (1 + n) / (10 + n)) so early steps do not
    dominate."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay, self.updates = decay, 0
        self.params = {k: p.detach().clone().float() for k, p in module.named_parameters()}

    def update(self, module: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            for k, p in module.named_parameters():
                self.params[k].mul_(d).add_(p.detach().float(), alpha=1 - d)

    def copy_to(self, module: torch.nn.Module) -> None:
        with torch.no_grad():
            for k, p in module.named_parameters():
                p.copy_(self.params[k].to(p.dtype))

    def state(self) -> dict[str, Any]:
        return {"updates": self.updates, "params": {k: v.clone() for k, v in self.params.items()}}

    def load(self, state: dict[str, Any]) -> None:
        self.updates, self.params = int(state["updates"]), {k: v.clone() for k, v in state["params"].items()}


@dataclass
class RegressorProgress:
    """The regressor stage after an epoch: its curve so far (one row an epoch), steps, seconds, optimizer and
    generator (what a resumed stage needs beside the model's weights)."""

    curve: list[dict[str, Any]]
    step: int
    seconds: float
    optimizer: dict[str, Any]
    generator: torch.Tensor
    average: dict[str, Any] | None = None   # the weight average's state, where the stage keeps one


def _expected_epochs(config: CropTrainConfig, done: int, elapsed: float) -> int:
    """How many epochs the run will have: its cap, or fewer where the time budget ends it first (at this pace)."""
    if not config.max_seconds or elapsed <= 0:
        return config.epochs
    return max(done, min(config.epochs, math.ceil(config.max_seconds * done / elapsed)))


def cosine_lr(lr: float, progress: float, warmup: float) -> float:
    """Linear warm-up over `warmup` of the run, then cosine to 0 at progress 1 (crops and the recipe's segmenter)."""
    if warmup > 0 and progress < warmup:
        return lr * max(progress / warmup, 0.01)
    return lr * 0.5 * (1.0 + math.cos(math.pi * (progress - warmup) / max(1.0 - warmup, 1e-9)))
