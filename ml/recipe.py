"""The default recipe: what `python -m ml.train --data DIR --out CKPT` runs with no other flag, for real films or phantoms.

End-to-end training of the whole network from scratch at a resolution that shows the epiphyses costs hours on a CPU,
and the fine-tune of the phantom starter at its 64-px crops read real films at 25.7 months (issue 28). So the
network is trained in three stages, each on what the next one will see:

1. **Segmenter** (Mask R-CNN) on the Canny masks of `ml.automask`, as the paper trains it, starting from the shipped
   starter's segmenter weights (a hand detector already; its BatchNorm statistics are re-estimated here, in train
   mode, on these films, never kept at phantom statistics).
2. **Regressor** from scratch on the crops the trained segmenter cuts in eval mode (`ml.crops`: cached once, cheap
   batched augmentation), so it learns on exactly what inference feeds it; exact BatchNorm statistics at the end.
3. **Joint** (`ml.train.train` with the `finetune` settings): `joint_epochs` end-to-end epochs with L_cls + L_box +
   L_mask + L_reg and the mask gradient (0 by default: on real films one epoch cost 9 minutes and read validation
   worse), then what every run does: calibrate the intervals, fit the out-of-distribution reference, write the
   checkpoint. It competes with its own start on the validation set, so it never ships worse than stage 2.

The model is `PRESETS["real"]`: a 512-px canvas and 224-px crops (the light preset's 256/128 halves a real hand's
detail). Every stage has a share of one wall-clock budget (`RecipeConfig.max_seconds`, 55 min by default: 1,000
half-resolution RSNA films on this 2-core CPU).
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ml.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from ml.crops import CropTrainConfig, RegressorProgress, cosine_lr, hand_crops, train_regressor_on_crops
from ml.data import DataError, HandDataset, Sample, collate, fingerprint, split_ids, targets_from_batch
from ml.models import PRESETS, ModelConfig, UnifiedNet, build_model
from ml.resume import StageState, clear_state, load_state, run_key, save_state
from ml.train import TRAIN_PRESETS, TrainCallback, TrainResult, _set_age_stats, train


@dataclass(frozen=True)
class RecipeConfig:
    model: ModelConfig = field(default_factory=lambda: PRESETS["real"])
    max_seconds: float = 3300.0         # the whole recipe; stages get the shares below of what is left
    seg_share: float = 0.22
    # Of what is left after the segmenter and the crop cache; the rest covers scoring, calibration and writing
    # (about a minute for 1,000 films). The regressor's epoch cap is far above what the budget allows on this CPU, so
    # the budget ends the cosine schedule: run 2 stopped at an 80-epoch cap with 18 of its 55 minutes unused.
    crops_share: float = 0.9
    seg_epochs: int = 8
    seg_lr: float = 1e-3
    seg_batch_size: int = 8
    seg_init: str | None = "starter"    # segmenter weights to start from (a checkpoint path or `starter`), None: scratch
    crops: CropTrainConfig = field(default_factory=lambda: CropTrainConfig(epochs=300, batch_size=32, lr=2e-3))
    # End-to-end epochs after the stages. 0 = none: `ml.train.train` only scores, calibrates and writes the regressor
    # stage's model. On the 1,000 real development films one joint epoch (519 s) read validation at 18.1 months
    # against the stage's 16.2, and the stage's model was shipped (docs/real-films.md): the time is the regressor's.
    joint_epochs: int = 0
    val_fraction: float = 0.1
    seed: int = 0
    threads: int | None = None


def recipe_config(data: dict[str, Any]) -> RecipeConfig:
    """A RecipeConfig from JSON-like data (`model`: ModelConfig fields over the real preset or a preset name, `crops`:
    CropTrainConfig fields over the recipe's); unknown keys are refused by name."""
    known = {f.name for f in fields(RecipeConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown recipe config keys {sorted(unknown)}; known: {sorted(known)}")
    data = dict(data)
    model = data.pop("model", None)
    if isinstance(model, str):
        if model not in PRESETS:
            raise ValueError(f"unknown model preset {model!r}; known: {sorted(PRESETS)}")
        data["model"] = PRESETS[model]
    elif isinstance(model, dict):
        data["model"] = ModelConfig.from_dict({**PRESETS["real"].to_dict(), **model})
    if isinstance(data.get("crops"), dict):
        data["crops"] = replace(RecipeConfig().crops, **data["crops"])  # over the recipe's own crop settings
    return RecipeConfig(**data)


def train_segmenter(model: UnifiedNet, dataset: HandDataset, epochs: int, lr: float, batch_size: int, seed: int,
                    max_seconds: float, log: Any = None, callback: TrainCallback | None = None,
                    resume: StageState | None = None,
                    on_progress: Callable[[int, int, float, dict[str, Any], list[dict[str, Any]]], None] | None = None,
                    ) -> dict[str, Any]:
    """Stage 1: the segmenter alone on its Mask R-CNN losses (targets: the dataset's masks), AdamW + cosine.
    `callback`: its steps are reported and a stop request ends the stage (`cancelled` in the result). `on_progress`
    gets (epochs done, step, seconds, optimizer state, curve) after every epoch; `resume` continues from such a state
    (the model's weights already loaded)."""
    assert model.segmenter is not None
    seg = model.segmenter
    start = resume.epochs_done if resume else 0
    t0 = time.perf_counter() - (resume.stage_seconds if resume else 0.0)
    torch.manual_seed(seed + start)
    loader = DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(seed + start), drop_last=len(dataset) > batch_size)
    opt = torch.optim.AdamW(seg.parameters(), lr=lr, weight_decay=1e-4)
    if resume is not None:
        opt.load_state_dict(resume.optimizer)
    total = max(epochs * len(loader), 1)
    step = resume.step if resume else 0
    curve: list[dict[str, Any]] = list(resume.notes.get("segmenter_curve", [])) if resume else []
    for epoch in range(start, epochs):
        if resume is not None and time.perf_counter() - t0 > max_seconds:
            break  # the stage's budget was spent before the kill
        seg.train()
        dataset.epoch = epoch
        losses = []
        for batch in loader:
            if callback is not None and callback.should_stop():
                return {"epochs": len(curve), "seconds": time.perf_counter() - t0, "curve": curve, "cancelled": True}
            progress = min(max(step / total, (time.perf_counter() - t0) / max_seconds), 1.0)
            for group in opt.param_groups:
                group["lr"] = cosine_lr(lr, progress, 0.0)
            parts, _ = seg(batch["image"], targets_from_batch(batch), detect=False)
            loss = sum(parts.values(), torch.zeros(()))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(seg.parameters(), 10.0)
            if torch.isfinite(loss):
                opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if callback is not None:
                callback.on_step(step, losses[-1])
        row = {"stage": "segmenter", "epoch": epoch + 1, "loss": sum(losses) / max(len(losses), 1),
               "seconds": round(time.perf_counter() - t0, 1)}
        curve.append(row)
        if on_progress is not None:
            on_progress(epoch + 1, step, time.perf_counter() - t0, opt.state_dict(), curve)
        if log:
            log(row)
        if time.perf_counter() - t0 > max_seconds:
            break
    seg.eval()
    return {"epochs": len(curve), "seconds": time.perf_counter() - t0, "curve": curve}


def run(samples: list[Sample], out: Path, config: RecipeConfig | None = None, *,
        callback: TrainCallback | None = None, quiet: bool = False, val_ids: set[str] | None = None,
        resume: bool = False) -> TrainResult:
    """The three stages on `samples` (validation: `val_ids`, default the stable 10 % by id as every run), checkpoint
    to `out`. A `callback` that asks to stop ends the run at the next step of any stage, with nothing written. After
    every segmenter and regressor epoch the run's state is kept beside `out` (ml.resume); `resume` continues from it
    (from the start when there is none)."""
    config = config or RecipeConfig()
    key = run_key(samples, {**asdict(config), "threads": None, "val_ids": sorted(val_ids or [])})
    state = load_state(out, key) if resume else None
    if state is not None and not quiet:
        print(f"resuming {out}: {state.stage} stage after {state.epochs_done} epochs, {state.recipe_seconds:.0f} s "
              "spent", file=sys.stderr, flush=True)
    t0 = time.perf_counter() - (state.recipe_seconds if state else 0.0)
    if config.threads:
        torch.set_num_threads(config.threads)
    ids = [s.id for s in samples]
    val_ids = set(val_ids) if val_ids is not None else split_ids(ids, config.val_fraction)
    train_s, val_s = [s for s in samples if s.id not in val_ids], [s for s in samples if s.id in val_ids]
    if not train_s or not val_s:
        raise DataError(f"split leaves {len(train_s)} training and {len(val_s)} validation samples")

    def log(row: dict[str, Any]) -> None:
        if not quiet:
            print(json.dumps(row), file=sys.stderr, flush=True)

    def left() -> float:
        return max(config.max_seconds - (time.perf_counter() - t0), 60.0)

    torch.manual_seed(config.seed)
    model = build_model(config.model)
    _set_age_stats(model, train_s)
    if config.seg_init:
        donor = load_checkpoint(resolve_checkpoint(config.seg_init)).build()
        assert model.segmenter is not None and donor.segmenter is not None
        model.segmenter.load_state_dict(donor.segmenter.state_dict())
    if state is not None:
        model.load_state_dict(state.model)

    def keep(stage: str, done: int, step: int, seconds: float, budget: float, optimizer: dict[str, Any],
             generator: torch.Tensor | None = None, **notes: Any) -> None:
        save_state(out, key, StageState(stage, done, seconds, budget, time.perf_counter() - t0, step,
                                        model.state_dict(), optimizer, generator, notes))

    seg_budget = config.max_seconds * config.seg_share
    if state is None or state.stage == "segmenter":
        seg_data = HandDataset(train_s, config.model.work_size, augment=True, seed=config.seed)
        seg_metrics = train_segmenter(
            model, seg_data, config.seg_epochs, config.seg_lr, config.seg_batch_size, config.seed, seg_budget, log,
            callback, resume=state, on_progress=lambda done, step, seconds, opt, curve: keep(
                "segmenter", done, step, seconds, seg_budget, opt, segmenter_curve=curve))
        del seg_data
        if seg_metrics.get("cancelled"):
            clear_state(out)
            return _cancelled(t0)
        state = None  # the regressor stage starts afresh
    else:
        seg_metrics = state.notes["segmenter_metrics"]
    t_cache = time.perf_counter()
    train_cache, val_cache = (hand_crops(part, config.model.work_size, config.model.crop_size, model.margin,
                                         segmenter=model) for part in (train_s, val_s))
    cache_seconds = time.perf_counter() - t_cache
    log({"stage": "crop cache", "seconds": round(cache_seconds, 1), "n": len(train_cache) + len(val_cache)})
    crops_budget = state.stage_budget if state is not None else left() * config.crops_share
    crops_config = replace(config.crops, seed=config.seed, max_seconds=crops_budget)
    scale = float(model.regressor.head.age_std)
    seg_kept = dict(seg_metrics)
    if state is None:  # a kill from here on resumes at the regressor stage, the segmenter kept
        keep("regressor", 0, 0, 0.0, crops_budget, {}, segmenter_metrics=seg_kept)
    progress = None
    if state is not None and state.epochs_done:
        assert state.generator is not None
        progress = RegressorProgress(state.notes["regressor_curve"], state.step, state.stage_seconds, state.optimizer,
                                     state.generator, state.notes.get("regressor_average"))

    def curve_point(row: dict[str, Any]) -> dict[str, Any]:
        return {"epoch": row["epoch"], "loss": row["train_l1_months"] / scale, "lr": row["lr"],
                "val_mae": row.get("val_mae_running_bn", float("nan")), "stage": "regressor"}

    # the regressor's epochs, as ml.train's curve (the run's curve), those of a killed run included
    stage_curve: list[dict[str, Any]] = [curve_point(row) for row in (progress.curve if progress else [])]

    def regressor_epoch(row: dict[str, Any]) -> None:
        log({"stage": "regressor", **row})
        point = curve_point(row)
        stage_curve.append(point)
        if callback is not None:  # the platform's progress: the regressor's epochs are the run's epochs, as many as
            # the budget allows (not the cap)
            callback.on_epoch_end(row["epoch"], {**point, "total_epochs": row["expected_epochs"]})

    def keep_regressor(done: RegressorProgress) -> None:
        keep("regressor", len(done.curve), done.step, done.seconds, crops_budget, done.optimizer, done.generator,
             segmenter_metrics=seg_kept, regressor_curve=done.curve, regressor_average=done.average)

    crops = train_regressor_on_crops(model, train_cache, val_cache, crops_config, on_epoch=regressor_epoch,
                                     should_stop=callback.should_stop if callback is not None else None,
                                     resume=progress, on_progress=keep_regressor)
    if crops.cancelled:
        clear_state(out)
        return _cancelled(t0)
    log({"stage": "regressor", "val_mae_cached_crops": crops.val_mae, "epochs": crops.epochs, "kept": crops.kept,
         "val_mae_last": crops.val_mae_last, "val_mae_average": crops.val_mae_average})
    staged = out.with_name(out.name + ".stage2.pt")
    save_checkpoint(staged, model, config.model, metrics={"stage": "regressor", "val_mae_cached_crops": crops.val_mae},
                    fingerprint=fingerprint(train_s))
    joint = replace(TRAIN_PRESETS["finetune"], model=config.model, epochs=config.joint_epochs, seed=config.seed,
                    threads=config.threads, max_seconds=left(), progress=not quiet)
    stages = {"recipe": "staged", "segmenter_stage": {k: v for k, v in seg_metrics.items() if k != "curve"},
              "crop_cache_seconds": cache_seconds,
              "regressor_stage": {"epochs": crops.epochs, "seconds": crops.seconds,
                                  "val_mae_cached_crops": crops.val_mae, "images_per_s": crops.images_per_s,
                                  "weights_kept": crops.kept, "val_mae_last": crops.val_mae_last,
                                  "val_mae_average": crops.val_mae_average}}
    try:
        result = train(samples, joint, out, callback=callback, init=staged, val_ids=val_ids, extra_metrics=stages)
    finally:
        staged.unlink(missing_ok=True)
    if result.checkpoint is not None or result.cancelled:
        clear_state(out)
    result.metrics["recipe_seconds"] = time.perf_counter() - t0
    result.curve = [*stage_curve, *({**c, "epoch": len(stage_curve) + c["epoch"]} for c in result.curve)]
    return result


def _cancelled(t0: float) -> TrainResult:
    return TrainResult(None, None, {"seconds": time.perf_counter() - t0, "recipe": "staged"}, [], cancelled=True)
