"""Held-out evaluation of a checkpoint through the product's reading path (`ml.infer.Predictor` on full films).

    python -m ml.evaluate --ckpt CKPT|starter --data DIR [--json FILE] [--level 0.9]

Prints MAE overall, by age band and by sex, each with a 95 % bootstrap interval; the mean predictor's MAE on the
same films (the training labels' mean stored in the checkpoint, so a model that learned nothing reads 1.0×); the
share of true ages inside the stated interval at `level` (the checkpoint's conformal multiplier, as the platform
computes it); and how many readings the model flags as outside its experience.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ml.checkpoint import CheckpointError, resolve_checkpoint
from ml.data import DataError, read_folder
from ml.imaging import load_image
from ml.infer import Predictor
from ml.train import AGE_BANDS
from ml.uncertainty import interval_multiplier

BOOTSTRAP = 2000


@dataclass
class Report:
    n: int
    mae: float
    mae_ci: tuple[float, float]
    mean_predictor_mae: float         # always the training labels' mean (stored in the checkpoint)
    ratio_to_mean_predictor: float
    best_constant_mae: float          # always these films' own median: no constant reading does better
    correlation: float
    coverage: float                   # true age inside the stated interval at `level`
    level: float
    outside: int                      # readings flagged outside the model's experience
    coverage_inside: float | None     # coverage over the readings not flagged
    mae_by_band: dict[str, tuple[float, float, float, int]]   # band → (mae, lo, hi, n)
    mae_by_sex: dict[str, tuple[float, float, float, int]]
    seconds: float


def bootstrap_mae(errors: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """(MAE, 2.5 %, 97.5 %) over `BOOTSTRAP` resamples of the films (seeded: the same errors give the same interval)."""
    errors = np.abs(np.asarray(errors, float))
    if errors.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = errors[rng.integers(0, errors.size, (BOOTSTRAP, errors.size))].mean(1)
    return float(errors.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def report(pred: np.ndarray, std: np.ndarray, true: np.ndarray, male: list[bool | None], outside: np.ndarray,
           mean_age: float, multiplier: float, level: float, seconds: float = 0.0) -> Report:
    """The numbers of one evaluation; pure (tests give it arrays)."""
    err = pred - true
    mae, lo, hi = bootstrap_mae(err)
    base = float(np.abs(true - mean_age).mean())
    covered = np.abs(err) <= multiplier * std
    bands = {}
    for a, b in AGE_BANDS:
        sel = (true >= a) & (true < b)
        if sel.any():
            bands[f"{a}-{b}"] = (*bootstrap_mae(err[sel]), int(sel.sum()))
    sexes = {}
    for name, value in (("male", True), ("female", False)):
        sel = np.array([m is value for m in male])
        if sel.any():
            sexes[name] = (*bootstrap_mae(err[sel]), int(sel.sum()))
    inside = ~outside
    return Report(len(true), mae, (lo, hi), base, mae / base if base else float("nan"),
                  float(np.abs(true - np.median(true)).mean()),
                  float(np.corrcoef(pred, true)[0, 1]) if len(true) > 1 and np.std(pred) > 0 else float("nan"),
                  float(covered.mean()), level, int(outside.sum()),
                  float(covered[inside].mean()) if inside.any() else None, bands, sexes, seconds)


def evaluate_folder(ckpt: str | Path, data: str | Path, level: float = 0.9, batch_size: int = 8,
                    progress: bool = False) -> Report:
    t0 = time.perf_counter()
    predictor = Predictor(resolve_checkpoint(str(ckpt)))
    samples = [s for s in read_folder(data) if np.isfinite(s.age_months)]
    if not samples:
        raise DataError(f"{data}: no labelled films to evaluate on")
    preds, stds, flags = [], [], []
    for k in range(0, len(samples), batch_size):
        chunk = samples[k:k + batch_size]
        for p in predictor.predict_batch([load_image(s.image_path) for s in chunk], [s.male for s in chunk],
                                         with_attention=False):
            preds.append(p.age_months)
            stds.append(p.std_months)
            flags.append(bool(p.outside))
        if progress:
            print(f"\r{min(k + batch_size, len(samples))}/{len(samples)}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    scores = predictor.checkpoint.metrics.get("interval_scores")
    multiplier = interval_multiplier(scores, level) if scores else 1.6449
    mean_age = float(predictor.model.regressor.head.age_mean)
    return report(np.array(preds), np.array(stds), np.array([s.age_months for s in samples]),
                  [s.male for s in samples], np.array(flags), mean_age, multiplier, level, time.perf_counter() - t0)


def describe(r: Report) -> str:
    def row(name: str, v: tuple[float, float, float, int]) -> str:
        return f"  {name:>8}: {v[0]:6.2f} [{v[1]:.2f}, {v[2]:.2f}]  n={v[3]}"
    inside = "" if r.coverage_inside is None else f", {r.coverage_inside:.3f} over the {r.n - r.outside} not flagged"
    lines = [(f"MAE {r.mae:.2f} months [{r.mae_ci[0]:.2f}, {r.mae_ci[1]:.2f}] on {r.n} films; mean predictor "
             f"{r.mean_predictor_mae:.2f} (ratio {r.ratio_to_mean_predictor:.3f}), best constant {r.best_constant_mae:.2f}; "
             f"correlation {r.correlation:.3f}; "
             f"{round(100 * r.level)} % interval holds the truth for {r.coverage:.3f}{inside}; "
             f"{r.outside} flagged outside the model's experience ({r.seconds:.0f} s)"),
             "by age band (months):", *(row(k, v) for k, v in r.mae_by_band.items()),
             "by sex:", *(row(k, v) for k, v in r.mae_by_sex.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True, help="checkpoint written by ml.train, or `starter`")
    ap.add_argument("--data", required=True, help="folder with labels.csv (boneage filled in) and images/")
    ap.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--quiet", action="store_true", help="no progress counter")
    args = ap.parse_args(argv)
    if not 0.5 <= args.level < 1.0:
        print(f"error: --level must be in [0.5, 1), got {args.level}", file=sys.stderr)
        return 2
    try:
        result = evaluate_folder(args.ckpt, args.data, args.level, progress=not args.quiet)
    except (CheckpointError, DataError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(describe(result))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
