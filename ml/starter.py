"""Helpers of `make starter-weights` (ml/weights/README.md).

    python -m ml.starter merge OUT DIR [DIR ...] [--limit N]   # one training folder from several phantom cohorts
    python -m ml.starter pretrain DATA OUT --segmenter CKPT [--work-size 256 --crop-size 128 --max-seconds S]
                                                   # phase 1: the regressor on cached ground-truth crops (ml.crops)
    python -m ml.starter score CKPT DATA [--json FILE]   # held-out MAE overall / by sex / by age band

`merge` symlinks the images and masks and prefixes every id with its cohort folder's name, because each
cohort numbers its phantoms from 1000. `pretrain` builds the light architecture at the given geometry, takes the segmenter's weights from an earlier
checkpoint (its input is resized to `seg_size` whatever the canvas, so they carry over), trains the regressor on
cached crops (`ml.crops`) and writes a checkpoint `ml.train --init` can continue end to end. `score` runs the full
pipeline (predicted masks) in eval mode.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ml.checkpoint import load_checkpoint, save_checkpoint
from ml.crops import CropTrainConfig, hand_crops, train_regressor_on_crops
from ml.data import HandDataset, fingerprint, read_folder, split_ids
from ml.models import PRESETS, UnifiedNet, build_model
from ml.train import _set_age_stats, evaluate, summarize


def merge(out: Path, folders: list[Path], limit: int | None = None) -> int:
    """One folder of symlinks from several cohorts (ids prefixed by cohort name); `limit`: the first N of each."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rows = []
    for folder in folders:
        for s in read_folder(folder)[:limit]:
            sid = f"{folder.name}-{s.id}"
            for sub, src in (("images", s.image_path), ("masks", s.mask_path)):
                if src is None:
                    continue
                link = out / sub / f"{sid}{src.suffix}"
                if not link.exists():
                    link.symlink_to(src.resolve())
            rows.append((sid, s.age_months, "" if s.male is None else s.male))
    with (out / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "boneage", "male"])
        writer.writerows(rows)
    return len(rows)


def adopt_segmenter(model: UnifiedNet, segmenter_from: Path) -> None:
    """Copy an earlier checkpoint's segmenter weights into `model` (its input is resized to `seg_size` whatever the
    canvas, so they carry over to any work size)."""
    assert model.segmenter is not None
    donor = load_checkpoint(segmenter_from).build()
    assert donor.segmenter is not None
    model.segmenter.load_state_dict(donor.segmenter.state_dict())


def pretrain(data: Path, out: Path, segmenter_from: Path, work_size: int, crop_size: int, config: CropTrainConfig,
             val_fraction: float = 0.1, width: float | None = None, segmenter_crops: bool = True) -> dict:
    """Phase 1 of the starter recipe; returns its metrics (also stored in the checkpoint)."""
    t0 = time.perf_counter()
    samples = read_folder(data)
    val_ids = split_ids([s.id for s in samples], val_fraction)
    train_s, val_s = [s for s in samples if s.id not in val_ids], [s for s in samples if s.id in val_ids]
    light = PRESETS["light"]
    model_config = replace(light, work_size=work_size, crop_size=crop_size, width=width or light.width)
    model = build_model(model_config)
    adopt_segmenter(model, segmenter_from)
    _set_age_stats(model, train_s)
    # The segmenter is frozen in this phase: cut every crop once with its own detection (what inference feeds the
    # regressor), not with the ground-truth mask.
    train_cache, val_cache = (hand_crops(s, work_size, crop_size, model.margin, segmenter=model if segmenter_crops
                                         else None) for s in (train_s, val_s))
    cache_seconds = time.perf_counter() - t0

    def progress(row: dict) -> None:
        print(json.dumps(row), flush=True)
        save_checkpoint(out.with_suffix(".partial.pt"), model, model_config, metrics={"partial": row})

    result = train_regressor_on_crops(model, train_cache, val_cache, config, on_epoch=progress)
    metrics = {"phase": "crops", "val_mae_cached_crops": result.val_mae, "segmenter_crops": segmenter_crops, "epochs": result.epochs,
               "seconds": time.perf_counter() - t0, "cache_seconds": cache_seconds,
               "train_images_per_s": result.images_per_s, "n_train": len(train_s), "n_val": len(val_s),
               "segmenter_from": str(segmenter_from), "crop_config": asdict(config), "curve": result.curve}
    save_checkpoint(out, model, model_config, metrics=metrics, fingerprint=fingerprint(train_s))
    return metrics


def score(ckpt: Path, data: Path, batch_size: int = 16) -> dict:
    model = load_checkpoint(ckpt).build()
    samples = read_folder(data)
    ev = evaluate(model, HandDataset(samples, load_checkpoint(ckpt).model_config.work_size, augment=False),
                  torch.device("cpu"), batch_size)
    assert ev is not None
    result = summarize(ev)
    return {"checkpoint": str(ckpt), "data": str(data), "n": len(samples),
            **{k.replace("val_", "heldout_"): v for k, v in result.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.starter")
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("merge")
    m.add_argument("out", type=Path)
    m.add_argument("folders", type=Path, nargs="+")
    m.add_argument("--limit", type=int, help="take the first N samples (by id) of each folder")
    pre = sub.add_parser("pretrain")
    pre.add_argument("data", type=Path)
    pre.add_argument("out", type=Path)
    pre.add_argument("--segmenter", type=Path, required=True, help="checkpoint whose segmenter weights to start from")
    pre.add_argument("--work-size", type=int, default=PRESETS["light"].work_size)
    pre.add_argument("--crop-size", type=int, default=PRESETS["light"].crop_size)
    pre.add_argument("--width", type=float)
    pre.add_argument("--config", type=Path, help="JSON with CropTrainConfig fields")
    pre.add_argument("--gt-crops", action="store_true", help="crop with the ground-truth masks, not the segmenter's")
    s = sub.add_parser("score")
    s.add_argument("ckpt", type=Path)
    s.add_argument("data", type=Path)
    s.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.cmd == "merge":
        print(f"{merge(args.out, args.folders, args.limit)} samples → {args.out}")
        return 0
    if args.cmd == "pretrain":
        config = CropTrainConfig(**json.loads(args.config.read_text())) if args.config else CropTrainConfig()
        done = pretrain(args.data, args.out, args.segmenter, args.work_size, args.crop_size, config, width=args.width,
                        segmenter_crops=not args.gt_crops)
        print(f"pretrained {done['n_train']} crops, {done['epochs']} epochs, {done['seconds']:.0f} s: val MAE "
              f"{done['val_mae_cached_crops']:.2f} months (cached crops) → {args.out}")
        return 0
    result = score(args.ckpt, args.data)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
