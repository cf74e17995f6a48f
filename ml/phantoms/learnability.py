"""Is bone age learnable from the phantoms' skeleton? A tiny CNN, a few minutes on CPU.

    python -m ml.phantoms.learnability [--train 2000] [--test 500] [--size 256] [--epochs 14] [--seed 7]

Renders `--train` + `--test` phantoms (no distractors), masks each with its ground-truth hand mask and
crops to the mask's box (what the segmentation subnet will do), resizes to `--size` px, trains a small
CNN (sex concatenated before the head, L1 loss) and prints the test MAE next to the MAE of always
predicting the training mean. The issue's target: model MAE < 25% of the mean-predictor MAE.
Self-contained on purpose: it must not depend on ml.models.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from PIL import Image

from ml.phantoms.cohort import sample_subject
from ml.phantoms.render import render


def crop_to_mask(image: np.ndarray, mask: np.ndarray, size: int, margin: float = 0.04) -> np.ndarray:
    """Masked hand, cropped to the mask's box (+margin), padded square, resized to size×size float32 [0,1]."""
    unit = image.astype(np.float32) / 65535.0 * (mask > 0)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        ys, xs = np.array([0, mask.shape[0] - 1]), np.array([0, mask.shape[1] - 1])
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = int(max(y1 - y0, x1 - x0) * (1 + 2 * margin))
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    canvas = np.zeros((side, side), np.float32)
    sy0, sx0 = cy - side // 2, cx - side // 2
    ty0, tx0 = max(sy0, 0), max(sx0, 0)
    ty1, tx1 = min(sy0 + side, unit.shape[0]), min(sx0 + side, unit.shape[1])
    canvas[ty0 - sy0:ty1 - sy0, tx0 - sx0:tx1 - sx0] = unit[ty0:ty1, tx0:tx1]
    img = Image.fromarray(canvas, mode="F").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def make_set(n: int, seed: int, size: int, render_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs = np.zeros((n, size, size), np.float32)
    ages = np.zeros(n, np.float32)
    males = np.zeros(n, np.float32)
    for i in range(n):
        age, male, rseed = sample_subject(seed, i)
        ph = render(age, male, rseed, size=render_size)
        xs[i] = crop_to_mask(ph.image, ph.mask, size)
        ages[i], males[i] = age, float(male)
    return xs, ages, males


def build_net():
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class TinyAgeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            stem = nn.Sequential(nn.Conv2d(1, 16, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(16),
                                 nn.ReLU(inplace=True), nn.MaxPool2d(2))
            self.features = nn.Sequential(stem, block(16, 32), block(32, 64), block(64, 96), block(96, 128),
                                          nn.AdaptiveAvgPool2d(1))
            self.head = nn.Sequential(nn.Linear(128 + 1, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))

        def forward(self, x: torch.Tensor, male: torch.Tensor) -> torch.Tensor:
            f = self.features(x).flatten(1)
            return self.head(torch.cat([f, male[:, None]], 1)).squeeze(1)

    return TinyAgeNet()


def run(n_train: int, n_test: int, size: int, epochs: int, seed: int, render_size: int, threads: int) -> dict:
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    xtr, ytr, mtr = make_set(n_train, seed, size, render_size)
    xte, yte, mte = make_set(n_test, seed + 1_000_003, size, render_size)
    t_data = time.perf_counter() - t0
    scale = 228.0
    net = build_net()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    steps_per_epoch = int(np.ceil(n_train / 32))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
    Xtr, Ytr, Mtr = torch.from_numpy(xtr)[:, None], torch.from_numpy(ytr / scale), torch.from_numpy(mtr)
    Xte, Mte = torch.from_numpy(xte)[:, None], torch.from_numpy(mte)
    g = torch.Generator().manual_seed(seed)
    t1 = time.perf_counter()
    history = []
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(n_train, generator=g)
        total = 0.0
        for k in range(steps_per_epoch):
            idx = perm[k * 32:(k + 1) * 32]
            x = Xtr[idx]
            if torch.rand(1, generator=g).item() < 0.5:  # mirror: left/right hands
                x = x.flip(-1)
            loss = torch.nn.functional.l1_loss(net(x, Mtr[idx]), Ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        mae = evaluate(net, Xte, Mte, yte, scale)
        history.append({"epoch": ep + 1, "train_l1_months": round(total / n_train * scale, 2),
                        "test_mae_months": round(mae, 2)})
        print(json.dumps(history[-1]), flush=True)
    mae = evaluate(net, Xte, Mte, yte, scale)
    mean_mae = float(np.mean(np.abs(yte - ytr.mean())))
    return {"n_train": n_train, "n_test": n_test, "size": size, "epochs": epochs, "render_size": render_size,
            "model_mae_months": round(mae, 2), "mean_predictor_mae_months": round(mean_mae, 2),
            "ratio": round(mae / mean_mae, 4), "target_ratio": 0.25, "passed": bool(mae < 0.25 * mean_mae),
            "data_seconds": round(t_data, 1), "train_seconds": round(time.perf_counter() - t1, 1),
            "threads": threads, "history": history}


def evaluate(net, X, M, y: np.ndarray, scale: float) -> float:
    import torch

    net.eval()
    preds = []
    with torch.no_grad():
        for k in range(0, len(X), 64):
            preds.append(net(X[k:k + 64], M[k:k + 64]).numpy() * scale)
    return float(np.mean(np.abs(np.concatenate(preds) - y)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.phantoms.learnability", description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--size", type=int, default=256, help="network input side after masking/cropping")
    ap.add_argument("--render-size", type=int, default=512, help="phantom long side before cropping")
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args(argv)
    res = run(args.train, args.test, args.size, args.epochs, args.seed, args.render_size, args.threads)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    print(f"learnability: model MAE {res['model_mae_months']:.2f} months vs mean-predictor MAE "
          f"{res['mean_predictor_mae_months']:.2f} months (ratio {res['ratio']:.3f}, target < 0.25: "
          f"{'PASS' if res['passed'] else 'FAIL'}); data {res['data_seconds']} s, training {res['train_seconds']} s")
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
