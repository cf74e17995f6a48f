"""Active learning: which unlabelled study to label next, and the label-efficiency experiment.

Strategies (higher score = ask for a label sooner):
- `uncertainty`: the model's MC-dropout std in months (calibrated);
- `random`: a stable pseudo-random number per (study, seed) — the baseline;
- `diverse`: uncertainty × novelty, novelty = distance in (predicted age, sex) space to the nearest
  labelled study (so a batch does not spend its labels on near-duplicates of what is known).

Batch strategies (`BATCH_STRATEGIES`: a batch is chosen as a set in the learner's embedding space; `select_batch`
and the simulation run them):
- `coreset`: k-center greedy (Sener & Savarese 2018) on the learner's penultimate features (`Learner.embed`). The
  platform's next case serves it too (`NEXT_CASE_STRATEGIES`), as the greedy order written out as one score per
  study (`coreset_scores`) on each prediction's stored embedding;
- `hybrid`: k-center greedy restricted to the `HYBRID_FACTOR`·k candidates with the largest std (Zhdanov 2019);
  simulation only.

    python -m ml.active simulate [--quick] [--seeds 3] [--strategies coreset hybrid random] [--out docs/active-learning.png]
    python -m ml.active simulate --regressor starter [--scanner other] --seeds 5   # the product's regime
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

STRATEGIES = ("uncertainty", "random", "diverse")
BATCH_STRATEGIES = ("coreset", "hybrid")
# what the platform's next case serves: the per-study scores, and coreset as a ranked greedy order (coreset_scores)
NEXT_CASE_STRATEGIES = (*STRATEGIES, "coreset")
CORESET_DEPTH = 300       # greedy picks ranked one by one (re-ranked after every label); the rest by distance to a centre
HYBRID_FACTOR = 4         # hybrid: k-center greedy among the 4·k most uncertain candidates
AGE_SCALE_MONTHS = 24.0   # one unit of novelty = two years of predicted age
SEX_DISTANCE = 1.0        # a male and a female of the same age are one unit apart


def stable_random(key: str, seed: int = 0) -> float:
    """A number in [0, 1) that depends only on (key, seed): the random strategy, reproducible."""
    return int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / float(16 ** 12)


def features(pred_age: Any, male: Sequence[bool | None]) -> np.ndarray:
    """(predicted age / AGE_SCALE, sex ∈ {-½, 0, ½}·SEX_DISTANCE) per study → [N, 2]."""
    age = np.asarray(pred_age, float) / AGE_SCALE_MONTHS
    sex = np.array([0.0 if m is None else (0.5 if m else -0.5) for m in male]) * SEX_DISTANCE
    return np.stack([age, sex], axis=1) if len(age) else np.zeros((0, 2))


def novelty(candidates: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """Distance of each candidate to its nearest labelled point (all ones when nothing is labelled)."""
    if len(labelled) == 0:
        return np.ones(len(candidates))
    # in blocks (min_distances), not one N×M×2 array: 33 GiB at 66,666 unlabelled × 33,334 labelled studies
    return min_distances(candidates, labelled)


def scores(strategy: str, keys: Sequence[str], std: Any, feats: np.ndarray | None = None,
           labelled_feats: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """One score per candidate for `strategy` (see the module docstring)."""
    if strategy in BATCH_STRATEGIES:
        raise ValueError(f"{strategy!r} picks a batch as a set and has no per-study score; use select_batch")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    std = np.asarray(std, float)
    if strategy == "random":
        return np.array([stable_random(k, seed) for k in keys])
    if strategy == "uncertainty":
        return std
    assert feats is not None
    lab = labelled_feats if labelled_feats is not None else np.zeros((0, 2))
    return std * (0.5 + np.minimum(novelty(feats, lab), 2.0))


def min_distances(points: np.ndarray, centres: np.ndarray, chunk: int = 1024,
                  block_values: int = 1 << 24) -> np.ndarray:
    """Euclidean distance of each point [N, D] to its nearest centre [M, D]; +inf everywhere when M = 0.

    The nearest centre is found with |a|² + |b|² - 2ab (one matrix product per chunk of centres: 20× faster than pair
    by pair at 6,666 × 3,334 × 257), then the distance to it is computed as sqrt(Σ(a - b)²), so a duplicate is exactly
    0 away. A block of centres holds at most `block_values` distances (128 MB), however many points there are."""
    points, centres = np.asarray(points, float), np.asarray(centres, float)
    if len(centres) == 0 or len(points) == 0:
        return np.full(len(points), np.inf)
    if len(centres) == 1:  # each k-center pick: no nearest centre to find, one pass instead of three
        return np.sqrt(((points - centres[0]) ** 2).sum(1))
    chunk = max(1, min(chunk, block_values // len(points)))
    squared = (points ** 2).sum(1)
    best, nearest = np.full(len(points), np.inf), np.zeros(len(points), int)
    for start in range(0, len(centres), chunk):
        block = centres[start:start + chunk]
        d2 = squared[:, None] + (block ** 2).sum(1)[None, :] - 2.0 * (points @ block.T)
        index = d2.argmin(axis=1)
        value = d2[np.arange(len(points)), index]
        closer = value < best
        best[closer], nearest[closer] = value[closer], start + index[closer]
    return np.sqrt(((points - centres[nearest]) ** 2).sum(1))


def k_center_greedy(candidates: np.ndarray, labelled: np.ndarray, k: int,
                    allowed: np.ndarray | None = None) -> list[int]:
    """k-center greedy (Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set
    Approach", ICLR 2018): pick the candidate farthest from its nearest centre (the labelled points), make it a
    centre, repeat k times. Batch-aware by construction: a pick's near-duplicates are ≈ 0 away from a centre once
    it is picked, so they come last — in a batch as well as across rounds.

    candidates [N, D], labelled [M, D] → k candidate indices in pick order. `allowed` [N] bool restricts the picks
    (not the centres). With nothing labelled the first pick is the candidate nearest the candidates' mean.
    Ties go to the lowest index (deterministic)."""
    return _greedy(candidates, labelled, k, allowed)[0]


def _greedy(candidates: np.ndarray, labelled: np.ndarray, k: int,
            allowed: np.ndarray | None = None) -> tuple[list[int], list[float], np.ndarray]:
    """k_center_greedy's picks, each pick's distance to its nearest centre when it was picked (+inf for a first pick
    with nothing labelled), and every candidate's distance to its nearest centre after the last pick (-inf: picked or
    not allowed)."""
    cand = np.asarray(candidates, float)
    allowed = np.ones(len(cand), bool) if allowed is None else np.asarray(allowed, bool)
    k = max(0, min(k, int(allowed.sum())))
    lab = np.asarray(labelled, float).reshape(-1, cand.shape[1])
    first = None
    if len(lab):
        gap = min_distances(cand, lab)
    else:
        gap = np.full(len(cand), np.inf)
        if k > 0:
            first = int(np.argmin(np.where(allowed, min_distances(cand, cand.mean(0, keepdims=True)), np.inf)))
    gap[~allowed] = -np.inf
    chosen: list[int] = []
    radii: list[float] = []
    while len(chosen) < k:
        i = first if first is not None and not chosen else int(np.argmax(gap))
        chosen.append(i)
        radii.append(float(gap[i]))
        gap = np.minimum(gap, min_distances(cand, cand[i:i + 1]))  # the pick is a centre for the next
        gap[i] = -np.inf
    return chosen, radii, gap


def coreset_points(embeddings: Any, male: Sequence[bool | None]) -> np.ndarray:
    """The points core-set compares: each study's embedding [N, C] with its sex as one more coordinate (+1 male,
    -1 female, 0 unknown), as the simulation's learners embed (`Learner.embed`) → [N, C + 1]."""
    feats = np.asarray(embeddings, float).reshape(len(male), -1)
    sex = np.array([0.0 if m is None else (1.0 if m else -1.0) for m in male])
    return np.concatenate([feats, sex[:, None]], axis=1)


