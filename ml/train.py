"""End-to-end training of the unified network: L = L_cls + L_box + L_mask + L_reg.

    python -m ml.train --data DIR --out CKPT [--config FILE.json] [--init CKPT|starter] [--epochs N]
                       [--preset light|finetune|paper|starter]   # default: finetune with --init, else light

Two optimiser set-ups, chosen by `TrainConfig.optimizer` / `schedule`:

- `paper` preset (the paper's): Nesterov SGD lr 0.01, momentum 0.9, wd 1e-4, linear warm-up of
  `warmup_steps`, LR/10 after `plateau_patience` epochs without validation improvement.
- `light` preset and the `TrainConfig()` defaults (CPU, minutes, a few hundred images): AdamW lr 2e-3,
  wd 1e-4, linear warm-up over `warmup_fraction` of the run, then cosine decay to 0 by the end of
  the run — "the end" being whichever comes first of `epochs` and `max_seconds`, so a wall-clock
  budget still ends at a low learning rate. With SGD and a few hundred steps neither subnet learned
  (mean-predictor MAE, mask IoU 0.02); see docs/paper-tables.md.

Both: grad-norm clip, early stopping, best-epoch weights kept, precise BatchNorm at the end.

Fine-tuning (`--init`, the default everywhere: `--init starter`, the platform's runs): the `finetune` preset —
AdamW lr 3e-4, no teacher forcing, mask gradient on, BatchNorm statistics frozen at the init's (`freeze_bn`), the
last epoch of the cosine schedule shipped (`selection="last_epoch"`) unless the init scores better on the same
validation images by the same `evaluate` — so a fine-tune never ships worse there than it started, by construction
(`init_competes=False` turns that off: ensemble members, which must be fine-tuned weights, not copies of the init).
The starter itself is built in two phases (`ml.crops` on cached crops, then this loop): ml/weights/README.md.
L_reg is the L1 error in months divided by `reg_scale` (default: the training labels' std, i.e. L1
on the normalised age the head predicts). Teacher forcing: for the first `teacher_epochs` epochs
every sample's crop uses the ground-truth mask while the segmenter trains on its own losses (this
doubles as its pre-training); then the probability decays linearly to 0 over `teacher_decay_epochs`
(see ml/models/unified.py).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from ml import distributed
from ml.checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint, save_checkpoint
from ml.data import (
    DataError,
    HandDataset,
    Sample,
    collate,
    fingerprint,
    input_cache_dir,
    read_folder,
    split_ids,
    targets_from_batch,
)
from ml.models import PRESETS, ModelConfig, UnifiedNet, build_model
from ml.tta import spread, view_ages
from ml.uncertainty import (
    calibrated_std,
    check_method,
    conformal_scores,
    coverage90,
    fit_calibration,
    heldout_points,
    mc_std,
)

AGE_BANDS = ((0, 24), (24, 72), (72, 144), (144, 240))


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 30
    batch_size: int = 16
    optimizer: str = "adamw"         # "adamw" (CPU default) | "sgd" (the paper's Nesterov SGD)
    schedule: str = "cosine"         # "cosine" (warm-up + cosine to 0) | "plateau" (the paper's LR/10)
    lr: float = 2e-3
    momentum: float = 0.9            # SGD only
    weight_decay: float = 1e-4
    nesterov: bool = True            # SGD only
    warmup_steps: int = 30           # plateau schedule: linear warm-up steps
    warmup_fraction: float = 0.05    # cosine schedule: warm-up as a fraction of the run
    grad_clip: float = 10.0
    plateau_patience: int = 5        # plateau schedule: epochs without val improvement → LR / 10
    early_stop_patience: int = 12    # epochs without val improvement → stop
    val_fraction: float = 0.1
    reg_scale: float | None = None   # L_reg = L1 in months / reg_scale; None = std of the training ages
    seg_weight: float = 1.0
    teacher_epochs: int = 3
    teacher_decay_epochs: int = 5
    seg_every: int = 1               # segmenter on every k-th step only, else GT-mask crops + L_reg (k>1 hurt IoU at 120 images)
    mask_grad: bool = True           # let L_reg reach the segmenter through the soft mask (slow on CPU)
    sex_dropout: float = 0.1         # fraction of training samples shown with sex unknown
    augment: bool = True
    mc_samples: int = 8
    uncertainty: str = "both"        # the final reading and its std (ml.tta): "both" = the mean of six test-time views,
                                     # MC-dropout and view spreads pooled (ranks errors best, 6 network passes a
                                     # study); "mc" = the plain reading and its MC-dropout std (one pass)
    precise_bn_batches: int = 4      # recompute BatchNorm statistics on this many batches before each validation (0 = off)
    final_bn_batches: int = 32       # …and on this many (augmented) batches for the final model: 4 batches left val MAE
                                     # anywhere in 19.5–26.2 months for one set of weights (ml/weights/README.md)
    freeze_bn: bool | None = None    # BatchNorm statistics kept as the init checkpoint's (modules stay in eval mode,
                                     # affine weights still learn); None = frozen when fine-tuning from `init`. Frozen,
                                     # training and evaluation normalise alike, so there is nothing to re-estimate
                                     # (no precise-BN batches, no recalibrated candidate): the noise has no source.
    num_workers: int = 0
    threads: int | None = None       # torch.set_num_threads when set
    amp: bool = True                 # mixed precision on CUDA only (bf16 where supported)
    channels_last: bool = True       # CUDA only: NHWC memory format for the convolutions
    # Read the films through the disk cache every process shares (ml.data.load_sample_cached), decoded lazily by the
    # DataLoader workers, instead of decoding all of them up front in each process's memory (issue 30: 94 min and
    # 18.5 GiB a rank before the first step on RSNA's 12,611 films). The paper preset: on.
    input_cache: bool = False
    compile: bool = False            # CUDA only: torch.compile the regressor
    loss_sync_every: int = 1         # read the loss back to the host every k steps (CUDA: 1 stalls the GPU queue)
    selection: str = "best_epoch"    # "best_epoch": the epoch with the lowest validation MAE (early stopping on);
                                     # "last_epoch": the end of the cosine schedule — no pick among noisy epochs
                                     # scored on a few dozen images. Either way the init model competes at the end…
    init_competes: bool = True       # …unless False: a fine-tune then ships its own weights even when the init scores
                                     # better (ensemble members must differ from the init: ml.uncertainty_eval)
    seed: int = 0
    progress: bool = False
    max_seconds: float | None = None  # wall-clock budget: stop after the epoch that crosses it

    def __post_init__(self) -> None:
        check_method(self.uncertainty)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown train config keys {sorted(unknown)}")
        data = dict(data)
        model = data.pop("model", {})
        if isinstance(model, str):
            if model not in PRESETS:
                raise ValueError(f"unknown model preset {model!r}; known: {sorted(PRESETS)}")
            model_cfg = PRESETS[model]
        elif isinstance(model, ModelConfig):
            model_cfg = model
        else:
            model_cfg = ModelConfig.from_dict(model)
        return cls(model=model_cfg, **data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["model"] = self.model.to_dict()
        return out


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # From scratch (no --init). The mask gradient flows, as in the paper: ~20 % slower per step on this CPU
    # (9.2 vs 11.5 images/s at 256/128, docs/benchmarks.md).
    "light": TrainConfig(model=PRESETS["light"], epochs=20, teacher_epochs=8, teacher_decay_epochs=6),
    # The default with --init (`ml.train --init starter`): a short end-to-end fine-tune of a trained network. No
    # teacher forcing (its segmenter is trained), BatchNorm statistics frozen at the init's (TrainConfig.freeze_bn),
    # the end of the cosine schedule shipped unless the init scores better on the same validation images.
    "finetune": TrainConfig(model=PRESETS["light"], epochs=10, lr=3e-4, warmup_fraction=0.1, teacher_epochs=0,
                            teacher_decay_epochs=0, selection="last_epoch", mc_samples=8),
    # `make run`'s starter (~120 images): 120 train / 40 val phantoms, val MAE 28 vs 67.5 for the mean predictor
    # with seed 0 but 57 / 56 with seeds 1 / 2 (not yet reliable), mask IoU 0.84, 24 epochs, ~130 CPU-s on one
    # core. lr 1e-3 beat 2e-3 / 3e-3 here; batch 8 beat 4 and 16 (sweep in docs/paper-tables.md).
    "starter": TrainConfig(model=PRESETS["starter"], epochs=24, batch_size=8, lr=1e-3, teacher_epochs=8,
                           teacher_decay_epochs=6, mask_grad=False),
    "paper": TrainConfig(model=PRESETS["paper"], epochs=100, batch_size=16, early_stop_patience=15, optimizer="sgd",
                         schedule="plateau", lr=0.01, num_workers=8, loss_sync_every=50, input_cache=True),
}


class TrainCallback:
    """Progress and cancellation hooks (the platform's Celery task subclasses this). All optional."""

    def on_step(self, step: int, loss: float) -> None: ...

    def on_epoch_end(self, epoch: int, metrics: dict[str, Any]) -> None: ...

    def should_stop(self) -> bool:
        return False


class _Callback(Protocol):
    def on_step(self, step: int, loss: float) -> None: ...
    def on_epoch_end(self, epoch: int, metrics: dict[str, Any]) -> None: ...
    def should_stop(self) -> bool: ...


@dataclass
class TrainResult:
    checkpoint: Path | None          # None when cancelled (nothing written)
    sha256: str | None
    metrics: dict[str, Any]
    curve: list[dict[str, Any]]
    cancelled: bool = False


@dataclass
class Evaluation:
    pred: np.ndarray
    raw_std: np.ndarray
    true: np.ndarray
    male: np.ndarray                 # +1 / -1 / 0
    mask_iou: np.ndarray
    ids: list[str]
    plain: np.ndarray                # the plain view's readings (`pred` averages test-time views with "both", ml.tta)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, nesterov=config.nesterov)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; known: adamw, sgd")


def learning_rate(config: TrainConfig, step: int, total_steps: int, elapsed: float) -> float | None:
    """The LR for this step, or None to leave it to the plateau scheduler (after its warm-up).

    cosine: progress = max(step / total_steps, elapsed / max_seconds); linear warm-up over the first
    `warmup_fraction`, then lr·½(1 + cos(π·progress')) down to 0 at the end of the run.
    """
    if config.schedule == "plateau":
        return config.lr * (step + 1) / config.warmup_steps if step < config.warmup_steps else None
    if config.schedule != "cosine":
        raise ValueError(f"unknown schedule {config.schedule!r}; known: cosine, plateau")
    progress = step / total_steps
    if config.max_seconds:
        progress = max(progress, elapsed / config.max_seconds)
    progress = min(progress, 1.0)
    warm = config.warmup_fraction
    if warm > 0 and progress < warm:
        return config.lr * max(progress / warm, 1.0 / max(total_steps * warm, 1.0))
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * (progress - warm) / max(1.0 - warm, 1e-9)))


