"""Intervals that know where a model errs: fitted on one model version's held-out readings (its validation studies,
or an audit fold's), with the split-conformal finite-sample guarantee kept.

ml.uncertainty's interval is age ± q·std with one q for every age, symmetric. A network regresses towards the mean
near the ends of the age range (it reads a 210-month hand 20–45 months low with an ordinary std), so one symmetric q
is too narrow on one side there and too wide on the other. Three measures, each optional (docs/benchmarks.md, issue
13, says which ones the platform uses and why):

* **bias correction**: the reading is moved by a straight line fitted to label-on-reading (the "brain-age bias
  correction"), Theil–Sen so that a few wrong labels barely move it. Fitted on every other held-out study; the
  conformal step then uses only the others, so the fit never sees a score it is calibrated with.
* **signed**: separate lower and upper multipliers, the ⌈(n+1)(1+level)/2⌉-th smallest of −r and of r (r = (label −
  reading) / std): each side misses with probability ≤ (1 − level)/2, so the interval covers with ≥ level.
* **bands** (Mondrian): the multipliers per predicted-age band, each from that band's scores only, so the guarantee
  holds within every band; a band with too few scores for the level takes the multipliers of all scores together
  (`fallback`: that band then has the pooled guarantee only, not its own).

Pure numpy; `fit_age_interval` returns a frozen dataclass and `AgeInterval.around` states one reading's interval,
clipped to the project's age range.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

MIN_POINTS = 10  # fewer held-out readings than this: no age-aware interval (the caller keeps the plain one)


@dataclass(frozen=True)
class Method:
    """Which measures to take; `bands` are the inner edges of the predicted-age bands in months (() = one band)."""

    correct_bias: bool = False
    signed: bool = False
    bands: tuple[float, ...] = ()

    @property
    def name(self) -> str:
        parts = (["bias"] if self.correct_bias else []) + (["signed"] if self.signed else [])
        parts += ["bands " + "/".join(f"{edge:g}" for edge in self.bands)] if self.bands else []
        return "+".join(parts) or "symmetric"


@dataclass(frozen=True)
class Band:
    """Predicted ages [low, high): the interval is corrected ± multipliers · std, `below` and `above` the reading."""

    low: float
    high: float
    n: int            # calibration scores in this band
    below: float      # inf: too few scores anywhere, the interval is the whole age range on that side
    above: float
    fallback: bool    # too few scores here for the level: the pooled multipliers stand in


@dataclass(frozen=True)
class AgeInterval:
    level: float
    method: Method
    intercept: float  # corrected reading = intercept + slope · reading (0 and 1 without bias correction)
    slope: float
    n_fit: int        # held-out readings the bias line was fitted on
    n_calibration: int
    bands: tuple[Band, ...]

    def band_of(self, age: float) -> Band:
        for band in self.bands:
            if age < band.high:
                return band
        return self.bands[-1]

    def around(self, age: float, std: float, low: float, high: float) -> tuple[float, float]:
        """The interval for one reading (age, calibrated std), clipped to [low, high] (the project's age range)."""
        band = self.band_of(age)
        centre = self.intercept + self.slope * float(age)
        std = max(float(std), 0.0)
        lo = low if math.isinf(band.below) else max(low, min(high, centre - band.below * std))
        hi = high if math.isinf(band.above) else min(high, max(low, centre + band.above * std))
        return round(float(lo), 1), round(float(max(lo, hi)), 1)


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ⌈(n+1)·level⌉-th smallest score; inf when there are too few scores for the level."""
    n = len(scores)
    k = math.ceil((n + 1) * level)
    return math.inf if k > n or n == 0 else float(np.sort(scores)[k - 1])


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of the median-of-pairwise-slopes line (robust to a few wrong labels); (0, 1) if undefined."""
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    keep = np.abs(dx) > 1e-9
    if not keep.any():
        return 0.0, 1.0
    slope = float(np.median((y[j] - y[i])[keep] / dx[keep]))
    return float(np.median(y - slope * x)), slope


def _multipliers(r: np.ndarray, level: float, signed: bool) -> tuple[float, float]:
    if signed:
        side = (1 + level) / 2
        return conformal_quantile(-r, side), conformal_quantile(r, side)
    q = conformal_quantile(np.abs(r), level)
    return q, q


def fit_age_interval(pred: np.ndarray, label: np.ndarray, std: np.ndarray, level: float,
                     method: Method = Method()) -> AgeInterval:
    """Fit the interval on held-out readings of one model version (`pred`, `label`, calibrated `std`, one order).

    The split between the bias fit and the conformal scores is by position (even / odd), never by label, so the
    calibration scores stay exchangeable with a new study's."""
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level}")
    pred, label = np.asarray(pred, float), np.asarray(label, float)
    std = np.maximum(np.asarray(std, float), 1e-6)
    if not len(pred) == len(label) == len(std):
        raise ValueError("pred, label and std must have one entry per held-out study")
    intercept, slope, n_fit = 0.0, 1.0, 0
    calibrate = np.arange(len(pred))
    if method.correct_bias and len(pred) >= 2 * MIN_POINTS:
        fit, calibrate = calibrate[0::2], calibrate[1::2]
        intercept, slope = theil_sen(pred[fit], label[fit])
        n_fit = len(fit)
    p, r = pred[calibrate], (label[calibrate] - (intercept + slope * pred[calibrate])) / std[calibrate]
    pooled = _multipliers(r, level, method.signed)
    edges = (-math.inf, *sorted(method.bands), math.inf)
    bands = []
    for lo, hi in itertools.pairwise(edges):
        inside = (p >= lo) & (p < hi)
        below, above = _multipliers(r[inside], level, method.signed)
        fallback = math.isinf(below) or math.isinf(above)
        if fallback:
            below, above = pooled
        bands.append(Band(lo, hi, int(inside.sum()), below, above, fallback and len(edges) > 2))
    return AgeInterval(level, method, intercept, slope, n_fit, len(calibrate), tuple(bands))


def coverage(interval: AgeInterval, pred: np.ndarray, truth: np.ndarray, std: np.ndarray, low: float,
             high: float) -> float:
    """Fraction of `truth` inside the stated intervals (held-out studies the interval was not fitted on)."""
    spans = [interval.around(a, s, low, high) for a, s in zip(np.asarray(pred, float), np.asarray(std, float))]
    return float(np.mean([lo <= t <= hi for (lo, hi), t in zip(spans, np.asarray(truth, float))]))
