"""How well a model's std orders its errors: Spearman ρ and the area under the sparsification error (AUSE).

    python -m ml.uncertainty_eval CKPT DATA_DIR [--method age|mc|tta|both|ensemble|ensemble+mc|ensemble+tta|
                                                 ensemble+both (one, or several comma-separated, read in one pass)]
                                  [--members A.pt,B.pt,C.pt] [--mc-samples 16] [--time-studies N] [--bootstrap N]
                                  [--save FILE.npz]
    python -m ml.uncertainty_eval --from-saved FILE.npz --method …   # re-score saved readings: seconds, no models

Methods on CKPT alone: `age` = the baseline to beat, the plain reading as its own std (errors in months grow with
age, so "older = less sure" ranks them somewhat with no uncertainty at all; hence also ρ within age bands); `mc` = MC
dropout (the dropout modules only) around the plain reading; `tta` = test-time augmentation, the spread of the readings
of TTA_VIEWS (mirror, gamma, zoom: what the starter was trained with) without dropout; `both` = the two spreads added
in quadrature around the TTA mean.
Methods on the `--members` (a deep or snapshot ensemble; `starter` may be one): `ensemble` = the members' plain readings,
their mean and their spread; `ensemble+mc` adds each member's MC-dropout variance, `ensemble+tta` pools every member's
TTA views, `ensemble+both` both. Every method is `pooled_spread` of a [members, views, studies] table of readings: the
mean and std of an equal-weight mixture (single-model methods are the one-member case).

Intervals: the product's recipe (ml.uncertainty: fit_calibration, then split-conformal multiplier at 90 %) fitted on
one half of the studies and applied to the other, both ways round: the coverage should be ≈ 0.90 by construction; what
differs between methods is the mean width, against a constant-width interval around the same mean.

Sparsification: drop the studies the model is least sure of first and watch the MAE of the rest; the oracle drops the
largest errors first. AUSE is the area between the two curves (months; 0 = the std orders the errors perfectly).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import spearmanr

from ml.tta import VIEWS as TTA_VIEWS
from ml.tta import ZOOM
from ml.uncertainty import calibrated_std, conformal_scores, fit_calibration, interval_multiplier

if TYPE_CHECKING:
    from ml.infer import Predictor


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
    kept = np.cumsum(errors[order])
    n = len(kept)
    return kept[n - 1:0:-1] / np.arange(n, 1, -1)  # k = 0 … n−2 removed: the mean of the first n − k


def rank_errors(errors: np.ndarray, std: np.ndarray) -> Ranking:
    errors, std = np.abs(np.asarray(errors, float)), np.asarray(std, float)
    by_std, oracle = _sparsification(errors, np.argsort(std, kind="stable")), _sparsification(errors, np.argsort(errors))
    fractions = np.arange(len(by_std)) / len(errors)
    surest = np.argsort(std, kind="stable")
    half = len(errors) // 2
    return Ranking(len(errors), float(errors.mean()), float(spearmanr(std, errors).statistic),
                   float(np.trapezoid(by_std - oracle, fractions)), float(errors[surest[:half]].mean()),
                   float(errors[surest[half:]].mean()))


def tta_views(image: np.ndarray) -> list[np.ndarray]:
    """The full-size image as TTA_VIEWS (ml.tta.VIEWS, which the product makes on the work canvas), each the same shape
    as the input (zoom keeps the centre, edge-padded outwards)."""
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
    return [image, np.ascontiguousarray(image[:, ::-1]), clipped ** 0.8, clipped ** 1.25, zoomed(ZOOM), zoomed(1 / ZOOM)]


@dataclass(frozen=True)
class Spread:
    mean: np.ndarray  # [studies] months
    std: np.ndarray   # [studies] months


def pooled_spread(readings: np.ndarray, within_std: np.ndarray | None = None) -> Spread:
    """Mean and std per study of an equal-weight mixture of readings.

    readings: [members, studies] or [members, views, studies] months; within_std: [members, studies], each member's
    own std (MC dropout), or None. By the law of total variance, std² = the members' mean within-variance (the variance
    over their views, plus within_std²) + the variance of the members' means: without within_std it is exactly the std
    (ddof 0) over all members × views readings. One member with views is `both`/`tta`; several with one view each,
    `ensemble`.
    """
    table = np.asarray(readings, float)
    if table.ndim == 2:
        table = table[:, None, :]
    if table.ndim != 3 or table.shape[0] < 1 or table.shape[1] < 1:
        raise ValueError(f"readings must be [members, studies] or [members, views, studies], got {table.shape}")
    member_means = table.mean(axis=1)                      # [members, studies]
    within = table.var(axis=1)                             # the views' variance, per member
    if within_std is not None:
        extra = np.asarray(within_std, float)
        if extra.shape != member_means.shape:
            raise ValueError(f"within_std must be {member_means.shape} ([members, studies]), got {extra.shape}")
        within = within + extra ** 2
    variance = within.mean(axis=0) + member_means.var(axis=0)
    return Spread(member_means.mean(axis=0), np.sqrt(variance))


@dataclass(frozen=True)
class Interval:
    coverage: float        # fraction of studies inside the interval fitted on the other half
    mean_width: float      # months, upper − lower, averaged over the studies
    constant_width: float  # months: the same recipe with a constant std (no ranking at all), around the same mean


def interval_check(errors: np.ndarray, std: np.ndarray, level: float = 0.9) -> Interval:
    """The product's interval (fit_calibration, then the split-conformal multiplier) fitted on the even-indexed studies
    and scored on the odd ones, and the other way round; the same with a constant std for reference."""
    errors, std = np.asarray(errors, float), np.asarray(std, float)
    halves = (np.arange(len(errors)) % 2 == 0, np.arange(len(errors)) % 2 == 1)

    def score(spread: np.ndarray) -> tuple[float, float]:
        covered, widths = [], []
        for fit, test in (halves, halves[::-1]):
            calibration = fit_calibration(errors[fit], spread[fit])
            q = interval_multiplier(conformal_scores(errors[fit], calibrated_std(spread[fit], calibration)), level)
            half_width = q * calibrated_std(spread[test], calibration)
            covered += list(np.abs(errors[test]) <= half_width)
            widths += list(2 * half_width)
        return float(np.mean(covered)), float(np.mean(widths))

    coverage, width = score(std)
    return Interval(coverage, width, score(np.ones_like(std))[1])


@dataclass(frozen=True)
class Bootstrap:
    spearman: tuple[float, float]       # 95 % percentile interval over resampled studies
    ause: tuple[float, float]
    spearman_gain: tuple[float, float]  # this method's ρ − the reference method's, on the same resamples (paired)
    ause_gain: tuple[float, float]      # the reference's AUSE − this method's (> 0: this one ranks better)


def bootstrap_rankings(errors: dict[str, np.ndarray], stds: dict[str, np.ndarray], reference: str, *,
                       resamples: int = 1000, seed: int = 0) -> dict[str, Bootstrap]:
    """Paired bootstrap over studies: every method is scored on the same resampled studies, so the gains against
    `reference` carry only the noise of the difference (200 studies leave ρ itself about ±0.13 wide)."""
    n = len(next(iter(errors.values())))
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, n, n) for _ in range(resamples)]
    table = {name: np.array([(r.spearman, r.ause) for r in (rank_errors(errors[name][i], stds[name][i]) for i in draws)])
             for name in errors}

    def ci(values: np.ndarray) -> tuple[float, float]:
        low, high = np.nanpercentile(values, [2.5, 97.5])
        return float(low), float(high)

    ref = table[reference]
    return {name: Bootstrap(ci(t[:, 0]), ci(t[:, 1]), ci(t[:, 0] - ref[:, 0]), ci(ref[:, 1] - t[:, 1]))
            for name, t in table.items()}


@dataclass(frozen=True)
class Method:
    ensemble: bool     # the --members (else CKPT alone)
    tta: bool          # every TTA view (else the plain reading)
    mc: bool           # each model's MC-dropout std added
    age: bool = False  # the baseline to beat: the reading itself as the std (no uncertainty at all, only the
                       # knowledge that older hands err more in months)


METHODS = {"age": Method(False, False, False, True),
           "mc": Method(False, False, True), "tta": Method(False, True, False), "both": Method(False, True, True),
           "ensemble": Method(True, False, False), "ensemble+mc": Method(True, False, True),
           "ensemble+tta": Method(True, True, False), "ensemble+both": Method(True, True, True)}


def read_studies(predictors: Sequence[Predictor], images: list[np.ndarray], males: list[bool | None], *,
                 mc_samples: int, tta: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every model's reading of every view: [models, views, studies] months (views: TTA_VIEWS, or the image alone),
    and each model's calibrated MC-dropout std of the plain reading [models, studies] (zeros with mc_samples < 2).
    The plain reading is deterministic (dropout off), with or without the MC samples."""
    views = list(zip(*[tta_views(image) for image in images])) if tta else [images]
    readings = np.zeros((len(predictors), len(views), len(images)))
    mc = np.zeros((len(predictors), len(images)))
    for m, predictor in enumerate(predictors):
        for v, batch in enumerate(views):
            out = predictor.predict_batch(list(batch), males, with_attention=False, mc_samples=mc_samples if v == 0 else 0,
                                          uncertainty="mc")  # the views are this table's: none inside the predictor
            readings[m, v] = [r.age_months for r in out]
            if v == 0 and mc_samples >= 2:
                mc[m] = [r.std_months for r in out]
    return readings, mc