def teacher_probability(epoch: int, config: TrainConfig) -> float:
    if epoch < config.teacher_epochs:
        return 1.0
    if config.teacher_decay_epochs <= 0:
        return 0.0
    return max(0.0, 1.0 - (epoch - config.teacher_epochs + 1) / (config.teacher_decay_epochs + 1))


@torch.no_grad()
def evaluate(model: UnifiedNet, dataset: HandDataset, device: torch.device, batch_size: int,
             mc_samples: int = 0, should_stop: Any = None, uncertainty: str = "mc") -> Evaluation | None:
    """Full pipeline in eval mode (predicted masks) over a dataset; None if cancelled midway. With uncertainty "both"
    the reading is the test-time views' mean and the raw std pools their spread with the MC one (ml.tta)."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    preds, plains, stds, trues, sexes, ious = [], [], [], [], [], []
    for batch in loader:
        if should_stop is not None and should_stop():
            return None
        images, sex = batch["image"].to(device), batch["sex"].to(device)
        out = model(images, sex)
        views = view_ages(model, images, sex) if uncertainty == "both" else None
        reading = spread(out.age, views, mc_std(model.regressor, out.crops, sex, mc_samples))
        preds.append(reading.age.cpu())
        plains.append(out.age.float().cpu())
        stds.append(reading.raw_std.cpu())
        pm = (out.masks > 0.5).float().cpu()
        gm = batch["mask"]
        inter, union = (pm * gm).sum(dim=(1, 2, 3)), ((pm + gm) > 0).float().sum(dim=(1, 2, 3))
        ious.append(inter / union.clamp(min=1))
        trues.append(batch["age"])
        sexes.append(batch["sex"])
    cat = lambda xs: torch.cat(xs).numpy().astype(float)
    return Evaluation(cat(preds), cat(stds), cat(trues), cat(sexes), cat(ious),
                      [dataset.samples[i].id for i in range(len(dataset))], cat(plains))


def summarize(ev: Evaluation) -> dict[str, Any]:
    err = np.abs(ev.pred - ev.true)
    by_sex = {name: float(err[ev.male == v].mean()) for name, v in (("male", 1.0), ("female", -1.0))
              if (ev.male == v).any()}
    by_band = {f"{lo}-{hi}": float(err[(ev.true >= lo) & (ev.true < hi)].mean()) for lo, hi in AGE_BANDS
               if ((ev.true >= lo) & (ev.true < hi)).any()}
    return {"val_mae": float(err.mean()), "val_mae_by_sex": by_sex, "val_mae_by_age_band": by_band,
            "val_mask_iou": float(ev.mask_iou.mean())}


@torch.no_grad()
def recalibrate_batchnorm(model: UnifiedNet, batches: list[dict[str, torch.Tensor]], device: torch.device) -> None:
    """Precise BatchNorm: recompute running statistics as exact averages over `batches` with the final weights.

    Running averages lag behind fast-changing weights in short CPU runs, which makes eval-mode predictions
    worse than train-mode ones; this removes that lag. Crops use the ground-truth masks (teacher forcing).
    """
    with exact_batchnorm_statistics(model):
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            model(batch["image"], batch["sex"], targets_from_batch(batch),
                  torch.ones(len(batch["age"]), dtype=torch.bool, device=device))


@contextmanager
def exact_batchnorm_statistics(model: torch.nn.Module) -> Iterator[None]:
    """Inside: train mode with reset BatchNorm statistics that accumulate as an exact average of the forwards run
    there (momentum None). After: the modules' momenta and the model's train/eval mode as they were."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    try:
        yield
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.train(was_training)


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """Every BatchNorm module to eval mode: it normalises with its stored statistics and no longer updates them."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def _set_age_stats(model: UnifiedNet, samples: list[Sample]) -> None:
    ages = torch.tensor([s.age_months for s in samples], dtype=torch.float32)
    head = model.regressor.head
    head.age_mean.fill_(float(ages.mean()))
    head.age_std.fill_(float(ages.std()) if len(ages) > 1 and float(ages.std()) > 1 else 60.0)


def train(samples: list[Sample], config: TrainConfig, out: Path, *, callback: _Callback | None = None,
          init: Path | None = None, val_ids: set[str] | None = None,
          extra_metrics: dict[str, Any] | None = None) -> TrainResult:
    """Train on `samples`, validate on `val_ids` (default: stable 10% by id), write the best model to `out`.
    `extra_metrics`: stored beside the run's own metrics (the recipe's earlier stages, ml.recipe)."""
    t_start = time.perf_counter()
    callback = callback or TrainCallback()
    if config.selection not in ("best_epoch", "last_epoch"):
        raise ValueError(f"unknown selection {config.selection!r}; known: best_epoch, last_epoch")
    if len(samples) < 2:
        raise DataError(f"need at least 2 samples to train, got {len(samples)}")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)  # the same on every rank: the replicas start identical
    context = distributed.from_environment()  # torchrun: one process per device; else a single process
    device = context.device() if context.enabled else pick_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels once
    ids = [s.id for s in samples]
    val_ids = set(val_ids) if val_ids is not None else split_ids(ids, config.val_fraction)
    train_s = [s for s in samples if s.id not in val_ids]
    val_s = [s for s in samples if s.id in val_ids]
    if not train_s or not val_s:
        raise DataError(f"split leaves {len(train_s)} training and {len(val_s)} validation samples")

    model = build_model(config.model)
    if init is not None:
        ckpt = load_checkpoint(init)
        if ckpt.model_config != config.model:
            raise CheckpointError(f"{init}: its architecture {ckpt.model_config} differs from {config.model}")
        model = ckpt.build()
    else:
        _set_age_stats(model, train_s)
    model.to(device)
    if device.type == "cuda" and config.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if device.type == "cuda" and config.compile:
        model.regressor = torch.compile(model.regressor)  # type: ignore[assignment]

    size = config.model.work_size
    disk = input_cache_dir() if config.input_cache else None
    train_ds = HandDataset(train_s, size, augment=config.augment, seed=config.seed, disk_cache=disk)
    val_ds = HandDataset(val_s, size, augment=False, disk_cache=disk)
    t_load = time.perf_counter()
    if disk is None:  # decode once up front; forked workers then share the in-memory cache
        for ds in (train_ds, val_ds):
            for i in range(len(ds)):
                ds[i]
    load_seconds = time.perf_counter() - t_load
    gen = torch.Generator().manual_seed(config.seed)
    # distributed: each rank trains on its own 1/world_size of every epoch's shuffle (batch_size is per rank)
    sampler: DistributedSampler[Any] | None = None
    if context.enabled:
        sampler = DistributedSampler(train_ds, num_replicas=context.world_size, rank=context.rank, shuffle=True,
                                     seed=config.seed, drop_last=True)
    per_rank = len(sampler) if sampler is not None else len(train_ds)
    loader = DataLoader(train_ds, batch_size=min(config.batch_size, per_rank), shuffle=sampler is None,
                        sampler=sampler, generator=gen if sampler is None else None, collate_fn=collate,
                        num_workers=config.num_workers, drop_last=per_rank > config.batch_size,
                        pin_memory=device.type == "cuda", persistent_workers=config.num_workers > 0)

    bn_loader = DataLoader(train_ds, batch_size=min(config.batch_size, len(train_ds)), shuffle=True,
                           generator=torch.Generator().manual_seed(config.seed), collate_fn=collate)
    step_forward = distributed.wrap_for_training(model, context)  # DDP averages the gradients across ranks
    opt = make_optimizer(model, config)
    sched = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=config.plateau_patience)
             if config.schedule == "plateau" else None)
    total_steps = max(config.epochs * len(loader), 1)
    reg_scale = float(config.reg_scale) if config.reg_scale else float(model.regressor.head.age_std)
    model.mask_grad = config.mask_grad
    freeze_bn = config.freeze_bn if config.freeze_bn is not None else init is not None
    if freeze_bn:  # nothing to re-estimate: the statistics are the init's throughout
        config = replace(config, precise_bn_batches=0, final_bn_batches=0)
    use_amp = config.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    curve: list[dict[str, Any]] = []
    best_mae, best_state, best_epoch, since_best = math.inf, None, -1, 0
    init_val_mae, init_state = None, None
    if init is not None:  # a fine-tune never ends worse on validation than the model it started from
        ev0 = evaluate(model, val_ds, device, config.batch_size, should_stop=callback.should_stop)
        if ev0 is not None:
            init_val_mae = summarize(ev0)["val_mae"]
            if config.init_competes:
                best_mae = init_val_mae
                init_state = best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
                best_epoch = 0
    step, cancelled = 0, False
    wait_s = compute_s = 0.0
    images_seen = 0
    skipped_steps = 0  # CPU steps skipped for a non-finite gradient
    pbar = None
    if config.progress:
        from tqdm import tqdm
        pbar = tqdm(total=config.epochs * len(loader), desc="train", unit="step", file=sys.stderr)
    for epoch in range(config.epochs):
        model.train()
        if freeze_bn:
            freeze_batchnorm(model)
        train_ds.epoch = epoch
        if sampler is not None:
            sampler.set_epoch(epoch)
        p_teacher = teacher_probability(epoch, config)
        losses_epoch: list[torch.Tensor] = []  # on the device: no host sync per step
        t_wait = time.perf_counter()
        for batch in loader:
            if callback.should_stop():
                cancelled = True
                break
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            t_compute = time.perf_counter()
            wait_s += t_compute - t_wait
            b = batch["image"].shape[0]
            teacher = torch.rand(b, device=device) < p_teacher
            sex = batch["sex"] * (torch.rand(b, device=device) >= config.sex_dropout)
            lr_now = learning_rate(config, step, total_steps, time.perf_counter() - t_start)
            if lr_now is not None:
                for group in opt.param_groups:
                    group["lr"] = lr_now
            skip_seg = config.seg_every > 1 and step % config.seg_every != 0
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                if skip_seg:
                    pred = step_forward(True, batch["image"], sex, targets_from_batch(batch))
                else:
                    pred = step_forward(False, batch["image"], sex, targets_from_batch(batch), teacher)
            l_reg = (pred.age.float() - batch["age"]).abs().mean() / reg_scale
            loss = l_reg + config.seg_weight * sum(pred.losses.values(), torch.zeros((), device=device))
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            # One non-finite gradient (e.g. from a degenerate box) would make every weight NaN for good. A GradScaler
            # skips such a step itself; on the CPU it is skipped here (reading the norm costs nothing there); on a
            # GPU without a scaler its entries are zeroed on the device, to keep the step free of host syncs.
            if scaler.is_enabled():
                scaler.step(opt)
            elif device.type == "cpu":
                if bool(torch.isfinite(grad_norm)):
                    opt.step()
                else:
                    skipped_steps += 1
            else:
                for param in model.parameters():
                    if param.grad is not None:
                        param.grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
                opt.step()
            scaler.update()
            step += 1
            images_seen += b
            losses_epoch.append(loss.detach())
            if step % max(config.loss_sync_every, 1) == 0:  # the only per-step host sync, every k-th step
                loss_now = float(losses_epoch[-1])
                callback.on_step(step, loss_now)
                if pbar is not None:
                    pbar.set_postfix(loss=f"{loss_now:.3f}", val_mae=f"{best_mae:.2f}")
            t_wait = time.perf_counter()
            compute_s += t_wait - t_compute
            if pbar is not None:
                pbar.update(1)
        if cancelled:
            break
        if config.precise_bn_batches:  # eval-mode BN statistics lag fast AdamW updates: refresh them first
            recalibrate_batchnorm(model, [b for b, _ in zip(bn_loader, range(config.precise_bn_batches))], device)
        ev = evaluate(model, val_ds, device, config.batch_size, should_stop=callback.should_stop)
        if ev is None:
            cancelled = True
            break
        metrics = {"epoch": epoch + 1, "loss": float(torch.stack(losses_epoch).mean()) if losses_epoch else float("nan"),
                   "lr": opt.param_groups[0]["lr"], "teacher": p_teacher, **summarize(ev)}
        curve.append(metrics)
        if sched is not None:
            sched.step(metrics["val_mae"])
        if config.selection == "last_epoch":
            best_mae, best_epoch = min(best_mae, metrics["val_mae"]), epoch + 1
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        elif metrics["val_mae"] < best_mae:
            best_mae, best_epoch, since_best = metrics["val_mae"], epoch + 1, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            since_best += 1
        callback.on_epoch_end(epoch + 1, metrics)
        if pbar is not None:
            pbar.set_postfix(loss=f"{metrics['loss']:.3f}", val_mae=f"{metrics['val_mae']:.2f}")
        out_of_time = config.max_seconds is not None and time.perf_counter() - t_start > config.max_seconds
        if distributed.agree(since_best >= config.early_stop_patience or out_of_time, context):  # ranks stop together
            break
    if pbar is not None:
        pbar.close()
    if cancelled or best_state is None:
        return TrainResult(None, None, {"epochs": len(curve), "seconds": time.perf_counter() - t_start}, curve, True)
    if not context.is_main:  # rank 0 chooses, scores and writes the checkpoint; the others wait for it
        distributed.barrier(context)
        return TrainResult(None, None, {"epochs": len(curve), "world_size": context.world_size}, curve, False)

    chosen, candidate_maes = _final_candidate(model, best_state, best_epoch, init_state, config, bn_loader, val_ds, device,
                                              init_val_mae)
    model.load_state_dict(chosen)
    ev = evaluate(model, val_ds, device, config.batch_size, mc_samples=config.mc_samples, uncertainty=config.uncertainty)
    assert ev is not None
    calibration = fit_calibration(ev.pred - ev.true, ev.raw_std)
    std = calibrated_std(ev.raw_std, calibration)
    # val_mae stays the plain reading's, the figure the epochs and the init were chosen on; val_mae_reading is the
    # reading the predictions show (the views' mean with uncertainty "both"), the one the intervals are around
    metrics = {**summarize(replace(ev, pred=ev.plain)),
               "val_mae_reading": float(np.abs(ev.pred - ev.true).mean()), "uncertainty": config.uncertainty,
               "coverage90": coverage90(ev.pred - ev.true, std),
               "coverage90_note": "measured on the validation set the calibration was fitted on",
               # the platform's intervals at any level (ml.uncertainty.interval_multiplier): |error| / calibrated std
               "interval_scores": conformal_scores(ev.pred - ev.true, std),
               # the same studies' readings, for an interval aware of where the model errs (ml.age_intervals)
               "interval_heldout": heldout_points(ev.pred, ev.true, std),
               "std_median": float(np.median(std)),  # what "unsure" is measured against (the review rule)
               "best_epoch": best_epoch, "init_val_mae": init_val_mae, "final_candidates": candidate_maes, "epochs": len(curve), "seconds": time.perf_counter() - t_start,
               "load_seconds": load_seconds, "bn_frozen": freeze_bn, "skipped_steps": skipped_steps,
               "train_images_per_s": context.world_size * images_seen / max(wait_s + compute_s, 1e-9),
               "data_wait_fraction": wait_s / max(wait_s + compute_s, 1e-9), "n_train": len(train_s),
               "n_val": len(val_s), "device": device.type, "world_size": context.world_size, "val_ids": sorted(val_ids),
               **(extra_metrics or {})}
    # --- issue 29: the out-of-distribution reference (ml.ood): training films' embeddings, threshold on validation ---
    from ml.ood import reference_for_model
    ood = reference_for_model(model, train_ds, val_ds, device, config.batch_size)
    # ---
    model.cpu()
    sha = save_checkpoint(out, model, config.model, train_config=config.to_dict(), metrics=metrics,
                          calibration=calibration, fingerprint=fingerprint(train_s), ood=ood)
    distributed.barrier(context)
    return TrainResult(Path(out), sha, metrics, curve, False)


def _final_candidate(model: UnifiedNet, best_state: dict[str, torch.Tensor], best_epoch: int,
                     init_state: dict[str, torch.Tensor] | None, config: TrainConfig, bn_loader: DataLoader,
                     val_ds: HandDataset, device: torch.device,
                     init_val_mae: float | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state to ship: the best of (the init model as it was, the selected epoch with the statistics it was selected
    with, the same weights with BatchNorm statistics recomputed on `final_bn_batches` batches), each scored by the
    same deterministic `evaluate` on the same validation set the shipped metrics come from.

    So the shipped validation MAE is the minimum of these numbers by construction: a fine-tune never ships worse than
    its start, and recomputed statistics that happen to score worse than the selected epoch's are not shipped.
    """
    candidates: dict[str, dict[str, torch.Tensor]] = {}
    if init_state is not None:  # first: on a tie the unchanged init model wins
        candidates["init"] = init_state
    if best_epoch > 0:
        candidates["selected_epoch"] = best_state
        if config.final_bn_batches:
            model.load_state_dict(best_state)
            recalibrate_batchnorm(model, [b for b, _ in zip(bn_loader, range(config.final_bn_batches))], device)
            candidates["recalibrated_bn"] = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
    maes: dict[str, float] = {}
    for name, state in candidates.items():
        if name == "init" and init_val_mae is not None:  # the init was scored by this same evaluate before training
            maes[name] = init_val_mae
            continue
        model.load_state_dict(state)
        ev = evaluate(model, val_ds, device, config.batch_size)
        assert ev is not None
        maes[name] = summarize(ev)["val_mae"]
    best = min(maes, key=lambda n: maes[n])  # dicts keep insertion order: min returns the first of equals
    return candidates[best], {**maes, "shipped": best}


