"""The label-efficiency experiment on a two-site archive: `python -m ml.active simulate --regressor sites`.

The starter-regime runs (ml.active_starter) found that a project whose images all look like the starter's gains
almost nothing from its labels, so no choice of labels can save any. A project's archive is seldom one scanner,
though: a second hospital joins, or a department replaces its CR reader, and part of the archive arrives with other
processing. Here a fixed share of the pool and of the test set (`new_site_share`, 25 %) comes from a site whose reader
applies strong edge enhancement (`edge_enhanced`: unsharp masking, as CR vendors' multi-frequency processing does).
The starter reads those images at ~17 months against ~7 for the rest, and the information is still in the image, so
the project's labels can teach the network to read them. Whether a strategy finds them is the question.

The learner is the starter's whole regressor (Attention-92 layout at width 1/8), fine-tuned from the starter again
every round as the product's training runs are: AdamW lr 3e-4, 10 % warm-up and cosine to 0 over 10 epochs, batch
16, BatchNorm statistics frozen at the starter's, L1 loss — the `finetune` preset of ml.train. Its input is the crops
the starter's own Mask R-CNN cuts from each of the six test-time views of `ml.tta` (cached once; the segmenter itself
is not fine-tuned, to fit the CPU budget). Training draws one view per sample as augmentation; a reading is the views'
mean and its std the product's `both` spread (`ml.tta.spread`).

The scenario (site share, processing) was fixed from the starter's zero-label error alone, before any strategy ran.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ml.models.attention import ResidualAttentionNet
from ml.tta import VIEWS, augmented_views, head_spread


@dataclass(frozen=True)
class SitesSetup:
    checkpoint: str = "starter"
    render_size: int = 512
    distractors: str = "random"   # as the starter's training and held-out cohorts
    new_site_share: float = 0.25  # of the pool and of the test set alike
    epochs: int = 10              # the finetune preset's
    batch_size: int = 16
    lr: float = 3e-4
    warmup_fraction: float = 0.1
    weight_decay: float = 1e-4
    grad_clip: float = 10.0
    mc_samples: int = 16


def edge_enhanced(unit: np.ndarray) -> np.ndarray:
    """An image in [0, 1] as a reader with strong edge enhancement gives it: unsharp masking with a wide kernel
    (σ = 8 px at 512 px, amount 1.5)."""
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(unit, sigma=8 * max(unit.shape) / 512)
    return np.clip(unit + 1.5 * (unit - blurred), 0.0, 1.0).astype(np.float32)


def from_new_site(seed: int, index: int, share: float) -> bool:
    """Which site study `index` of cohort `seed` comes from: a fixed draw per study, the same for every strategy."""
    return bool(np.random.default_rng([seed, index, 7]).random() < share)


@torch.no_grad()
def site_crops(n: int, seed: int, setup: SitesSetup, log=print) -> dict[str, np.ndarray]:
    """n phantoms of cohort `seed` → crops [n, views, 1, S, S] float16 (the starter's segmenter on each view of the
    work canvas), age [n] months, male [n], new_site [n]."""
    from ml.checkpoint import load_checkpoint, resolve_checkpoint
    from ml.data import to_square
    from ml.phantoms import render
    from ml.phantoms.cohort import sample_subject

    checkpoint = load_checkpoint(resolve_checkpoint(setup.checkpoint))
    model, side = checkpoint.build().eval(), checkpoint.model_config.work_size
    crops, ages, males, sites = [], [], [], []
    t0 = time.perf_counter()
    for start in range(0, n, 16):
        squares = []
        for i in range(start, min(n, start + 16)):
            age, male, rseed = sample_subject(seed, i)
            ph = render(age, male, rseed, size=setup.render_size, distractors=setup.distractors, split="test")
            unit = np.clip(ph.image.astype(np.float32) / 65535.0, 0, 1)
            new = from_new_site(seed, i, setup.new_site_share)
            square, _, _ = to_square(edge_enhanced(unit) if new else unit, side, "bilinear")
            squares.append(torch.from_numpy(np.asarray(square, np.float32)))
            ages.append(age)
            males.append(male)
            sites.append(new)
        x = torch.stack(squares)[:, None]
        per_view = [model.crop(view, model.segment(view)[1])[0] for view in [x, *augmented_views(x)]]
        crops.append(torch.stack(per_view, dim=1).half().numpy())
        if start % 160 == 0:
            log(f"site crops: {start + len(squares)}/{n} phantoms ({time.perf_counter() - t0:.0f} s)")
    return {"crops": np.concatenate(crops), "age": np.array(ages, float), "male": np.array(males, bool),
            "new_site": np.array(sites, bool)}


def cached_site_crops(n: int, seed: int, setup: SitesSetup, cache_dir: str = "var", log=print) -> dict[str, np.ndarray]:
    """`site_crops`, kept in `cache_dir` under a name that holds the cohort, the scenario and the weights' hash."""
    from pathlib import Path

    from ml.checkpoint import file_sha256, resolve_checkpoint

    digest = file_sha256(resolve_checkpoint(setup.checkpoint))[:12]
    name = f"al-sites-{seed}-{n}-{setup.render_size}-{setup.distractors}-{setup.new_site_share:g}-{digest}.npz"
    path = Path(cache_dir) / name
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    out = site_crops(n, seed, setup, log=log)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path.with_suffix(".tmp.npz"), crops=out["crops"], age=out["age"], male=out["male"],
             new_site=out["new_site"])
    path.with_suffix(".tmp.npz").replace(path)  # a stopped run leaves no half-written cache
    return out


