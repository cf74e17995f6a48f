"""The label-efficiency experiment with the network: `python -m ml.active simulate --regressor network`.

The regressor is the unified network's residual attention net (the light preset's Attention-92 layout at
width 1/8, sex input, dropout in the head) on the hand cropped with its ground-truth mask — the crops the
segmentation subnet feeds it under teacher forcing; the Mask R-CNN itself is left out to fit a CPU budget.
Its uncertainty is MC-dropout std (`ml.uncertainty.mc_std`'s head sampling), exactly what the platform ranks by.

Each round continues training from the previous round's weights (warm start: `first_epochs` on the start set,
then `round_epochs` per round on everything labelled so far), then recomputes BatchNorm statistics over the
labelled crops (precise BN) before predicting.

`NetLearner.embed` gives the penultimate representation the `coreset` / `hybrid` strategies measure distances in:
the trunk's pooled features (eval mode) + sex, i.e. the age head's input without its dropout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ml.models.attention import ResidualAttentionNet
from ml.models.unified import standardize_crops
from ml.train import exact_batchnorm_statistics
from ml.uncertainty import mc_dropout


@dataclass(frozen=True)
class NetSetup:
    side: int = 64              # crop side (the starter preset's)
    width: float = 0.125
    first_epochs: int = 16
    round_epochs: int = 4
    batch_size: int = 16
    lr: float = 2e-3
    mc_samples: int = 16
    render_size: int = 256


def phantom_crops(n: int, seed: int, setup: NetSetup) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n phantoms → (hand crops [n, side, side] standardized as UnifiedNet does, age [n], male [n])."""
    from ml.active import _crop
    from ml.phantoms import render
    from ml.phantoms.cohort import sample_subject

    crops, ages, males = [], [], []
    for i in range(n):
        age, male, rseed = sample_subject(seed, i)
        ph = render(age, male, rseed, size=setup.render_size)
        crops.append(_crop(ph.image, ph.mask, setup.side))
        ages.append(age)
        males.append(male)
    standardized = standardize_crops(torch.from_numpy(np.stack(crops))[:, None])[:, 0].numpy()
    return standardized, np.array(ages, float), np.array(males, bool)


class NetLearner:
    """One active-learning run's network: fit on the labelled indices (warm start), predict mean and MC std."""

    def __init__(self, crops: np.ndarray, age: np.ndarray, male: np.ndarray, setup: NetSetup, seed: int) -> None:
        self.x = torch.from_numpy(crops)[:, None]
        self.y = torch.from_numpy(age).float()
        self.sex = torch.from_numpy(np.where(male, 1.0, -1.0)).float()
        self.setup = setup
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.net = ResidualAttentionNet(width=setup.width, use_sex=True, dropout=0.2, pre_post=0, trunk=1,
                                        final_units=1)
        self.fitted = False
        self._feats: torch.Tensor | None = None  # trunk features of the current weights, rows where _have
        self._have = torch.zeros(len(self.x), dtype=torch.bool)

    def fit(self, labelled: list[int]) -> None:
        idx = torch.tensor(labelled)
        if not self.fitted:  # the head predicts normalised age around the first labels' mean
            self.net.head.age_mean.fill_(float(self.y[idx].mean()))
            self.net.head.age_std.fill_(max(float(self.y[idx].std()), 1.0))
        epochs = self.setup.round_epochs if self.fitted else self.setup.first_epochs
        steps_per_epoch = math.ceil(len(idx) / self.setup.batch_size)
        total = epochs * steps_per_epoch
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.setup.lr, weight_decay=1e-4)
        scale = float(self.net.head.age_std)
        self.net.train()
        step = 0
        for _ in range(epochs):
            order = idx[torch.randperm(len(idx), generator=self.generator)]
            for k in range(steps_per_epoch):
                batch = order[k * self.setup.batch_size:(k + 1) * self.setup.batch_size]
                for group in opt.param_groups:  # cosine from lr to 0 within the round
                    group["lr"] = self.setup.lr * 0.5 * (1 + math.cos(math.pi * step / total))
                x = self.x[batch]
                if torch.rand(1, generator=self.generator).item() < 0.5:
                    x = x.flip(-1)  # left / right hands
                loss = F.l1_loss(self.net(x, self.sex[batch]).age, self.y[batch]) / scale
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
        self._precise_bn(idx)
        self.fitted = True
        self._have[:] = False  # new weights: cached features are stale

    @torch.no_grad()
    def _precise_bn(self, idx: torch.Tensor) -> None:
        with exact_batchnorm_statistics(self.net):
            for start in range(0, len(idx), 64):
                self.net.embed(self.x[idx[start:start + 64]])
        self.net.eval()

    @torch.no_grad()
    def predict(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.net.eval()
        means, stds = [], []
        head, n = self.net.head, self.setup.mc_samples
        for start in range(0, len(indices), 128):
            chunk = torch.as_tensor(indices[start:start + 128])
            feats, sex = self.net.embed(self.x[chunk]), self.sex[chunk]
            self._remember(chunk, feats)
            means.append(head(feats, sex))
            with mc_dropout(head, seed=start):
                samples = head(feats.repeat(n, 1), sex.repeat(n)).view(n, len(chunk))
            stds.append(samples.std(dim=0))
        return torch.cat(means).numpy().astype(float), torch.cat(stds).numpy().astype(float)

    def _remember(self, chunk: torch.Tensor, feats: torch.Tensor) -> None:
        if self._feats is None:
            self._feats = feats.new_zeros(len(self.x), feats.shape[1])
        self._feats[chunk] = feats
        self._have[chunk] = True

    @torch.no_grad()
    def embed(self, indices: np.ndarray) -> np.ndarray:
        """[n, C + 1]: the trunk's global-average-pooled features of the current weights (eval mode, the fitted BN
        statistics) and sex in {-1, +1} — the age head's input, before its dropout. Rows `predict` computed since
        the last `fit` are reused, not recomputed."""
        self.net.eval()
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        missing = idx[~self._have[idx]]
        for start in range(0, len(missing), 128):
            chunk = missing[start:start + 128]
            self._remember(chunk, self.net.embed(self.x[chunk]))
        feats = self._feats[idx] if self._feats is not None else torch.zeros(0, 0)
        return torch.cat([feats, self.sex[idx, None]], dim=1).numpy().astype(float)
