"""Is a film outside this model's experience? An out-of-distribution reference fitted per checkpoint (issue 29).

What the model sees of a film is its embedding: the age head's input (`RegressorOutput.features`, the pooled trunk
features, `ml.infer.Prediction.embedding`). The reference is the training embeddings' mean and covariance; a film's
score is its Mahalanobis distance to them, sqrt((x − μ)ᵀ Σ⁻¹ (x − μ)).

Why Mahalanobis and not k-NN: it is two arrays (C + C² numbers: 256 + 65,536 floats, 260 KB for the light network)
whatever the training set's size, where k-NN would carry every training embedding in the checkpoint (4,490 × 256
floats for the starter, 4.6 MB) and cost a search per film. Measured on the starter (issue 29; ml/weights/README.md):
real radiographs do not stand out channel by channel (a per-channel z-score flagged 2–15 % of them) but in the
directions where the training films barely vary, which is what Σ⁻¹ weighs most; on 2,400 fitting phantoms and one
200-film calibration set, k-NN (cosine, k = 5) flagged 73 % of 1,000 real films, Mahalanobis 85 %, both at ≤ 4 % of
unseen phantoms (the shipped reference, calibrated on 1,000 films: 76 % and 2 %).

Σ is the sample covariance (a 1e-6 ridge for round-off) when there are at least 2 films per feature: Ledoit–Wolf
shrinkage, optimal for estimating Σ, damps exactly those low-variance directions (on 2,000 phantoms its 0.0014 cut
the real films flagged from 84 % to 59 %). With fewer films Σ is singular or nearly so, and Ledoit–Wolf shrinkage
keeps it invertible. The held-out calibration below makes either choice's threshold honest: the sample covariance
overfits its own films, which makes new films look farther, and the validation films' distances measure that.

The threshold is calibrated on the version's held-out (validation) readings, films the weights were not fitted on:
the ⌈(n + 1)(1 − α)⌉-th smallest of their distances (split-conformal), α = 0.01, so a film from the validated
distribution lies beyond it with probability ≤ 1 in 100: "rarer than 1 in 100 of what this model was validated on".

Two more signals combine with it (any one flags): the segmenter's hand detection score (`Prediction.score`, 0 when no
hand was found) below min(0.5, the validation films' lowest 1 %), and, where the caller has one, the hand mask's
quality (the automask's, 0..1) below `MASK_QUALITY_FLOOR`. Every flag carries its reason in words. A checkpoint
without a reference reads as not flagged with the reason "no reference" (`UNKNOWN`): absence is not evidence.

Pure numpy; no Django. `OODReference.to_payload` / `from_payload` are what `ml.checkpoint` stores (plain tensors and
numbers, loadable with `torch.load(weights_only=True)`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

METHOD = "mahalanobis-ledoit-wolf/1"
ALPHA = 0.01                  # the validated films' share beyond the threshold
HAND_SCORE_CEILING = 0.5      # a detection below this is "no hand found" (the detector's own decision point)
MASK_QUALITY_FLOOR = 0.25     # automask quality below this: no usable hand outline (docs/benchmarks: failed masks < 0.55)
NO_REFERENCE = "no reference: this model version carries no record of its training films, so it cannot tell"


@dataclass(frozen=True)
class OODResult:
    """One film's verdict. `score` is the feature distance over the threshold (> 1: beyond it; nan: no reference)."""
    outside: bool
    reason: str          # words, empty when the film is inside; NO_REFERENCE when it cannot tell
    score: float
    distance: float = math.nan
    threshold: float = math.nan
    reasons: tuple[str, ...] = ()


UNKNOWN = OODResult(False, NO_REFERENCE, math.nan)


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Rows x [n, C] → (mean [C], shrunk covariance [C, C], shrinkage in [0, 1]): Ledoit & Wolf (2004), the optimal
    convex combination of the sample covariance and μ·I for squared Frobenius loss (sklearn's formula)."""
    x = np.asarray(x, np.float64)
    n, p = x.shape
    mean = x.mean(axis=0)
    xc = x - mean
    emp = xc.T @ xc / n
    mu = float(np.trace(emp)) / p
    x2 = xc ** 2
    beta_ = float(np.sum(x2.T @ x2))
    delta_ = float(np.sum(emp ** 2))
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2 * mu * float(np.trace(emp)) + p * mu ** 2) / p
    beta = min(beta, delta)
    shrinkage = 0.0 if beta <= 0 or delta <= 0 else beta / delta
    cov = (1 - shrinkage) * emp
    cov[np.diag_indices(p)] += shrinkage * mu
    return mean, cov, shrinkage


