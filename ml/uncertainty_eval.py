"""How well a model's std orders its errors: Spearman ρ and the area under the sparsification error (AUSE).

    python -m ml.uncertainty_eval CKPT DATA_DIR [--mc-samples 16]

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.uncertainty_eval", description=__doc__.splitlines()[0])
    ap.add_argument("ckpt", help="checkpoint, or `starter`")
    ap.add_argument("data", help="folder with labels.csv and images/")
    ap.add_argument("--mc-samples", type=int, default=16)
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
        readings = predictor.predict_batch([load_image(s.image_path) for s in chunk], [s.male for s in chunk],
                                           with_attention=False, mc_samples=args.mc_samples)
        errors += [r.age_months - s.age_months for r, s in zip(readings, chunk)]
        stds += [r.std_months for r in readings]
    r = rank_errors(np.array(errors), np.array(stds))
    print(f"{r.n} studies: MAE {r.mae:.2f} months, Spearman(std, |error|) {r.spearman:.3f}, AUSE {r.ause:.2f} months; "
          f"MAE of the surer half {r.mae_surest_half:.2f} vs the less sure half {r.mae_least_sure_half:.2f} "
          f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
