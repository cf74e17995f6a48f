"""Throughput check of a preset on this machine's accelerator (or CPU): scripts/gpu-check.sh runs it.

    python -m ml.gpu_check [--preset paper] [--steps 30] [--warmup 5] [--batch 16] [--epoch-images 12611]

Trains `steps` steps of the unified network (segmenter + regressor, the joint loss, mask gradient on) on
synthetic hand-shaped inputs at the preset's canvas size, with the trainer's CUDA settings (bf16 autocast,
channels_last, cudnn.benchmark), then times eval-mode inference. Prints training images/s, inference ms/image
and the projected time of one epoch of `epoch_images` images (RSNA's training set: 12,611). Synthetic data on
purpose: the number measures the model and the device, not the JPEG decoder.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from ml.data import targets_from_batch
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


def check(preset: str = "paper", steps: int = 30, warmup: int = 5, batch: int = 16, epoch_images: int = 12611,
          infer_batches: int = 5) -> dict:
    config = TRAIN_PRESETS[preset]
    device = pick_device()
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
    data = [synthetic_batch(batch, size, device, gen) for _ in range(2)]
    model.train()
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        b = data[i % 2]
        teacher = torch.zeros(batch, dtype=torch.bool, device=device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            out = model(b["image"], b["sex"], targets_from_batch(b), teacher)
            loss = (out.age.float() - b["age"]).abs().mean() / 60 + sum(out.losses.values(), torch.zeros((), device=device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
        model(data[0]["image"], data[0]["sex"])  # warm-up
        _sync(device)
        t1 = time.perf_counter()
        for _ in range(infer_batches):
            model(data[0]["image"], data[0]["sex"])
        _sync(device)
    infer_s = time.perf_counter() - t1
    images_per_s = steps * batch / max(train_s, 1e-9)
    return {"preset": preset, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "canvas_px": size, "crop_px": config.model.crop_size, "batch": batch, "steps": steps,
            "amp": str(amp_dtype).replace("torch.", "") if use_amp else "off",
            "train_images_per_s": round(images_per_s, 2),
            "inference_ms_per_image": round(infer_s / (infer_batches * batch) * 1000, 2),
            "projected_epoch_minutes": round(epoch_images / images_per_s / 60, 2), "epoch_images": epoch_images}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.gpu_check")
    ap.add_argument("--preset", choices=sorted(TRAIN_PRESETS), default="paper")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epoch-images", type=int, default=12611)
    ap.add_argument("--infer-batches", type=int, default=5)
    args = ap.parse_args(argv)
    result = check(args.preset, args.steps, args.warmup, args.batch, args.epoch_images, args.infer_batches)
    print(json.dumps(result))
    print(f"{result['preset']} on {result['device']}: training {result['train_images_per_s']} images/s at "
          f"{result['canvas_px']} px, inference {result['inference_ms_per_image']} ms/image, "
          f"one {result['epoch_images']}-image epoch ≈ {result['projected_epoch_minutes']} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
