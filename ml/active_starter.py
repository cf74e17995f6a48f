"""The label-efficiency experiment in the product's own regime: `python -m ml.active simulate --regressor starter`.

A project does not train from scratch: every training run fine-tunes the shipped starter (ml/weights/README.md),
which reads unseen phantoms at ~7 months before it has seen one of the project's labels. The question active learning
answers there is which labels improve an already good reader fastest, not which labels teach a new one to read.

The stand-in for the fine-tune, to fit a CPU budget (15 rounds × seeds × strategies): the starter's trunk is frozen
and its age head (dropout → FC → ReLU → dropout → FC, ~17 k weights) is fine-tuned from the starter's own head on the
labels so far — from the starter again each round, as each of the product's training runs starts from it. The
trunk's features of every phantom are computed once, for each of the six test-time views of `ml.tta` (the
identity, mirror, gamma 0.8 / 1.25, zoom ±6 %), through the full pipeline (the starter's Mask R-CNN finds the hand,
the crop is cut from its predicted mask). Training uses the views as augmentation; a reading is the views' mean and
its std the product's `both` spread: √(variance over the views + MC-dropout variance of the head on the plain
view) (`ml.tta.spread`).

`StarterHeadLearner.embed` gives the plain view's features + sex, the space `coreset` / `hybrid` measure distances in.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ml.models.attention import AgeHead
from ml.tta import VIEWS, augmented_views, head_spread


@dataclass(frozen=True)
class StarterSetup:
    checkpoint: str = "starter"
    render_size: int = 512
    distractors: str = "random"  # as the starter's training and held-out cohorts
    epochs: int = 60             # passes over the labelled studies per round (each sample one random view)
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    mc_samples: int = 16
    scanner: str = "same"        # "other": the project's images come from another scanner (`other_scanner`)

    def __post_init__(self) -> None:
        if self.scanner not in SCANNERS:
            raise ValueError(f"unknown scanner {self.scanner!r}; known: {', '.join(SCANNERS)}")


SCANNERS = ("same", "other")


def other_scanner(unit: np.ndarray, seed: int) -> np.ndarray:
    """An image in [0, 1] as another site's scanner would give it: a flatter contrast curve (gamma 0.6, outside the
    starter's 0.8–1.25 augmentation), a softer detector (Gaussian blur, σ = 1.5 px at 512 px) and quantum noise
    (sd 0.02). Fixed before any result was seen, as a plausible site difference, not tuned to favour a strategy."""
    from scipy.ndimage import gaussian_filter

    noisy = gaussian_filter(np.clip(unit, 0, 1) ** 0.6, sigma=1.5 * max(unit.shape) / 512)
    noisy = noisy + np.random.default_rng(seed).normal(0.0, 0.02, unit.shape)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


@torch.no_grad()
def starter_features(n: int, seed: int, setup: StarterSetup, log=print) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n phantoms of cohort `seed` → (trunk features [n, views, C] float32, true age [n] months, male [n]).

    Each view goes through the starter's whole pipeline: work canvas → segmenter → crop by the predicted mask → trunk.
    """
    from ml.checkpoint import load_checkpoint, resolve_checkpoint
    from ml.data import to_square
    from ml.phantoms import render
    from ml.phantoms.cohort import sample_subject

    checkpoint = load_checkpoint(resolve_checkpoint(setup.checkpoint))
    model, side = checkpoint.build().eval(), checkpoint.model_config.work_size
    feats, ages, males = [], [], []
    t0 = time.perf_counter()
    for start in range(0, n, 16):
        squares = []
        for i in range(start, min(n, start + 16)):
            age, male, rseed = sample_subject(seed, i)
            ph = render(age, male, rseed, size=setup.render_size, distractors=setup.distractors, split="test")
            unit = np.clip(ph.image.astype(np.float32) / 65535.0, 0, 1)
            if setup.scanner == "other":
                unit = other_scanner(unit, rseed)
            square, _, _ = to_square(unit, side, "bilinear")
            squares.append(torch.from_numpy(np.asarray(square, np.float32)))
            ages.append(age)
            males.append(male)
        x = torch.stack(squares)[:, None]
        per_view = []
        for view in [x, *augmented_views(x)]:
            _, det = model.segment(view)
            crops, _ = model.crop(view, det)
            per_view.append(model.regressor.embed(crops))
        feats.append(torch.stack(per_view, dim=1).numpy())
        if start % 160 == 0:
            log(f"starter features: {start + len(squares)}/{n} phantoms ({time.perf_counter() - t0:.0f} s)")
    assert feats[0].shape[1] == len(VIEWS)
    return np.concatenate(feats).astype(np.float32), np.array(ages, float), np.array(males, bool)