def mahalanobis(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Rows x [n, C] (or one [C]) → sqrt((x − μ)ᵀ P (x − μ)) [n], in float64."""
    d = np.atleast_2d(np.asarray(x, np.float64)) - np.asarray(mean, np.float64)
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, np.asarray(precision, np.float64), d), 0.0))


def conformal_quantile(values: np.ndarray, alpha: float) -> float:
    """The ⌈(n + 1)(1 − α)⌉-th smallest value (capped at the largest when n < 1/α − 1: then the threshold is the
    validated films' farthest, and the guarantee is 1 in n + 1 instead of α)."""
    v = np.sort(np.asarray(values, np.float64))
    if not len(v):
        raise ValueError("no validation distances to calibrate on")
    k = min(math.ceil((len(v) + 1) * (1 - alpha)), len(v))
    return float(v[k - 1])


@dataclass(frozen=True)
class OODReference:
    """A checkpoint's record of what its model has seen: the training embeddings' mean and shrunk precision, and the
    thresholds calibrated on the validation films."""
    mean: np.ndarray                 # float32 [C]
    precision: np.ndarray            # float32 [C, C]: the shrunk covariance's inverse
    threshold: float                 # feature distance beyond which a film is outside
    hand_score_min: float            # detection score below which "no hand found"
    n_train: int
    n_val: int
    shrinkage: float
    val_distance_median: float
    alpha: float = ALPHA
    method: str = METHOD
    note: str = ""                   # where the films came from (the starter's: a fresh phantom cohort)
    pixels: PixelReference | None = None  # grey levels and texture of the films (references from before: None)

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        """[n, C] (or [C]) → Mahalanobis distances [n] (float64)."""
        return mahalanobis(embeddings, self.mean, self.precision)

    def assess(self, embedding: np.ndarray | None, hand_score: float | None = None,
               mask_quality: float | None = None, pixels: np.ndarray | None = None) -> OODResult:
        """One film: outside when any of its signals is (distance, pixel statistics, hand score, mask quality); the
        reasons in words."""
        reasons: list[str] = []
        if pixels is not None and self.pixels is not None:
            far = float(self.pixels.distances(pixels)[0])
            if not math.isfinite(far) or far > self.pixels.threshold:
                reasons.append(f"the film's grey levels and texture are unlike the films this model was trained on "
                               f"(distance {far:.1f}, threshold {self.pixels.threshold:.1f})")
        distance = math.nan
        if embedding is not None:
            distance = float(self.distances(embedding)[0])
            if not math.isfinite(distance) or distance > self.threshold:
                reasons.append(f"the film's features are unlike anything this model was trained on "
                               f"(distance {distance:.1f}, threshold {self.threshold:.1f})")
        if hand_score is not None and hand_score < self.hand_score_min:
            reasons.append(f"no hand found (detection score {hand_score:.2f})")
        if mask_quality is not None and mask_quality < MASK_QUALITY_FLOOR:
            reasons.append(f"no usable hand outline (mask quality {mask_quality:.2f}, floor {MASK_QUALITY_FLOOR:.2f})")
        score = distance / self.threshold if math.isfinite(distance) and self.threshold > 0 else math.nan
        return OODResult(bool(reasons), "; ".join(reasons), score, distance, self.threshold, tuple(reasons))

    def to_payload(self) -> dict[str, Any]:
        import torch  # only for storage: the checkpoint holds tensors

        return {"method": self.method, "mean": torch.from_numpy(np.asarray(self.mean, np.float32).copy()),
                "precision": torch.from_numpy(np.asarray(self.precision, np.float32).copy()),
                "threshold": float(self.threshold), "hand_score_min": float(self.hand_score_min),
                "n_train": int(self.n_train), "n_val": int(self.n_val), "shrinkage": float(self.shrinkage),
                "val_distance_median": float(self.val_distance_median), "alpha": float(self.alpha), "note": self.note,
                **({"pixels": self.pixels.to_payload()} if self.pixels is not None else {})}

    @classmethod
    def from_payload(cls, payload: Any) -> OODReference | None:
        """The stored dict back; None for no reference or one this code cannot read (an unknown method)."""
        if not isinstance(payload, dict) or payload.get("method") != METHOD:
            return None
        try:
            return cls(np.asarray(payload["mean"], np.float32), np.asarray(payload["precision"], np.float32),
                       float(payload["threshold"]), float(payload["hand_score_min"]), int(payload["n_train"]),
                       int(payload["n_val"]), float(payload["shrinkage"]), float(payload["val_distance_median"]),
                       float(payload.get("alpha", ALPHA)), METHOD, str(payload.get("note", "")),
                       PixelReference.from_payload(payload.get("pixels")))
        except (KeyError, TypeError, ValueError):
            return None


PIXEL_STATISTICS = ("hand share of the crop", "q05", "q25", "q50", "q75", "q95", "texture", "film mean", "film std")


def pixel_statistics(images: Any, crops: Any) -> np.ndarray:
    """What a film's pixels look like, as the network receives them: [B, 9] from the work images [B, 1, H, W] and the
    regressor's (standardised) crops [B, 1, S, S]: the hand's share of the crop, five quantiles of the crop's hand
    values, their texture (mean |Laplacian| over the hand), the film's mean and spread. Real radiographs and phantoms
    differ here where the embedding barely does (issue 29: on 300 real films 88 % lie beyond all 100 phantom
    validation films, the embedding alone 75 %, either 96 %)."""
    import torch

    with torch.no_grad():
        c = crops[:, 0].float()
        hand = c != 0
        lap = (4 * c[:, 1:-1, 1:-1] - c[:, :-2, 1:-1] - c[:, 2:, 1:-1] - c[:, 1:-1, :-2] - c[:, 1:-1, 2:]).abs()
        inner = hand[:, 1:-1, 1:-1]
        rows = []
        for i in range(len(c)):
            values = c[i][hand[i]]
            q = torch.quantile(values, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])) if values.numel() \
                else torch.zeros(5)
            texture = float((lap[i] * inner[i]).sum() / inner[i].sum().clamp(min=1))
            image = images[i].float()
            rows.append([float(hand[i].float().mean()), *q.tolist(), texture, float(image.mean()), float(image.std())])
    return np.asarray(rows, np.float64)


