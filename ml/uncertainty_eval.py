"""How well a model's std orders its errors: Spearman ρ and the area under the sparsification error (AUSE).

    python -m ml.uncertainty_eval CKPT DATA_DIR [--method mc|tta|both] [--mc-samples 16]

Methods: `mc` = MC dropout (the dropout modules only); `tta` = test-time augmentation, the spread of the readings of
TTA_VIEWS (mirror, gamma, zoom: what the starter was trained with) without dropout; `both` = the two spreads added
in quadrature around the TTA mean.

Sparsification: drop the studies the model is least sure of first and watch the MAE of the rest; the oracle drops the
largest errors first. AUSE is the area between the two curves (months; 0 = the std orders the errors perfectly).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr


@dataclass(frozen=True)
class Ranking:
    n: int
    mae: float
    spearman: float
    ause: float
    mae_surest_half: float
    mae_least_sure_half: float


def _sparsification(errors: np.ndarray, order: np.ndarray) -> np.ndarray:
    """MAE of what is left after removing 0, 1, … of the studies at the end of `order` (kept first)."""
    kept = errors[order]
    return np.array([kept[: len(kept) - k].mean() for k in range(len(kept) - 1)])


def rank_errors(errors: np.ndarray, std: np.ndarray) -> Ranking:
    errors, std = np.abs(np.asarray(errors, float)), np.asarray(std, float)
    by_std, oracle = _sparsification(errors, np.argsort(std, kind="stable")), _sparsification(errors, np.argsort(errors))
    fractions = np.arange(len(by_std)) / len(errors)
    surest = np.argsort(std, kind="stable")
    half = len(errors) // 2
    return Ranking(len(errors), float(errors.mean()), float(spearmanr(std, errors).statistic),
                   float(np.trapezoid(by_std - oracle, fractions)), float(errors[surest[:half]].mean()),
                   float(errors[surest[half:]].mean()))


TTA_VIEWS = ("identity", "mirror", "gamma 0.8", "gamma 1.25", "zoom in 6 %", "zoom out 6 %")


def tta_views(image: np.ndarray) -> list[np.ndarray]:
    """The image as TTA_VIEWS, each the same shape as the input (zoom keeps the centre, edge-padded outwards)."""
    from scipy.ndimage import zoom as rescale

    def zoomed(factor: float) -> np.ndarray:
        h, w = image.shape
        scaled = rescale(image, factor, order=1)
        sh, sw = scaled.shape
        if factor >= 1:
            top, left = (sh - h) // 2, (sw - w) // 2
            return np.ascontiguousarray(scaled[top:top + h, left:left + w])
        top, left = (h - sh) // 2, (w - sw) // 2
        return np.pad(scaled, ((top, h - sh - top), (left, w - sw - left)), mode="edge")

    clipped = np.clip(image, 0.0, 1.0)
    return [image, np.ascontiguousarray(image[:, ::-1]), clipped ** 0.8, clipped ** 1.25, zoomed(1.06), zoomed(1 / 1.06)]


def tta_spread(predictor, images: list[np.ndarray], males: list[bool | None]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over TTA_VIEWS of each image's reading (no dropout: the spread is the views' alone)."""
    readings = []
    for views in zip(*[tta_views(image) for image in images]):
        readings.append([r.age_months for r in predictor.predict_batch(list(views), males, with_attention=False,
                                                                        mc_samples=0)])
    table = np.array(readings)  # [views, images]
    return table.mean(axis=0), table.std(axis=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.uncertainty_eval", description=__doc__.splitlines()[0])
    ap.add_argument("ckpt", help="checkpoint, or `starter`")
    ap.add_argument("data", help="folder with labels.csv and images/")
    ap.add_argument("--mc-samples", type=int, default=16)
    ap.add_argument("--method", choices=("mc", "tta", "both"), default="mc")
    args = ap.parse_args(argv)
    from ml.checkpoint import resolve_checkpoint
    from ml.data import read_folder
    from ml.imaging import load_image
    from ml.infer import Predictor

    start = time.perf_counter()
    samples = read_folder(args.data)
    predictor = Predictor(resolve_checkpoint(args.ckpt))
    errors, stds = [], []
    for i in range(0, len(samples), 16):
        chunk = samples[i:i + 16]
        images, males = [load_image(s.image_path) for s in chunk], [s.male for s in chunk]
        truth = np.array([s.age_months for s in chunk])
        if args.method in ("mc", "both"):
            readings = predictor.predict_batch(images, males, with_attention=False, mc_samples=args.mc_samples)
            mean, std = np.array([r.age_months for r in readings]), np.array([r.std_months for r in readings])
        if args.method in ("tta", "both"):
            tta_mean, tta_std = tta_spread(predictor, images, males)
            mean, std = tta_mean, (tta_std if args.method == "tta" else np.hypot(std, tta_std))
        errors += list(mean - truth)
        stds += list(std)
    r = rank_errors(np.array(errors), np.array(stds))
    print(f"{args.method}: {r.n} studies: MAE {r.mae:.2f} months, Spearman(std, |error|) {r.spearman:.3f}, AUSE {r.ause:.2f} months; "
          f"MAE of the surer half {r.mae_surest_half:.2f} vs the less sure half {r.mae_least_sure_half:.2f} "
          f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