def aggregate(method: Method, readings: np.ndarray, mc: np.ndarray, members: slice) -> Spread:
    """`method`'s mean and std from read_studies' tables; `members` picks the ensemble's rows (row 0 is CKPT)."""
    rows = members if method.ensemble else slice(0, 1)
    table = readings[rows] if method.tta else readings[rows, :1]
    spread = pooled_spread(table, mc[rows] if method.mc else None)
    return Spread(spread.mean, np.maximum(spread.mean, 0.0)) if method.age else spread


def spearman_within_bands(errors: np.ndarray, std: np.ndarray, ages: np.ndarray,
                          edges: tuple[float, ...] = (72.0, 144.0)) -> float:
    """Spearman ρ of std vs |error| inside each true-age band (< 6 y, 6–12 y, ≥ 12 y), averaged weighted by the band's
    studies: how well the std ranks studies of similar age, where "older errs more" cannot help."""
    errors, std, bands = np.abs(np.asarray(errors, float)), np.asarray(std, float), np.digitize(ages, edges)
    rhos, weights = [], []
    for band in np.unique(bands):
        inside = bands == band
        if inside.sum() >= 3 and np.ptp(std[inside]) > 0:
            rhos.append(float(spearmanr(std[inside], errors[inside]).statistic))
            weights.append(int(inside.sum()))
    return float(np.average(rhos, weights=weights)) if rhos else float("nan")