def coreset_scores(candidates: np.ndarray, labelled: np.ndarray, depth: int = CORESET_DEPTH) -> np.ndarray:
    """k-center greedy as one score per candidate, so a ranked list can serve it (the platform's next case).

    Each of the first `depth` greedy picks scores its distance to the nearest centre when it was picked; those
    distances never grow from one pick to the next, and every other candidate scores its distance to the nearest
    labelled study or pick, which is no more than the last pick's. So the candidates sorted by score, highest first
    (ties by index), come in the greedy order, and any top-k is a spread-out batch. A first pick with nothing
    labelled scores 1 above every other score. Cost: depth · N distances of D numbers."""
    if len(candidates) == 0:
        return np.zeros(0)
    chosen, radii, out = _greedy(candidates, labelled, min(depth, len(candidates)))
    out[chosen] = radii
    finite = out[np.isfinite(out)]
    out[np.isposinf(out)] = (finite.max() if len(finite) else 0.0) + 1.0
    return out


def hybrid_batch(candidates: np.ndarray, labelled: np.ndarray, std: Any, k: int,
                 factor: int = HYBRID_FACTOR) -> list[int]:
    """Uncertainty pre-filter, then diversity (Zhdanov, "Diverse mini-batch Active Learning", arXiv:1901.05954,
    2019: keep the β·k most informative candidates, then choose k spread-out ones among them — there by k-means,
    here by k-center greedy on the same embedding as `coreset`, β = `factor`).

    Ranking by raw MC std equals ranking by calibrated std: the calibration (`ml.uncertainty.calibrated_std`,
    scale·(std + floor), scale > 0) is increasing."""
    std = np.asarray(std, float)
    allowed = np.zeros(len(std), bool)
    allowed[np.argsort(-std, kind="stable")[:factor * k]] = True
    return k_center_greedy(candidates, labelled, k, allowed)