@dataclass(frozen=True)
class PixelReference:
    """The training films' pixel statistics: mean, precision, and the validation films' threshold."""
    mean: np.ndarray
    precision: np.ndarray
    threshold: float

    def distances(self, stats: np.ndarray) -> np.ndarray:
        return mahalanobis(stats, self.mean, self.precision)

    def to_payload(self) -> dict[str, Any]:
        import torch

        return {"mean": torch.from_numpy(np.asarray(self.mean, np.float32).copy()),
                "precision": torch.from_numpy(np.asarray(self.precision, np.float32).copy()),
                "threshold": float(self.threshold)}

    @classmethod
    def from_payload(cls, payload: Any) -> PixelReference | None:
        if not isinstance(payload, dict):
            return None
        try:
            return cls(np.asarray(payload["mean"], np.float32), np.asarray(payload["precision"], np.float32),
                       float(payload["threshold"]))
        except (KeyError, TypeError, ValueError):
            return None


def fit_pixels(train: np.ndarray, val: np.ndarray, alpha: float) -> PixelReference:
    """Mahalanobis on the pixel statistics (few features: the sample covariance, a ridge for constant ones)."""
    train, val = np.asarray(train, np.float64), np.asarray(val, np.float64)
    if train.ndim != 2 or len(train) < 2 or val.ndim != 2 or not len(val) or val.shape[1] != train.shape[1]:
        raise ValueError(f"pixel statistics {train.shape} / {val.shape}: need [n >= 2, k] and [m >= 1, k]")
    mean = train.mean(axis=0)
    cov = np.cov(train.T, bias=True).reshape(train.shape[1], train.shape[1])
    cov[np.diag_indices_from(cov)] += 1e-6 * max(float(np.trace(cov)) / len(cov), 1e-12) + 1e-9
    partial = PixelReference(mean.astype(np.float32), np.linalg.inv(cov).astype(np.float32), math.inf)
    return PixelReference(partial.mean, partial.precision, conformal_quantile(partial.distances(val), alpha))


