"""Measurements for docs/benchmarks-phantoms.md: automask Dice per distractor mode, generation speed,
automask time on 2048-px films.

    python -m ml.automask --evaluate [--n 500] [--seed 2024] [--modes none,random,shortcut] [--size 512]
    python -m ml.phantoms.evaluate speed [--n 200]          # images/s, render + PNG writes, one process
    python -m ml.phantoms.evaluate automask-time [--n 20]   # ms per 2048-px image
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import numpy as np

from ml.automask import automask, dice
from ml.phantoms.cohort import generate_cohort, sample_subject
from ml.phantoms.render import render


def dice_scores(n: int, seed: int, mode: str, size: int | None) -> dict:
    scores, quals, ms = [], [], []
    for i in range(n):
        age, male, rseed = sample_subject(seed, i)
        ph = render(age, male, rseed, size=size, distractors=mode, split="train" if i % 2 == 0 else "test")
        res = automask(ph.image)
        scores.append(dice(res.mask, ph.mask))
        quals.append(res.quality)
        ms.append(res.timings["total"] * 1000)
    d = np.array(scores)
    q = np.array(quals)
    return {"mode": mode, "n": n, "dice_median": round(float(np.median(d)), 4),
            "dice_p10": round(float(np.percentile(d, 10)), 4), "dice_min": round(float(d.min()), 4),
            "dice_mean": round(float(d.mean()), 4), "quality_mean": round(float(q.mean()), 4),
            "quality_dice_corr": round(float(np.corrcoef(q, d)[0, 1]), 3) if d.std() > 0 and q.std() > 0 else None,
            "automask_ms_mean": round(float(np.mean(ms)), 1),
            "worst": [[int(i), round(float(d[i]), 4)] for i in np.argsort(d)[:3]]}


def evaluate_cli(n: int, seed: int, modes: list[str], size: str) -> int:
    sz = None if str(size).lower() == "native" else int(size)
    for mode in modes:
        r = dice_scores(n, seed, mode.strip(), sz)
        print(f"automask Dice on {r['n']} phantoms, distractors={r['mode']}: median {r['dice_median']:.4f}, "
              f"p10 {r['dice_p10']:.4f}, min {r['dice_min']:.4f}; mean quality {r['quality_mean']:.3f} "
              f"(corr with Dice {r['quality_dice_corr']}); {r['automask_ms_mean']:.0f} ms/image")
        print(json.dumps(r), flush=True)
    return 0


def speed(n: int, seed: int, size: int | None) -> dict:
    c0 = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        res = generate_cohort(tmp, n, seed, size=size, distractors="random", progress=False)
    cpu = time.process_time() - c0
    return {"n": n, "size": size, "images_per_s": round(res.images_per_s, 2), "seconds": round(res.seconds, 2),
            "images_per_cpu_s": round(n / max(cpu, 1e-9), 2), "load_avg_1min": round(_load(), 2)}


def automask_time(n: int, seed: int) -> dict:
    times, cpu = [], []
    for i in range(n):
        age, male, rseed = sample_subject(seed, i)
        ph = render(age, male, rseed, size=2048, distractors="random")
        automask(ph.image)  # warm caches for this shape
        t0, c0 = time.perf_counter(), time.process_time()
        automask(ph.image)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return {"n": n, "size": 2048, "ms_median": round(float(np.median(times)), 1),
            "ms_p90": round(float(np.percentile(times, 90)), 1), "ms_max": round(float(np.max(times)), 1),
            "cpu_ms_median": round(float(np.median(cpu)), 1), "load_avg_1min": round(_load(), 2)}


def _load() -> float:
    try:
        import os

        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.phantoms.evaluate")
    ap.add_argument("what", choices=["dice", "speed", "automask-time"])
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--size", default="512")
    ap.add_argument("--modes", default="none,random,shortcut")
    args = ap.parse_args(argv)
    if args.what == "dice":
        return evaluate_cli(args.n or 500, args.seed, args.modes.split(","), args.size)
    if args.what == "speed":
        sz = None if args.size == "native" else int(args.size)
        r = speed(args.n or 200, args.seed, sz)
        print(f"generation: {r['images_per_s']:.1f} images/s wall, {r['images_per_cpu_s']:.1f} per CPU-second, at "
              f"size {r['size']} ({r['n']} images, random distractors, PNG + mask writes, one process; "
              f"load {r['load_avg_1min']})")
    else:
        r = automask_time(args.n or 20, args.seed)
        print(f"automask on 2048-px images: median {r['ms_median']:.0f} ms wall ({r['cpu_ms_median']:.0f} ms CPU), "
              f"p90 {r['ms_p90']:.0f} ms, max {r['ms_max']:.0f} ms ({r['n']} images; load {r['load_avg_1min']})")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
