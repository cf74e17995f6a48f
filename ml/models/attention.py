"""Residual attention network (Wang et al. 2017), Attention-92 stage layout, for age regression.

Stages: conv7×7/2 + maxpool → RU → Att1_1 (3-level mask) → RU/2 → Att2_1, Att2_2 (2 levels) → RU/2 →
Att3_1..Att3_3 (1 level) → RU/2 → 2 RU → BN-ReLU-GAP → concat(sex) → FC head → age.
Every module computes x' = T(x)·(1 + σ(M(x))); its mask logits M(x) (before the sigmoid) are what
the paper's figures show, and what `forward` returns per module name.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ml.attention_names import ATTENTION_NAMES
from ml.models.blocks import ResidualUnit


def _units(channels: int, n: int) -> nn.Sequential:
    """n residual units in a row (n = 0: identity)."""
    return nn.Sequential(*(ResidualUnit(channels, channels) for _ in range(n)))


class AttentionModule(nn.Module):
    """Pre RUs (p) → trunk T (t RUs) and soft-mask branch M (levels× maxpool/RU down, skips, bilinear up,
    BN-ReLU-1×1-BN-ReLU-1×1) → T·(1+σ(M)) → post RUs (p). Attention-92: p=1, t=2 (Wang et al.).

    x: [B, C, H, W] → ([B, C, H, W], mask logits [B, C, H, W] or None when attention is off).
    Up-sampling uses `F.interpolate(size=skip.shape[-2:])`, so any H, W ≥ 1 works.
    """

    def __init__(self, channels: int, levels: int, attend: bool = True, pre_post: int = 1, trunk: int = 2) -> None:
        super().__init__()
        self.levels = levels
        self.attend = attend
        # p = 1 keeps the single-unit module names (state_dict keys of earlier checkpoints stay valid)
        self.pre = ResidualUnit(channels, channels) if pre_post == 1 else _units(channels, pre_post)
        self.trunk = _units(channels, max(trunk, 1))
        self.post = ResidualUnit(channels, channels) if pre_post == 1 else _units(channels, pre_post)
        if not attend:
            return
        self.down = nn.ModuleList(ResidualUnit(channels, channels) for _ in range(levels))
        self.skip = nn.ModuleList(ResidualUnit(channels, channels) for _ in range(levels - 1))
        self.bottom = ResidualUnit(channels, channels)
        self.up = nn.ModuleList(ResidualUnit(channels, channels) for _ in range(levels - 1))
        self.head = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1),
        )

    def mask_logits(self, x: Tensor) -> Tensor:
        h, skips = x, []
        for i in range(self.levels):
            h = self.down[i](F.max_pool2d(h, 3, stride=2, padding=1))
            if i < self.levels - 1:
                skips.append(self.skip[i](h))
        h = self.bottom(h)
        for i in reversed(range(self.levels - 1)):
            h = F.interpolate(h, size=skips[i].shape[-2:], mode="bilinear", align_corners=False) + skips[i]
            h = self.up[i](h)
        h = F.interpolate(h, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(h)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        x = self.pre(x)
        trunk = self.trunk(x)
        if not self.attend:
            return self.post(trunk), None
        logits = self.mask_logits(x)
        return self.post(trunk * (1.0 + torch.sigmoid(logits))), logits


@dataclass(frozen=True)
class RegressorOutput:
    age: Tensor  # [B] months
    attention: dict[str, Tensor]  # name → [B, h, w] channel-mean of the mask logits
    features: Tensor  # [B, C] the head's input (GAP of the trunk): what core-set active learning compares


class AgeHead(nn.Module):
    """GAP features [B, C] (+ sex [B] in {-1, 0, +1}) → age [B] in months.

    Dropout (the only stochastic layer, used for MC dropout) → concat(sex) → FC → ReLU → Dropout → FC.
    The output is de-normalised with buffers `age_mean`/`age_std` set from the training labels.
    """

    age_mean: Tensor  # buffers, declared for the type checker
    age_std: Tensor

    def __init__(self, features: int, use_sex: bool, hidden: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.use_sex = use_sex
        self.drop1 = nn.Dropout(dropout)
        self.fc1 = nn.Linear(features + 1, hidden)
        self.drop2 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, 1)
        self.register_buffer("age_mean", torch.tensor(120.0))
        self.register_buffer("age_std", torch.tensor(60.0))

    def forward(self, feats: Tensor, sex: Tensor) -> Tensor:
        sex = sex.to(feats.dtype).reshape(-1, 1) if self.use_sex else feats.new_zeros(feats.shape[0], 1)
        z = torch.cat([self.drop1(feats), sex], dim=1)
        raw = self.fc2(self.drop2(F.relu(self.fc1(z)))).squeeze(1)
        return self.age_mean + self.age_std * raw


class ResidualAttentionNet(nn.Module):
    """Attention-92 layout with a width multiplier. image [B, 1, S, S] (any S ≥ 32), sex [B] → RegressorOutput.

    Channel widths (width=1): stem 64, stage outputs 256 / 512 / 1024 / 2048 as in Wang et al.
    `no_attention` names modules whose soft mask is removed (x' = T(x)), e.g. the Att3_2/Att3_3 ablation.
    `pre_post`, `trunk` (Wang et al.'s p and t) and `final_units` (RUs after the last down-sampling) set
    the depth: (1, 2, 3) is Attention-92; the CPU preset uses (0, 1, 1), which keeps all six attention
    modules and their soft masks but halves the number of residual units (~2× faster per step).
    """

    def __init__(self, width: float = 1.0, use_sex: bool = True, no_attention: tuple[str, ...] = (),
                 dropout: float = 0.2, pre_post: int = 1, trunk: int = 2, final_units: int = 3) -> None:
        super().__init__()
        unknown = set(no_attention) - set(ATTENTION_NAMES)
        if unknown:
            raise ValueError(f"unknown attention modules {sorted(unknown)}; known: {ATTENTION_NAMES}")
        c = max(round(64 * width), 8)
        self.stem = nn.Sequential(nn.Conv2d(1, c, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(c),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        self.ru1 = ResidualUnit(c, 4 * c)
        self.ru2 = ResidualUnit(4 * c, 8 * c, stride=2)
        self.ru3 = ResidualUnit(8 * c, 16 * c, stride=2)
        self.ru4 = nn.Sequential(ResidualUnit(16 * c, 32 * c, stride=2),
                                 *(ResidualUnit(32 * c, 32 * c) for _ in range(max(final_units, 1) - 1)))
        layout = {"Att1_1": (4 * c, 3), "Att2_1": (8 * c, 2), "Att2_2": (8 * c, 2),
                  "Att3_1": (16 * c, 1), "Att3_2": (16 * c, 1), "Att3_3": (16 * c, 1)}
        self.modules_by_name = nn.ModuleDict(
            {name: AttentionModule(ch, lv, attend=name not in no_attention, pre_post=pre_post, trunk=trunk)
             for name, (ch, lv) in layout.items()})
        self.final = nn.Sequential(nn.BatchNorm2d(32 * c), nn.ReLU(inplace=True))
        self.head = AgeHead(32 * c, use_sex, dropout=dropout)

    def trunk(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Everything before the head: GAP features [B, C] and the attention maps."""
        attention: dict[str, Tensor] = {}

        def run(name: str, h: Tensor) -> Tensor:
            h, logits = self.modules_by_name[name](h)
            if logits is not None:
                attention[name] = logits.mean(dim=1)
            return h

        h = run("Att1_1", self.ru1(self.stem(x)))
        h = run("Att2_2", run("Att2_1", self.ru2(h)))
        h = run("Att3_3", run("Att3_2", run("Att3_1", self.ru3(h))))
        return self.final(self.ru4(h)).mean(dim=(2, 3)), attention

    def embed(self, x: Tensor) -> Tensor:
        """GAP features [B, C]: the head's input (the only dropout is in the head, so MC dropout samples just it)."""
        return self.trunk(x)[0]

    def forward(self, x: Tensor, sex: Tensor) -> RegressorOutput:
        feats, attention = self.trunk(x)
        return RegressorOutput(self.head(feats, sex), attention, feats)
