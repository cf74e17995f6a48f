"""Throughput check of a preset on this machine's accelerator (or CPU): scripts/gpu-check.sh runs it.

    python -m ml.gpu_check [--preset paper] [--steps 30] [--warmup 5] [--batch 16] [--epoch-images 12611]

Trains `steps` steps of the unified network (segmenter + regressor, the joint loss, mask gradient on) on
synthetic hand-shaped inputs at the preset's canvas size, with the trainer's CUDA settings (bf16 autocast,
channels_last, cudnn.benchmark), then times eval-mode inference. Prints training images/s, inference ms/image
and the projected time of one epoch of `epoch_images` images (RSNA's training set: 12,611). Synthetic data on
purpose: the number measures the model and the device, not the JPEG decoder.

With `--data DIR` (an RSNA-layout folder: real films, or `--phantoms N` native-size phantoms made in a scratch folder)
the steps read through the trainer's own DataLoader instead (decoding, Canny masks, augmentation, `--workers`
processes, the preset's count by default), and the check also prints the share of the time spent waiting for data,
the time to the first step and the peak memory (the GPU's, or this process's resident set on a CPU).
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ml.data import DataError, HandDataset, collate, read_folder, targets_from_batch
from ml.models import build_model
from ml.train import TRAIN_PRESETS, make_optimizer, pick_device


def synthetic_batch(batch: int, size: int, device: torch.device, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Bright ellipse-ish blobs (the 'hand') with their masks and boxes on a dark, noisy background."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    images, masks, boxes = [], [], []
    for _ in range(batch):
        cx, cy, rx, ry = (torch.rand(4, generator=gen) * torch.tensor([0.4, 0.4, 0.3, 0.3]) +
                          torch.tensor([-0.2, -0.2, 0.4, 0.5])).tolist()
        mask = (((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1).float()
        images.append((0.1 + 0.6 * mask + 0.05 * torch.rand(size, size, generator=gen)).clamp(0, 1))
        masks.append(mask)
        yy, xx = torch.nonzero(mask, as_tuple=True)
        boxes.append(torch.stack([xx.min(), yy.min(), xx.max() + 1, yy.max() + 1]).float())
    return {"image": torch.stack(images)[:, None].to(device), "mask": torch.stack(masks)[:, None].to(device),
            "box": torch.stack(boxes).to(device), "age": (torch.rand(batch, generator=gen) * 228).to(device),
            "sex": (torch.randint(0, 2, (batch,), generator=gen).float() * 2 - 1).to(device)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _batches(data: str | None, batch: int, size: int, workers: int, device: torch.device,
             gen: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
    """Endless training batches: two synthetic ones in turn, or the trainer's DataLoader over `data`."""
    if data is None:
        fixed = [synthetic_batch(batch, size, device, gen) for _ in range(2)]
        while True:
            yield from fixed
    dataset = HandDataset(read_folder(data), size, augment=True, seed=0, cache=False)  # decoded as a real run does
    loader = DataLoader(dataset, batch_size=min(batch, len(dataset)), shuffle=True, collate_fn=collate,
                        num_workers=workers, persistent_workers=workers > 0, pin_memory=device.type == "cuda",
                        drop_last=True, generator=torch.Generator().manual_seed(0))
    epoch = 0
    while True:
        dataset.epoch = epoch
        for b in loader:
            yield {k: v.to(device, non_blocking=True) for k, v in b.items()}
        epoch += 1


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def check(preset: str = "paper", steps: int = 30, warmup: int = 5, batch: int = 16, epoch_images: int = 12611,
          infer_batches: int = 5, data: str | None = None, workers: int | None = None) -> dict:
    config = TRAIN_PRESETS[preset]
    device = pick_device()
    started = time.perf_counter()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = build_model(config.model).to(device)
    if device.type == "cuda" and config.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.mask_grad = True
    opt = make_optimizer(model, config)
    use_amp = config.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    size = config.model.work_size
    workers = config.num_workers if workers is None else workers
    batches = _batches(data, batch, size, workers, device, gen)
    model.train()
    t0, wait_s, first_step_s = 0.0, 0.0, None
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0, wait_s = time.perf_counter(), 0.0
        t_wait = time.perf_counter()
        b = next(batches)
        wait_s += time.perf_counter() - t_wait
        batch = len(b["age"])
        teacher = torch.zeros(batch, dtype=torch.bool, device=device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            out = model(b["image"], b["sex"], targets_from_batch(b), teacher)
            loss = (out.age.float() - b["age"]).abs().mean() / 60 + sum(out.losses.values(), torch.zeros((), device=device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if first_step_s is None:
            _sync(device)
            first_step_s = time.perf_counter() - started
    _sync(device)
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
        model(b["image"], b["sex"])  # warm-up
        _sync(device)
        t1 = time.perf_counter()
        for _ in range(infer_batches):
            model(b["image"], b["sex"])
        _sync(device)
    infer_s = time.perf_counter() - t1
    images_per_s = steps * batch / max(train_s, 1e-9)
    return {"preset": preset, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "canvas_px": size, "crop_px": config.model.crop_size, "batch": batch, "steps": steps,
            "amp": str(amp_dtype).replace("torch.", "") if use_amp else "off",
            "train_images_per_s": round(images_per_s, 2),
            "inference_ms_per_image": round(infer_s / (infer_batches * batch) * 1000, 2),
            "projected_epoch_minutes": round(epoch_images / images_per_s / 60, 2), "epoch_images": epoch_images,
            "data": data or "synthetic", "workers": workers if data else 0,
            "data_wait_share": round(wait_s / max(train_s, 1e-9), 3), "first_step_seconds": round(first_step_s or 0, 1),
            "peak_memory_mib": round(_peak_memory_mib(device), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.gpu_check")
    ap.add_argument("--preset", choices=sorted(TRAIN_PRESETS), default="paper")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epoch-images", type=int, default=12611)
    ap.add_argument("--infer-batches", type=int, default=5)
    ap.add_argument("--data", help="read the steps from this RSNA-layout folder through the trainer's DataLoader")
    ap.add_argument("--phantoms", type=int, default=0,
                    help="instead of --data: make this many native-size phantoms (2,000 px) in a scratch folder")
    ap.add_argument("--workers", type=int, help="DataLoader processes (default: the preset's)")
    args = ap.parse_args(argv)
    data = args.data
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        if args.phantoms and not data:
            from ml.phantoms import generate_cohort

            generate_cohort(Path(scratch), args.phantoms, seed=12611, size=2000, distractors="real", progress=False)
            data = scratch
        try:
            result = check(args.preset, args.steps, args.warmup, args.batch, args.epoch_images, args.infer_batches,
                           data, args.workers)
        except DataError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    print(json.dumps(result))
    print(f"{result['preset']} on {result['device']}: training {result['train_images_per_s']} images/s at "
          f"{result['canvas_px']} px, inference {result['inference_ms_per_image']} ms/image, "
          f"one {result['epoch_images']}-image epoch ≈ {result['projected_epoch_minutes']} min; data {result['data']}: "
          f"{100 * result['data_wait_share']:.0f} % of the time waiting for it, first step after "
          f"{result['first_step_seconds']} s, peak memory {result['peak_memory_mib']} MiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