def select_batch(strategy: str, keys: Sequence[str], std: Any, feats: np.ndarray,
                 labelled_feats: np.ndarray, k: int, seed: int = 0) -> list[int]:
    """Indices of the k candidates to label next. `diverse` is greedy: each pick counts as labelled for the next.

    For `coreset` and `hybrid`, feats / labelled_feats are the learner's embeddings [N, D] / [M, D]
    (`Learner.embed`); for the others, `features(...)` [N, 2]."""
    k = min(k, len(keys))
    if strategy == "coreset":
        return k_center_greedy(feats, labelled_feats, k)
    if strategy == "hybrid":
        return hybrid_batch(feats, labelled_feats, std, k)
    if strategy != "diverse":
        s = scores(strategy, keys, std, seed=seed)
        return [int(i) for i in np.argsort(-s, kind="stable")[:k]]
    chosen: list[int] = []
    lab = np.asarray(labelled_feats, float).reshape(-1, 2)
    std = np.asarray(std, float)
    available = np.ones(len(keys), bool)
    for _ in range(k):
        s = scores("diverse", keys, std, feats, lab)
        s[~available] = -np.inf
        i = int(np.argmax(s))
        chosen.append(i)
        available[i] = False
        lab = np.vstack([lab, feats[i:i + 1]])
    return chosen


# --- the label-efficiency experiment ------------------------------------------------------------------

def _crop(image: np.ndarray, mask: np.ndarray, side: int) -> np.ndarray:
    """The hand (ground-truth mask, as the segmentation subnet would give) cropped to its box, side×side."""
    from PIL import Image

    unit = image.astype(np.float32) / float(np.iinfo(image.dtype).max if image.dtype.kind == "u" else 1.0)
    unit = unit * (mask > 0)
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) if ys.size else (0, unit.shape[0], 0, unit.shape[1])
    box = unit[y0:y1, x0:x1]
    h, w = box.shape
    s = max(h, w)
    canvas = np.zeros((s, s), np.float32)
    canvas[(s - h) // 2:(s - h) // 2 + h, (s - w) // 2:(s - w) // 2 + w] = box
    return np.asarray(Image.fromarray(canvas, mode="F").resize((side, side), Image.Resampling.BOX), np.float32)


def phantom_features(n: int, seed: int, size: int = 256, side: int = 96, cell: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n phantoms → (HOG descriptors of the hand crop [n, d], age [n], male [n]).

    HOG (8 orientations, cell×cell cells, 2×2 blocks) of the masked hand cropped to its box: shape and
    edge structure of the bones, which raw pixels at this size do not expose to a kernel regressor.
    """
    from skimage.feature import hog

    from ml.phantoms import render
    from ml.phantoms.cohort import sample_subject

    descriptors, ages, males = [], [], []
    for i in range(n):
        age, male, rseed = sample_subject(seed, i)
        ph = render(age, male, rseed, size=size)
        descriptors.append(hog(_crop(ph.image, ph.mask, side), orientations=8, pixels_per_cell=(cell, cell),
                               cells_per_block=(2, 2)))
        ages.append(age)
        males.append(male)
    return np.stack(descriptors), np.array(ages, float), np.array(males, bool)


class GPRegressor:
    """The quick experiment's fast regressor: a Gaussian process (RBF kernel) on PCA'd HOG features of the
    hand crop + sex, hyper-parameters chosen by marginal likelihood on a small grid. Its predictive std plays
    the part of the network's MC-dropout std."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.mean, self.scale = float(y.mean()), float(y.std() or 1.0)
        t = (y - self.mean) / self.scale
        d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        median = float(np.median(d2[d2 > 0])) if (d2 > 0).any() else 1.0
        best = None
        for ls in (0.25, 0.5, 1.0, 2.0):
            for noise in (0.01, 0.03, 0.1, 0.3):
                k = np.exp(-d2 / (2 * ls * median)) + noise * np.eye(len(x))
                try:
                    chol = np.linalg.cholesky(k)
                except np.linalg.LinAlgError:
                    continue
                alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, t))
                lml = -0.5 * t @ alpha - np.log(np.diag(chol)).sum()
                if best is None or lml > best[0]:
                    best = (lml, ls * median, noise, chol, alpha)
        assert best is not None
        _, self.l2, self.noise, self.chol, self.alpha = best
        self.x = x

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d2 = ((x[:, None, :] - self.x[None, :, :]) ** 2).sum(-1)
        ks = np.exp(-d2 / (2 * self.l2))
        mu = ks @ self.alpha
        v = np.linalg.solve(self.chol, ks.T)
        var = np.clip(1.0 - (v ** 2).sum(0), 1e-9, None)
        return self.mean + self.scale * mu, self.scale * np.sqrt(var)