def time_method(method: Method, ckpt: Predictor, members: list[Predictor], images: list[np.ndarray],
                males: list[bool | None], mc_samples: int) -> tuple[float, float]:
    """Milliseconds per study for `method` alone, one study at a time (age and std only, no attention maps): wall
    clock, and this process's CPU time (which a SIGSTOP or a busy neighbour does not inflate; on one thread the two
    agree on a quiet machine)."""
    predictors = members if method.ensemble else [ckpt]
    wall, cpu = time.perf_counter(), time.process_time()
    for image, male in zip(images, males):
        readings, mc = read_studies(predictors, [image], [male], mc_samples=mc_samples if method.mc else 0,
                                    tta=method.tta)
        aggregate(method, readings, mc, slice(0, len(predictors)))
    n = max(len(images), 1)
    return (time.perf_counter() - wall) * 1e3 / n, (time.process_time() - cpu) * 1e3 / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.uncertainty_eval", description=__doc__.splitlines()[0])
    ap.add_argument("ckpt", nargs="?", help="checkpoint, or `starter` (the single-model methods)")
    ap.add_argument("data", nargs="?", help="folder with labels.csv and images/")
    ap.add_argument("--mc-samples", type=int, default=16)
    ap.add_argument("--method", default="mc", help=f"one or several (comma-separated) of {', '.join(METHODS)}")
    ap.add_argument("--members", default="", help="comma-separated checkpoints (or `starter`): the ensemble methods")
    ap.add_argument("--time-studies", type=int, default=0,
                    help="also time each method on this many studies, one at a time: ms per study")
    ap.add_argument("--bootstrap", type=int, default=0,
                    help="this many paired resamples of the studies: 95%% intervals of ρ and AUSE, and of each method's "
                         "gain over the first method named")
    ap.add_argument("--product", action="store_true",
                    help="also score CKPT's Predictor as the platform runs it with uncertainty `both` (views of the work "
                         "canvas, ml.tta) and `mc`, with their CPU-ms per study on --time-studies studies")
    ap.add_argument("--save", help="write the readings (models × views × studies), MC stds and true ages to this .npz")
    ap.add_argument("--from-saved", help="score the readings a --save run wrote instead (no CKPT, DATA or --members: "
                                         "its models; no --time-studies)")
    args = ap.parse_args(argv)
    names = [name.strip() for name in args.method.split(",") if name.strip()]
    if not names or any(name not in METHODS for name in names):
        ap.error(f"--method: expected one or several of {', '.join(METHODS)}, got {args.method!r}")
    methods = {name: METHODS[name] for name in names}
    if args.from_saved:
        if args.ckpt or args.data or args.members or args.time_studies or args.save:
            ap.error("--from-saved takes no CKPT, DATA, --members, --time-studies or --save")
        saved = np.load(args.from_saved)
        readings, mc, truth = saved["readings"], saved["mc_std"], saved["truth"]
        missing = [name for name, m in methods.items() if (m.tta and readings.shape[1] < len(TTA_VIEWS))
                   or (m.mc and int(saved["mc_samples"]) < 2) or (m.ensemble and readings.shape[0] < 3)]
        if missing:
            ap.error(f"{args.from_saved} lacks the views, MC samples or members that {', '.join(missing)} need")
        print(f"{args.from_saved}: {len(truth)} studies, models {', '.join(map(str, saved['models']))}, "
              f"{readings.shape[1]} view(s), {int(saved['mc_samples'])} MC samples")
        report(methods, readings, mc, truth, slice(1, readings.shape[0]), args.bootstrap)
        return 0
    if not args.ckpt or not args.data:
        ap.error("CKPT and DATA are required (or --from-saved)")
    member_paths = [m.strip() for m in args.members.split(",") if m.strip()]
    if any(m.ensemble for m in methods.values()) and len(member_paths) < 2:
        ap.error("the ensemble methods need --members with at least two checkpoints")
    import torch

    from ml.checkpoint import resolve_checkpoint
    from ml.data import read_folder
    from ml.imaging import load_image
    from ml.infer import Predictor

    start = time.perf_counter()
    samples = read_folder(args.data)
    predictors = [Predictor(resolve_checkpoint(path)) for path in [args.ckpt, *member_paths]]
    members = slice(1, len(predictors))
    tta = any(m.tta for m in methods.values())
    mc_samples = args.mc_samples if any(m.mc for m in methods.values()) else 0
    needed = predictors if any(m.ensemble for m in methods.values()) else predictors[:1]
    chunks = []
    for i in range(0, len(samples), 16):
        chunk = samples[i:i + 16]
        images, males = [load_image(s.image_path) for s in chunk], [s.male for s in chunk]
        chunks.append(read_studies(needed, images, males, mc_samples=mc_samples, tta=tta))
    readings = np.concatenate([c[0] for c in chunks], axis=2)
    mc = np.concatenate([c[1] for c in chunks], axis=1)
    truth = np.array([s.age_months for s in samples])
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.save, readings=readings, mc_std=mc, truth=truth,
                 models=np.array([args.ckpt, *member_paths][:len(needed)]),
                 views=np.array(TTA_VIEWS if tta else TTA_VIEWS[:1]), mc_samples=mc_samples)
    print(f"{len(samples)} studies, {len(needed)} model(s), {readings.shape[1]} view(s), {mc_samples} MC samples: "
          f"{time.perf_counter() - start:.0f} s on {torch.get_num_threads()} thread(s)")
    report(methods, readings, mc, truth, members, args.bootstrap)
    if args.product:
        score_product(predictors[0], samples, truth, args.mc_samples, args.time_studies)
    if args.time_studies:
        sample = samples[:args.time_studies]
        images, males = [load_image(s.image_path) for s in sample], [s.male for s in sample]
        time_method(Method(False, True, True), predictors[0], [], images[:1], males[:1], args.mc_samples)  # warm-up
        for name, method in {"plain reading, no std": Method(False, False, False), **methods}.items():
            wall_ms, cpu_ms = time_method(method, predictors[0], predictors[members], images, males, args.mc_samples)
            print(f"{name}: {cpu_ms:.0f} CPU-ms per study ({wall_ms:.0f} ms wall; age and std, no attention maps; "
                  f"{len(sample)} studies, one at a time, {torch.get_num_threads()} thread(s))")
    return 0