def load_config(path: str | None, preset: str) -> TrainConfig:
    base = TRAIN_PRESETS[preset]
    if not path:
        return base
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")  # noqa: TRY004 — the CLI reports ValueError
    merged = base.to_dict()
    model = {**merged.pop("model"), **(data.pop("model", {}) if isinstance(data.get("model", {}), dict) else {})}
    if isinstance(data.get("model"), str):
        model = PRESETS[data.pop("model")].to_dict()
    return TrainConfig.from_dict({**merged, **data, "model": model})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.train", description="Train the unified bone-age network.")
    ap.add_argument("--data", help="folder with labels.csv, images/ and optional masks/")
    ap.add_argument("--out", help="checkpoint file to write")
    ap.add_argument("--job", help="instead of --data/--out/--config/--init: a job file written by ml.launch "
                                  "(samples, config, output, validation ids), for runs the platform starts")
    ap.add_argument("--progress-file", help="rank 0 appends progress as JSON lines here (read by ml.launch)")
    ap.add_argument("--config", help="JSON file with TrainConfig fields (model: {ModelConfig fields} or a preset name)")
    ap.add_argument("--init", help="checkpoint to start from (same architecture), or `starter`: the shipped weights")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--preset", choices=sorted(TRAIN_PRESETS),
                    help="default: finetune with --init; with neither --init, --preset nor --config, the staged "
                         "default recipe (ml.recipe: segmenter, regressor on its crops, joint)")
    ap.add_argument("--max-seconds", type=float, help="the default recipe's wall-clock budget (default 3300)")
    ap.add_argument("--recipe-config", help="JSON file with the default recipe's fields (ml.recipe.RecipeConfig)")
    ap.add_argument("--resume", action="store_true",
                    help="the default recipe: continue a killed run of the same command from its last finished epoch "
                         "(its state is kept beside --out after every epoch)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.job:
        return _run_job(args.job, args.progress_file)
    if not args.data or not args.out:
        ap.error("--data and --out are required (or --job)")
    try:
        if not (args.init or args.preset or args.config or args.epochs):
            from ml import recipe  # imports this module: the recipe's last stage is `train`

            settings = json.loads(Path(args.recipe_config).read_text()) if args.recipe_config else {}
            if args.max_seconds:
                settings["max_seconds"] = args.max_seconds
            result = recipe.run(read_folder(args.data), Path(args.out), recipe.recipe_config(settings), quiet=args.quiet,
                                resume=args.resume)
            return _summary(result)
        if args.resume:
            raise ValueError("--resume continues the default recipe (no --init, --preset, --config or --epochs); "
                             "other runs keep no per-epoch state yet")
        config = load_config(args.config, args.preset or ("finetune" if args.init else "light"))
        config = replace(config, progress=not args.quiet, **({"epochs": args.epochs} if args.epochs else {}))
        samples = read_folder(args.data)
        result = train(samples, config, Path(args.out), init=resolve_checkpoint(args.init) if args.init else None)
        distributed.shutdown()
    except (DataError, CheckpointError, ValueError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = " (the default recipe's state is kept: add --resume to continue)" if not (
            args.init or args.preset or args.config or args.epochs) else ""
        print(f"error: interrupted, no checkpoint written{kept}", file=sys.stderr)
        return 130
    return _summary(result)


def _summary(result: TrainResult) -> int:
    m = result.metrics
    if result.checkpoint is None:  # a rank other than 0 under torchrun: rank 0 reports
        return 0
    world = f", world size {m['world_size']}" if m["world_size"] > 1 else ""
    seconds = m.get("recipe_seconds", m["seconds"])  # the default recipe: all its stages, not only the last
    print(f"trained {m['n_train']} images ({m['epochs']} epochs{world}, {seconds:.0f}s): val MAE {m['val_mae']:.2f} months "
          f"on {m['n_val']}, coverage90 {m['coverage90']:.2f}, mask IoU {m['val_mask_iou']:.2f} → {result.checkpoint} "
          f"sha256 {result.sha256[:12] if result.sha256 else '-'}")
    return 0


def _run_job(job_file: str, progress_file: str | None) -> int:
    """`ml.train --job` under torchrun (ml.launch): every rank trains, rank 0 reports progress and writes."""
    from ml.launch import ProgressFile, TrainJob

    job = TrainJob.read(Path(job_file))
    rank0 = os.environ.get("RANK", "0") == "0"
    callback = ProgressFile(Path(progress_file)) if progress_file and rank0 else None
    result = train(job.samples, job.config, job.out, callback=callback, init=job.init,
                   val_ids=set(job.val_ids) if job.val_ids is not None else None)
    distributed.shutdown()
    return 0 if result.checkpoint is not None or not rank0 else 1


if __name__ == "__main__":
    sys.exit(main())
