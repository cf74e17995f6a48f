"""Helpers of `make starter-weights` (ml/weights/README.md).

    python -m ml.starter merge OUT DIR [DIR ...]   # one training folder from several phantom cohorts
    python -m ml.starter score CKPT DATA [--json FILE]   # held-out MAE overall / by sex / by age band

`merge` symlinks the images and masks and prefixes every id with its cohort folder's name, because each
cohort numbers its phantoms from 1000. `score` runs the full pipeline (predicted masks) in eval mode.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch

from ml.checkpoint import load_checkpoint
from ml.data import HandDataset, read_folder
from ml.train import evaluate, summarize


def merge(out: Path, folders: list[Path]) -> int:
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rows = []
    for folder in folders:
        for s in read_folder(folder):
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
    s = sub.add_parser("score")
    s.add_argument("ckpt", type=Path)
    s.add_argument("data", type=Path)
    s.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.cmd == "merge":
        print(f"{merge(args.out, args.folders)} samples → {args.out}")
        return 0
    result = score(args.ckpt, args.data)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