def score_product(predictor: Predictor, samples: list, truth: np.ndarray, mc_samples: int, time_studies: int) -> None:
    """The platform's own readings (Predictor with uncertainty "both" and "mc"), scored like the methods above; the
    std is the checkpoint's calibration of the raw spread, a monotone map, so ρ and AUSE do not depend on it."""
    from ml.imaging import load_image

    for method in ("both", "mc"):
        ages, stds = [], []
        for i in range(0, len(samples), 16):
            chunk = samples[i:i + 16]
            out = predictor.predict_batch([load_image(s.image_path) for s in chunk], [s.male for s in chunk],
                                          with_attention=False, mc_samples=mc_samples, uncertainty=method)
            ages += [p.age_months for p in out]
            stds += [p.std_months for p in out]
        errors, std = np.array(ages) - truth, np.array(stds)
        r, interval = rank_errors(errors, std), interval_check(errors, std)
        line = (f"product {method}: {r.n} studies: MAE {r.mae:.2f} months, Spearman(std, |error|) {r.spearman:.3f} "
                f"({spearman_within_bands(errors, std, truth):.3f} within age bands), AUSE {r.ause:.2f} months; "
                f"90% interval covers {interval.coverage:.3f}, mean width {interval.mean_width:.1f} months")
        if time_studies:
            images = [load_image(s.image_path) for s in samples[:time_studies]]
            predictor.predict_batch(images[:1], [True], with_attention=False, uncertainty=method)  # warm-up
            cpu = time.process_time()
            for image, s in zip(images, samples[:time_studies]):
                predictor.predict_batch([image], [s.male], with_attention=False, mc_samples=mc_samples,
                                        uncertainty=method)
            line += f"; {(time.process_time() - cpu) * 1e3 / len(images):.0f} CPU-ms per study"
        print(line)