def fit_reference(train_embeddings: np.ndarray, val_embeddings: np.ndarray,
                  val_hand_scores: np.ndarray | None = None, *, alpha: float = ALPHA, note: str = "",
                  train_pixels: np.ndarray | None = None, val_pixels: np.ndarray | None = None) -> OODReference:
    """Fit on the training films' embeddings [n, C], calibrate on the validation films' [m, C] (and their detection
    scores). With pixel statistics too (`pixel_statistics`), each of the two distances is calibrated at α/2, so a
    validated film is flagged by either at most α of the time. Raises ValueError for fewer than 2 training or 1
    validation films, or mismatched widths."""
    pixels = None
    # the pixel statistics' covariance needs 2 films per statistic: with fewer (a first model on a dozen films) its
    # distances are noise that would call most films outside; the embedding (Ledoit-Wolf below) judges alone
    if train_pixels is not None and val_pixels is not None and len(train_pixels) >= 2 * len(PIXEL_STATISTICS):
        alpha = alpha / 2
        pixels = fit_pixels(train_pixels, val_pixels, alpha)
    train = np.asarray(train_embeddings, np.float64)
    val = np.asarray(val_embeddings, np.float64)
    if train.ndim != 2 or len(train) < 2:
        raise ValueError(f"need at least 2 training embeddings [n, C], got shape {train.shape}")
    if val.ndim != 2 or len(val) < 1 or val.shape[1] != train.shape[1]:
        raise ValueError(f"validation embeddings {val.shape} do not match training {train.shape}")
    if len(train) >= 2 * train.shape[1]:  # enough films: the sample covariance (see the module docstring)
        mean = train.mean(axis=0)
        cov, shrinkage = np.cov(train.T, bias=True).reshape(train.shape[1], train.shape[1]), 0.0
    else:
        mean, cov, shrinkage = ledoit_wolf(train)
    # a tiny ridge: a training set whose features are all constant (mu = 0) still gives an invertible matrix
    cov[np.diag_indices_from(cov)] += 1e-6 * max(float(np.trace(cov)) / len(cov), 1e-12)
    precision = np.linalg.inv(cov)
    partial = OODReference(mean.astype(np.float32), precision.astype(np.float32), math.inf, 0.0, len(train), len(val),
                           shrinkage, math.nan, alpha, METHOD, note)
    dist = partial.distances(val)
    hand_min = HAND_SCORE_CEILING
    if val_hand_scores is not None and len(val_hand_scores):
        # a segmenter that is weak on its own validation films does not flag them all: the floor goes down to its
        # lowest 1 % there (the same α, from the low side)
        hand_min = min(HAND_SCORE_CEILING, -conformal_quantile(-np.asarray(val_hand_scores, np.float64), alpha))
    return OODReference(partial.mean, partial.precision, conformal_quantile(dist, alpha), float(hand_min), len(train),
                        len(val), float(shrinkage), float(np.median(dist)), alpha * (2 if pixels else 1), METHOD, note,
                        pixels)


@dataclass
class FilmFeatures:
    """What `collect_features` gathers for a set of films: embeddings [n, C] and detection scores [n]."""
    embeddings: np.ndarray
    hand_scores: np.ndarray
    ids: list[str] = field(default_factory=list)
    pixels: np.ndarray | None = None  # [n, 9]: pixel_statistics


def collect_features(model: Any, dataset: Any, device: Any, batch_size: int = 32) -> FilmFeatures:
    """The full pipeline in eval mode over an `ml.data.HandDataset` (predicted masks, as at inference): each film's
    embedding (the plain view's `RegressorOutput.features`) and detection score."""
    import copy

    import torch
    from torch.utils.data import DataLoader

    from ml.data import collate

    if getattr(dataset, "augment", False):  # the films as inference sees them; the copy shares the decoded cache
        dataset = copy.copy(dataset)
        dataset.augment = False
    was_training = model.training
    model.eval()
    embs, scores, pixels = [], [], []
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate):
            images, sex = batch["image"].to(device), batch["sex"].to(device)
            _, det = model.segment(images)
            crops, _ = model.crop(images, det)
            embs.append(model.regressor(crops, sex).features.float().cpu().numpy())
            scores.append(det.scores.float().cpu().numpy())
            pixels.append(pixel_statistics(images.cpu(), crops.cpu()))
    model.train(was_training)
    ids = [s.id for s in getattr(dataset, "samples", [])]
    return FilmFeatures(np.concatenate(embs), np.concatenate(scores), ids, np.concatenate(pixels))


MAX_REFERENCE_FILMS = 5000  # training films the reference is fitted on at most (evenly spaced): one extra pass


