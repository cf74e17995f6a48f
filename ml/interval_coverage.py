"""How often the platform's interval holds the truth on held-out studies when a model is calibrated on few of them.

    python -m ml.interval_coverage --ckpt starter --n 400 --seed 32032 [--repeats 500] [--pool CKPT] [--save FILE.npz]
    python -m ml.interval_coverage --from-saved FILE.npz            # re-score saved readings: seconds, no model
    python -m ml.interval_coverage --ckpt starter --n 200 --seed 55555 --write-scores ml/weights/starter-interval-scores.json

Reads `n` fresh phantoms (`ml.phantoms`, random distractors, 512 px; a seed no training used) with the checkpoint
through the product's reading path (`ml.infer.Predictor`: its reading and calibrated std). Then, `repeats` times for
each calibration size (12, 40, 100 studies) and level (80, 90, 95 %): draw that many of the readings as the version's
held-out studies, state the interval for the rest as the platform would (ml.uncertainty: the split-conformal
multiplier on the far-out-fenced scores, and when they are too few for the level, `pool_scores` with the checkpoint's
own stored calibration scores, the fallback a version fine-tuned from it gets, or `--pool`'s: another model's, as a
version fine-tuned from the starter pools with the starter's), and count how often it holds the true age. `own only` is the interval before the fallback: the whole age range where the studies are too few.
`--write-scores` writes the readings' calibration scores instead (how the shipped starter's were made: seed 55555 is
its documented held-out set, ml/weights/README.md).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.uncertainty import conformal_scores, interval_multiplier, pool_scores

SIZES = (12, 40, 100)
LEVELS = (0.8, 0.9, 0.95)
AGE_RANGE_MONTHS = 240.0  # the platform's default project range: the whole-range interval's width


@dataclass(frozen=True)
class CoverageRow:
    calibration_studies: int
    level: float
    coverage: float            # the product's rule (own scores, pooled when too few): share of held-out truths inside
    coverage_spread: float     # std over the repeats of each repeat's coverage
    pooled_share: float        # share of repeats whose own scores were too few, so the rule pooled
    median_width: float        # months, the median over every held-out reading of every repeat
    own_only_coverage: float   # the interval before the fallback (the whole range when too few)
    own_only_width: float


def coverage_table(errors: np.ndarray, stds: np.ndarray, pool: list[float], *, sizes=SIZES, levels=LEVELS,
                   repeats: int = 500, seed: int = 0) -> list[CoverageRow]:
    """Pure: readings' errors (months) and calibrated stds in, one row per (size, level). Seeded."""
    errors, stds = np.abs(np.asarray(errors, float)), np.asarray(stds, float)
    rng = np.random.default_rng(seed)
    rows = []
    for size in sizes:
        if size >= len(errors):
            raise ValueError(f"{size} calibration studies need more than {len(errors)} readings")
        draws = [rng.permutation(len(errors)) for _ in range(repeats)]
        for level in levels:
            covered, own_covered, widths, own_widths, pooled = [], [], [], [], 0
            for order in draws:
                cal, test = order[:size], order[size:]
                own = conformal_scores(errors[cal], stds[cal])
                scores, used = pool_scores(own, [("starter", pool)], level)
                pooled += bool(used)
                q, q_own = interval_multiplier(scores, level), interval_multiplier(own, level)
                covered.append(float(np.mean(errors[test] <= q * stds[test])))
                own_covered.append(float(np.mean(errors[test] <= q_own * stds[test])))
                widths.append(_widths(q, stds[test]))
                own_widths.append(_widths(q_own, stds[test]))
            rows.append(CoverageRow(size, level, float(np.mean(covered)), float(np.std(covered)), pooled / repeats,
                                    float(np.median(np.concatenate(widths))), float(np.mean(own_covered)),
                                    float(np.median(np.concatenate(own_widths)))))
    return rows