class Learner(Protocol):
    """What a simulation round needs of a regressor: refit on the labelled indices, then mean and std on others,
    and (for `coreset` / `hybrid`) an embedding [n, D] of any studies to measure distances in."""

    def fit(self, labelled: list[int]) -> None: ...

    def predict(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def embed(self, indices: np.ndarray) -> np.ndarray: ...


class GPLearner:
    """GPRegressor refitted on the labelled features each round (the --regressor gp learner)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y
        self.gp: GPRegressor | None = None

    def fit(self, labelled: list[int]) -> None:
        self.gp = GPRegressor(self.x[labelled], self.y[labelled])

    def predict(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.gp is not None
        return self.gp.predict(self.x[indices])

    def embed(self, indices: np.ndarray) -> np.ndarray:
        """The GP's own input: PCA'd HOG features + sex (the kernel's distances are measured here)."""
        return self.x[np.asarray(indices, int)]


def _gp_data(pool: int, test: int, components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    px, age, male = phantom_features(pool + test, seed=2027)
    mu = px[:pool].mean(0)
    _, _, vt = np.linalg.svd(px[:pool] - mu, full_matrices=False)  # PCA fitted on the (unlabelled) pool only
    z = (px - mu) @ vt[:components].T
    z /= z[:pool].std(0).mean()
    return np.hstack([z, np.where(male, 0.5, -0.5)[:, None]]), age, male


def simulate(strategies: Sequence[str] = STRATEGIES, seeds: Sequence[int] = (0, 1, 2), start: int = 50, step: int = 25,
             stop: int = 400, pool: int = 1000, test: int = 300, components: int = 96, regressor: str = "gp",
             net_setup=None, starter_setup=None, sites_setup=None, cache_dir: str = "var", log=print, checkpoint: Callable[[dict], None] | None = None) -> dict:
    """Pool-based active learning on phantoms; returns {strategy: {labels: [mae per seed]}} and the setup.

    regressor: "gp" (GP on HOG features, minutes), "network" (the attention net from scratch with MC dropout,
    ml.active_net), "starter" (the shipped starter's head fine-tuned each round, the `both` std; ml.active_starter)
    or "sites" (the starter's whole regressor fine-tuned each round on a two-site archive; ml.active_sites).
    cache_dir: where the starter regressor keeps its features (ml.active_starter.cached_starter_features).
    checkpoint: called with the results so far (and seconds per strategy) after each (strategy, seed).
    """
    import time

    unknown = [s for s in strategies if s not in STRATEGIES + BATCH_STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; known: {', '.join(STRATEGIES + BATCH_STRATEGIES)}")
    t0 = time.perf_counter()
    reference: dict | None = None  # a reading before any label, where the regressor has one (the starter's)
    test_groups: dict[str, np.ndarray] = {}  # name → mask over the test set, for an MAE per group
    if regressor == "gp":
        feats_x, age, male = _gp_data(pool, test, components)
        make: Callable[[int], Learner] = lambda seed: GPLearner(feats_x, age)
        setup: dict = {"components": components}
    elif regressor == "network":
        from dataclasses import asdict

        from ml.active_net import NetLearner, NetSetup, phantom_crops

        net_setup = net_setup or NetSetup()
        crops, age, male = phantom_crops(pool + test, seed=2027, setup=net_setup)
        make = lambda seed: NetLearner(crops, age, male, net_setup, seed)
        setup = asdict(net_setup)
    elif regressor == "starter":
        from dataclasses import asdict

        from ml.active_starter import StarterHeadLearner, StarterSetup, cached_starter_features, starter_head

        starter_setup = starter_setup or StarterSetup()
        trunk_feats, age, male = cached_starter_features(pool + test, seed=2027, setup=starter_setup,
                                                           cache_dir=cache_dir, log=log)
        head = starter_head(starter_setup)
        make = lambda seed: StarterHeadLearner(trunk_feats, age, male, starter_setup, seed, head=head)
        setup = asdict(starter_setup)
        untrained = make(0).predict(np.arange(pool, pool + test))[0]  # the bar the project's labels must beat
        reference = {"label": "the starter alone", "mae": float(np.abs(untrained - age[pool:]).mean())}
    elif regressor == "sites":
        from dataclasses import asdict

        from ml.active_sites import SitesSetup, StarterRegressorLearner, cached_site_crops, starter_regressor

        sites_setup = sites_setup or SitesSetup()
        data = cached_site_crops(pool + test, seed=2027, setup=sites_setup, cache_dir=cache_dir, log=log)
        age, male, new_site = data["age"], data["male"], data["new_site"]
        net = starter_regressor(sites_setup)
        make = lambda seed: StarterRegressorLearner(data["crops"], age, male, sites_setup, seed, regressor=net)
        setup = {**asdict(sites_setup), "new_site_in_pool": int(new_site[:pool].sum()),
                 "new_site_in_test": int(new_site[pool:].sum())}
        errors = np.abs(make(0).predict(np.arange(pool, pool + test))[0] - age[pool:])
        test_groups = {"new site": new_site[pool:], "first site": ~new_site[pool:]}
        reference = {"label": "the starter alone", "mae": float(errors.mean()),
                     **{f"mae_{g.replace(' ', '_')}": float(errors[m].mean()) for g, m in test_groups.items()}}
    else:
        raise ValueError(f"unknown regressor {regressor!r}; known: gp, network, starter, sites")
    train_y, train_m, test_y = age[:pool], male[:pool], age[pool:]
    test_idx = np.arange(pool, pool + test)
    log(f"{regressor} inputs of {pool + test} phantoms in {time.perf_counter() - t0:.0f} s")
    results: dict = {s: {} for s in strategies}
    picked: dict = {s: {} for s in strategies}  # the labelled indices at the end, per strategy and seed
    by_group: dict = {g: {s: {} for s in strategies} for g in test_groups}
    strategy_seconds: dict[str, float] = {}
    for strategy in strategies:
        t_strategy = time.perf_counter()
        for seed in seeds:
            rng = np.random.default_rng(1000 + seed)
            labelled = list(rng.choice(pool, size=start, replace=False))  # the same start set for every strategy
            learner = make(seed)
            while True:
                learner.fit(labelled)
                pred, _ = learner.predict(test_idx)
                errors = np.abs(pred - test_y)
                mae = float(errors.mean())
                results[strategy].setdefault(len(labelled), []).append(mae)
                for group, mask in test_groups.items():
                    by_group[group][strategy].setdefault(len(labelled), []).append(float(errors[mask].mean()))
                if len(labelled) >= stop:
                    break
                rest = np.setdiff1d(np.arange(pool), labelled)
                if strategy == "random":  # needs neither readings nor spreads of the pool
                    pool_pred, pool_std = np.zeros(len(rest)), np.zeros(len(rest))
                else:
                    pool_pred, pool_std = learner.predict(rest)
                keys = [str(i) for i in rest]
                if strategy in BATCH_STRATEGIES:  # distances in the learner's own embedding
                    feats, lab_feats = learner.embed(rest), learner.embed(np.asarray(labelled))
                else:
                    feats = features(pool_pred, list(train_m[rest]))
                    lab_feats = features(train_y[labelled], list(train_m[labelled]))
                picks = select_batch(strategy, keys, pool_std, feats, lab_feats, min(step, stop - len(labelled)), seed=seed)
                labelled += [int(rest[i]) for i in picks]
            picked[strategy][seed] = [int(i) for i in labelled]
            log(f"{strategy:<12} seed {seed}: MAE {results[strategy][start][-1]:.1f} → {mae:.1f} months "
                f"({time.perf_counter() - t0:.0f} s)")
            strategy_seconds[strategy] = time.perf_counter() - t_strategy
            if checkpoint is not None:
                checkpoint({"results": results, "strategy_seconds": strategy_seconds, "labelled": picked,
                            "by_group": by_group})
    return {"results": results, "labelled": picked, "by_group": by_group, "seconds": time.perf_counter() - t0, "strategy_seconds": strategy_seconds,
            "regressor": regressor, "reference": reference, "mean_predictor_mae": float(
        np.abs(test_y - train_y.mean()).mean()), "setup": {"pool": pool, "test": test, "start": start, "step": step,
                                                            "stop": stop, "seeds": list(seeds), **setup}}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(prog="python -m ml.active", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="label-efficiency experiment on phantoms")
    sim.add_argument("--quick", action="store_true", help="the GP stand-in (= --regressor gp); kept for old commands")
    sim.add_argument("--regressor", choices=["gp", "network", "starter", "sites"], default="gp",
                     help="gp: GP on HOG features of the hand (minutes); network: the attention net with MC dropout "
                          "(ml.active_net; 1.5–2.5 CPU-minutes per strategy and seed, docs/active-learning.md); starter: the shipped "
                          "starter's head fine-tuned on frozen features each round, the product's regime "
                          "(ml.active_starter; 4 minutes of features once, then seconds per strategy and seed); sites: the starter's "
                          "whole regressor fine-tuned each round on an archive from two sites (ml.active_sites; 8–11 "
                          "CPU-minutes per strategy and seed at --step 50)")
    sim.add_argument("--seeds", type=int, default=3, help="how many seeds")
    sim.add_argument("--first-seed", type=int, default=0, help="seeds first-seed … first-seed + seeds − 1 (more seeds "
                                                               "for a finished run: merge them with `report`)")
    sim.add_argument("--strategies", nargs="+", choices=[*STRATEGIES, *BATCH_STRATEGIES], default=list(STRATEGIES),
                     help="in this order (default: the platform's three)")
    sim.add_argument("--scanner", choices=["same", "other"], default="same",
                     help="starter regressor: 'other' passes the project's images through another scanner's contrast, "
                          "blur and noise first (ml.active_starter.other_scanner)")
    sim.add_argument("--threads", type=int, default=1, help="torch threads (network regressor)")
    sim.add_argument("--pool", type=int, default=1000)
    sim.add_argument("--step", type=int, default=25, help="labels acquired per round, from 50 to --stop")
    sim.add_argument("--stop", type=int, default=400)
    sim.add_argument("--out", default="docs/active-learning.png")
    sim.add_argument("--md", default="docs/active-learning.md")
    sim.add_argument("--json", default=None)
    rep = sub.add_parser("report", help="the plot and table of finished simulate runs, merged (other strategies, "
                                        "same experiment)")
    rep.add_argument("runs", nargs="+", help="simulate --json files")
    rep.add_argument("--out", required=True)
    rep.add_argument("--md", required=True)
    rep.add_argument("--json", default=None, help="also write the merged run here")
    args = ap.parse_args(argv)
    if args.command == "report":
        from pathlib import Path

        from ml.active_report import load_run, merge_runs, report

        try:
            out = merge_runs([load_run(Path(f).read_text()) for f in args.runs])
        except (OSError, ValueError) as exc:
            ap.error(str(exc))
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
        summary = report(out, args.out, args.md, "python -m ml.active " + " ".join(sys.argv[1:] if argv is None else argv))
        print(f"label efficiency: {summary}plot {args.out}, table {args.md}")
        return 0
    import torch

    torch.set_num_threads(args.threads)
    from pathlib import Path

    def checkpoint(partial: dict) -> None:  # a stopped run keeps the (strategy, seed) curves it finished
        if args.json:
            Path(args.json).write_text(json.dumps({"partial": True, **partial}, indent=1))

    starter_setup = None
    if args.regressor == "starter":
        from ml.active_starter import StarterSetup

        starter_setup = StarterSetup(scanner=args.scanner)
    elif args.scanner != "same":
        ap.error("--scanner applies to --regressor starter only")
    out = simulate(strategies=args.strategies, seeds=range(args.first_seed, args.first_seed + args.seeds),
                   pool=args.pool, regressor=args.regressor,
                   step=args.step, stop=args.stop, starter_setup=starter_setup, checkpoint=checkpoint)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    from ml.active_report import report

    summary = report(out, args.out, args.md, "python -m ml.active " + " ".join(sys.argv[1:] if argv is None else argv))
    print(f"label efficiency: {summary}plot {args.out}, table {args.md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