def reference_for_model(model: Any, train_dataset: Any, val_dataset: Any, device: Any, batch_size: int = 32,
                        note: str = "") -> dict[str, Any] | None:
    """The checkpoint payload for a trained model (what `ml.train.train` stores): fitted on the training films (at
    most MAX_REFERENCE_FILMS of them, without augmentation), calibrated on the validation films. None (and the
    checkpoint carries no reference) when either set is too small to fit on, so a tiny run still writes its
    checkpoint."""
    from torch.utils.data import Subset

    if len(train_dataset) > MAX_REFERENCE_FILMS:
        keep = np.linspace(0, len(train_dataset) - 1, MAX_REFERENCE_FILMS).round().astype(int).tolist()
        if getattr(train_dataset, "augment", False):
            import copy
            train_dataset = copy.copy(train_dataset)
            train_dataset.augment = False
        train_dataset = Subset(train_dataset, keep)
    train = collect_features(model, train_dataset, device, batch_size)
    val = collect_features(model, val_dataset, device, batch_size)
    try:
        return fit_reference(train.embeddings, val.embeddings, val.hand_scores, note=note, train_pixels=train.pixels,
                             val_pixels=val.pixels).to_payload()
    except (ValueError, np.linalg.LinAlgError):
        return None


def _embed_folder(predictor: Any, folder: str, batch_size: int = 16,
                  limit: int | None = None) -> tuple[list[str], FilmFeatures, list[Any]]:
    """Every film of a data folder (labels.csv + images/) through the predictor: ids, features, predictions."""
    from ml.data import read_folder
    from ml.imaging import load_image

    samples = read_folder(folder)[:limit]
    preds: list[Any] = []
    for i in range(0, len(samples), batch_size):
        chunk = samples[i:i + batch_size]
        preds += predictor.predict_batch([load_image(s.image_path) for s in chunk], [s.male for s in chunk],
                                         with_attention=False)
    ids = [s.id for s in samples]
    return ids, FilmFeatures(np.stack([p.embedding for p in preds]), np.array([p.score for p in preds]), ids,
                             np.stack([p.pixels for p in preds])), preds


def main(argv: list[str] | None = None) -> int:
    """python -m ml.ood fit CKPT TRAIN_DIR VAL_DIR [--note TEXT]: store a reference fitted on TRAIN_DIR's films and
    calibrated on VAL_DIR's in CKPT (how the shipped starter got its own: ml/weights/README.md).
    python -m ml.ood measure CKPT DIR [--limit N]: the share of DIR's films the checkpoint flags, and why."""
    import argparse
    import collections
    import time

    from ml.checkpoint import resolve_checkpoint, store_ood_reference
    from ml.infer import Predictor

    ap = argparse.ArgumentParser(prog="python -m ml.ood", description="Out-of-distribution references (issue 29).")
    sub = ap.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit and store a checkpoint's reference")
    fit.add_argument("ckpt")
    fit.add_argument("train_dir")
    fit.add_argument("val_dir")
    fit.add_argument("--note", default="")
    measure = sub.add_parser("measure", help="the share of a folder's films flagged")
    measure.add_argument("ckpt")
    measure.add_argument("data_dir")
    measure.add_argument("--limit", type=int, default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    predictor = Predictor(resolve_checkpoint(args.ckpt), device="cpu")
    if args.command == "fit":
        _, train, _ = _embed_folder(predictor, args.train_dir)
        _, val, _ = _embed_folder(predictor, args.val_dir)
        ref = fit_reference(train.embeddings, val.embeddings, val.hand_scores, note=args.note,
                            train_pixels=train.pixels, val_pixels=val.pixels)
        sha = store_ood_reference(resolve_checkpoint(args.ckpt), ref.to_payload())
        print(f"reference on {ref.n_train} films (shrinkage {ref.shrinkage:.3f}), threshold {ref.threshold:.2f} "
              f"(validation median {ref.val_distance_median:.2f}, n {ref.n_val}), hand score ≥ "
              f"{ref.hand_score_min:.2f} → {args.ckpt} sha256 {sha} in {time.perf_counter() - t0:.0f}s")
        return 0
    _, feats, preds = _embed_folder(predictor, args.data_dir, limit=args.limit)
    flagged = [p for p in preds if p.outside]
    kinds = collections.Counter(r.split(" (")[0] for p in flagged for r in p.outside_reason.split("; "))
    scores = np.array([p.ood_score for p in preds])
    print(f"{len(flagged)}/{len(preds)} flagged ({len(flagged) / max(len(preds), 1):.1%}) in "
          f"{time.perf_counter() - t0:.0f}s; score median {np.nanmedian(scores):.2f}, "
          f"p5 {np.nanpercentile(scores, 5):.2f}, p95 {np.nanpercentile(scores, 95):.2f}; "
          f"hand score median {np.median(feats.hand_scores):.3f}; reasons: {dict(kinds)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