def _widths(multiplier: float, stds: np.ndarray) -> np.ndarray:
    return np.full(len(stds), AGE_RANGE_MONTHS) if math.isinf(multiplier) else np.minimum(2 * multiplier * stds,
                                                                                          AGE_RANGE_MONTHS)


def read_phantoms(ckpt: str, n: int, seed: int, pool: str | None = None) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(errors, stds) of the checkpoint's readings of `n` fresh phantoms, and the calibration scores stored with
    `pool` (default: with the checkpoint itself)."""
    from ml.checkpoint import interval_calibration_scores, resolve_checkpoint
    from ml.data import read_folder
    from ml.imaging import load_image
    from ml.infer import Predictor
    from ml.phantoms.cohort import generate_cohort

    path = resolve_checkpoint(ckpt)
    predictor = Predictor(path)
    with tempfile.TemporaryDirectory() as tmp:
        generate_cohort(tmp, n, seed, distractors="random", size=512, progress=False)
        samples = read_folder(tmp)
        errors, stds = [], []
        for k in range(0, len(samples), 8):
            chunk = samples[k:k + 8]
            readings = predictor.predict_batch([load_image(s.image_path) for s in chunk], [s.male for s in chunk],
                                               with_attention=False)
            errors += [r.age_months - s.age_months for r, s in zip(readings, chunk)]
            stds += [r.std_months for r in readings]
            print(f"\r{len(errors)}/{len(samples)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    scores = (interval_calibration_scores(resolve_checkpoint(pool)) if pool else
              interval_calibration_scores(path, predictor.checkpoint))
    return np.array(errors), np.array(stds), scores


def describe(rows: list[CoverageRow], n: int, pool: int) -> str:
    header = ("| calibration studies | level | coverage (± sd over draws) | pooled | median width | own only: coverage, "
              "median width |")
    lines = [f"{n} held-out readings; fallback pool: {pool} stored calibration scores", header,
             "|---|---|---|---|---|---|"]
    lines += [f"| {r.calibration_studies} | {r.level:.0%} | {r.coverage:.3f} (± {r.coverage_spread:.3f}) | "
              f"{r.pooled_share:.0%} | {r.median_width:.1f} | {r.own_only_coverage:.3f}, {r.own_only_width:.1f} |"
              for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.interval_coverage", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", default="starter", help="checkpoint, or `starter` (default)")
    ap.add_argument("--n", type=int, default=400, help="fresh phantoms to read (default 400)")
    ap.add_argument("--seed", type=int, default=32032, help="the phantoms' seed (default 32032)")
    ap.add_argument("--pool", help="the checkpoint whose stored calibration scores are the fallback (default: --ckpt)")
    ap.add_argument("--repeats", type=int, default=500, help="random calibration draws per size (default 500)")
    ap.add_argument("--save", type=Path, help="write the readings here (.npz)")
    ap.add_argument("--from-saved", type=Path, help="score readings saved by --save instead of reading phantoms")
    ap.add_argument("--write-scores", type=Path, help="write the readings' calibration scores to this JSON file")
    args = ap.parse_args(argv)
    if args.from_saved:
        saved = np.load(args.from_saved)
        errors, stds, pool = saved["errors"], saved["stds"], list(saved["pool"])
    else:
        errors, stds, pool = read_phantoms(args.ckpt, args.n, args.seed, args.pool)
        if args.save:
            np.savez(args.save, errors=errors, stds=stds, pool=np.array(pool))
    if args.write_scores:
        args.write_scores.write_text(json.dumps({
            "about": f"|error| / std of {args.ckpt}'s readings of {len(errors)} phantoms (seed {args.seed}, random "
                     f"distractors, 512 px), MAE {np.abs(errors).mean():.2f} months: ml/interval_coverage.py",
            "interval_scores": conformal_scores(errors, stds)}) + "\n")
        return 0
    print(f"MAE {np.abs(errors).mean():.2f} months")
    print(describe(coverage_table(errors, stds, pool, repeats=args.repeats), len(errors), len(pool)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