def starter_regressor(setup: SitesSetup) -> ResidualAttentionNet:
    from ml.checkpoint import load_checkpoint, resolve_checkpoint

    regressor = load_checkpoint(resolve_checkpoint(setup.checkpoint)).build().regressor.eval()
    assert isinstance(regressor, ResidualAttentionNet), f"the starter's regressor is a {type(regressor).__name__}"
    return regressor


class StarterRegressorLearner:
    """One run's learner: the starter's regressor fine-tuned whole on the labelled studies' crops, from the starter
    again each round."""

    def __init__(self, crops: np.ndarray, age: np.ndarray, male: np.ndarray, setup: SitesSetup, seed: int,
                 regressor: ResidualAttentionNet | None = None) -> None:
        self.x = torch.from_numpy(crops)  # [n, V, 1, S, S] float16
        self.y = torch.from_numpy(age).float()
        self.sex = torch.from_numpy(np.where(male, 1.0, -1.0)).float()
        self.setup = setup
        self.seed = seed
        self.net: ResidualAttentionNet = copy.deepcopy(regressor) if regressor is not None else starter_regressor(setup)
        self.start_state = {k: v.clone() for k, v in self.net.state_dict().items()}
        self._feats: torch.Tensor | None = None  # the plain view's features of the current weights, all studies

    def fit(self, labelled: list[int]) -> None:
        from ml.train import freeze_batchnorm

        idx = torch.tensor(labelled)
        self.net.load_state_dict(self.start_state)  # each round starts from the starter, as a training run does
        self._feats = None
        generator = torch.Generator().manual_seed(self.seed * 1009 + len(labelled))
        torch.manual_seed(self.seed * 1009 + len(labelled))  # the dropout masks
        steps_per_epoch = math.ceil(len(idx) / self.setup.batch_size)
        total = max(1, self.setup.epochs * steps_per_epoch)
        warmup = max(1, round(self.setup.warmup_fraction * total))
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.setup.lr, weight_decay=self.setup.weight_decay)
        scale = float(self.net.head.age_std)
        self.net.train()
        freeze_batchnorm(self.net)
        step = 0
        for _ in range(self.setup.epochs):
            order = idx[torch.randperm(len(idx), generator=generator)]
            for k in range(steps_per_epoch):
                batch = order[k * self.setup.batch_size:(k + 1) * self.setup.batch_size]
                views = torch.randint(0, self.x.shape[1], (len(batch),), generator=generator)
                factor = (step + 1) / warmup if step < warmup else \
                    0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
                for group in opt.param_groups:
                    group["lr"] = self.setup.lr * factor
                loss = F.l1_loss(self.net(self.x[batch, views].float(), self.sex[batch]).age, self.y[batch]) / scale
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.setup.grad_clip)
                opt.step()
                step += 1
        self.net.eval()

    @torch.no_grad()
    def predict(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean over the views [n], the `both` raw std [n]) in months."""
        self.net.eval()
        ages, stds = [], []
        for start in range(0, len(indices), 64):
            chunk = torch.as_tensor(np.asarray(indices[start:start + 64], dtype=np.int64))
            feats = [self.net.embed(self.x[chunk, v].float()) for v in range(len(VIEWS))]
            self._remember(chunk, feats[0])
            reading = head_spread(self.net.head, feats, self.sex[chunk], self.setup.mc_samples, self.seed)
            ages.append(reading.age)
            stds.append(reading.raw_std)
        return torch.cat(ages).numpy().astype(float), torch.cat(stds).numpy().astype(float)

    def _remember(self, chunk: torch.Tensor, feats: torch.Tensor) -> None:
        if self._feats is None:
            self._feats = torch.full((len(self.x), feats.shape[1]), float("nan"))
        self._feats[chunk] = feats

    @torch.no_grad()
    def embed(self, indices: np.ndarray) -> np.ndarray:
        """[n, C + 1]: the plain view's trunk features of the current weights and sex in {-1, +1}."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        missing = idx if self._feats is None else idx[torch.isnan(self._feats[idx, 0])]
        for start in range(0, len(missing), 64):
            chunk = missing[start:start + 64]
            self._remember(chunk, self.net.embed(self.x[chunk, 0].float()))
        assert self._feats is not None
        return torch.cat([self._feats[idx], self.sex[idx, None]], dim=1).numpy().astype(float)