def starter_head(setup: StarterSetup) -> AgeHead:
    from ml.checkpoint import load_checkpoint, resolve_checkpoint

    head = load_checkpoint(resolve_checkpoint(setup.checkpoint)).build().regressor.head
    assert isinstance(head, AgeHead), f"the starter's regressor has no age head but {type(head).__name__}"
    return head


class StarterHeadLearner:
    """One run's learner: the starter's head fine-tuned on the labelled studies' frozen features each round."""

    def __init__(self, feats: np.ndarray, age: np.ndarray, male: np.ndarray, setup: StarterSetup, seed: int,
                 head: AgeHead | None = None) -> None:
        self.x = torch.from_numpy(feats)  # [n, V, C]
        self.y = torch.from_numpy(age).float()
        self.sex = torch.from_numpy(np.where(male, 1.0, -1.0)).float()
        self.setup = setup
        self.seed = seed
        self.head: AgeHead = copy.deepcopy(head) if head is not None else starter_head(setup)  # its own: runs never share
        self.start_state = {k: v.clone() for k, v in self.head.state_dict().items()}

    def fit(self, labelled: list[int]) -> None:
        idx = torch.tensor(labelled)
        self.head.load_state_dict(self.start_state)  # each round starts from the starter, as a training run does
        generator = torch.Generator().manual_seed(self.seed * 1009 + len(labelled))
        torch.manual_seed(self.seed * 1009 + len(labelled))  # the dropout masks
        steps_per_epoch = math.ceil(len(idx) / self.setup.batch_size)
        total = max(1, self.setup.epochs * steps_per_epoch)
        opt = torch.optim.AdamW(self.head.parameters(), lr=self.setup.lr, weight_decay=self.setup.weight_decay)
        scale = float(self.head.age_std)
        self.head.train()
        step = 0
        for _ in range(self.setup.epochs):
            order = idx[torch.randperm(len(idx), generator=generator)]
            for k in range(steps_per_epoch):
                batch = order[k * self.setup.batch_size:(k + 1) * self.setup.batch_size]
                views = torch.randint(0, self.x.shape[1], (len(batch),), generator=generator)
                for group in opt.param_groups:  # cosine from lr to 0
                    group["lr"] = self.setup.lr * 0.5 * (1 + math.cos(math.pi * step / total))
                loss = F.l1_loss(self.head(self.x[batch, views], self.sex[batch]), self.y[batch]) / scale
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
        self.head.eval()

    @torch.no_grad()
    def predict(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean over the views [n], the `both` raw std [n]) in months."""
        self.head.eval()
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        feats = self.x[idx]
        reading = head_spread(self.head, [feats[:, v] for v in range(feats.shape[1])], self.sex[idx],
                              self.setup.mc_samples, self.seed)
        return reading.age.numpy().astype(float), reading.raw_std.numpy().astype(float)

    def embed(self, indices: np.ndarray) -> np.ndarray:
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return torch.cat([self.x[idx, 0], self.sex[idx, None]], dim=1).numpy().astype(float)


def cached_starter_features(n: int, seed: int, setup: StarterSetup, cache_dir: str = "var",
                            log=print) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`starter_features`, kept in `cache_dir` under a name that holds the cohort, the rendering and the weights' hash
    (four minutes on one thread for 1,300 phantoms; every strategy and seed reads the same features)."""
    from pathlib import Path

    from ml.checkpoint import file_sha256, resolve_checkpoint

    digest = file_sha256(resolve_checkpoint(setup.checkpoint))[:12]
    scanner = "" if setup.scanner == "same" else f"-{setup.scanner}-scanner"
    path = Path(cache_dir) / f"al-starter-{seed}-{n}-{setup.render_size}-{setup.distractors}{scanner}-{digest}.npz"
    if path.exists():
        data = np.load(path)
        return data["feats"], data["age"], data["male"]
    feats, age, male = starter_features(n, seed, setup, log=log)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path.with_suffix(".tmp.npz"), feats=feats, age=age, male=male)
    path.with_suffix(".tmp.npz").replace(path)  # a stopped run leaves no half-written cache
    return feats, age, male