def report(methods: dict[str, Method], readings: np.ndarray, mc: np.ndarray, truth: np.ndarray, members: slice,
           bootstrap: int) -> None:
    """One line per method (MAE, ρ, ρ within age bands, AUSE, halves, the 90 % interval), then the bootstrap."""
    errors, stds = {}, {}
    for name, method in methods.items():
        spread = aggregate(method, readings, mc, members)
        errors[name], stds[name] = spread.mean - truth, spread.std
        r, interval = rank_errors(errors[name], spread.std), interval_check(errors[name], spread.std)
        print(f"{name}: {r.n} studies: MAE {r.mae:.2f} months, Spearman(std, |error|) {r.spearman:.3f} "
              f"({spearman_within_bands(errors[name], spread.std, truth):.3f} within age bands), AUSE {r.ause:.2f} "
              f"months; MAE of the surer half {r.mae_surest_half:.2f} vs the less sure half {r.mae_least_sure_half:.2f}; "
              f"90% interval (cross-fitted halves) covers {interval.coverage:.3f}, mean width {interval.mean_width:.1f} "
              f"months vs {interval.constant_width:.1f} at a constant width")
    if bootstrap:
        first = next(iter(methods))
        for name, b in bootstrap_rankings(errors, stds, first, resamples=bootstrap).items():
            print(f"{name}: 95% bootstrap intervals ({bootstrap} paired resamples): ρ {b.spearman[0]:.3f}…"
                  f"{b.spearman[1]:.3f}, AUSE {b.ause[0]:.2f}…{b.ause[1]:.2f}; against {first}: ρ gain "
                  f"{b.spearman_gain[0]:+.3f}…{b.spearman_gain[1]:+.3f}, AUSE gain {b.ause_gain[0]:+.2f}…{b.ause_gain[1]:+.2f}")

if __name__ == "__main__":
    sys.exit(main())
