"""Pre-activation bottleneck residual unit (He et al. 2016), the building block of Attention-92."""
from __future__ import annotations

from torch import Tensor, nn


class ResidualUnit(nn.Module):
    """BN-ReLU-conv1x1 → BN-ReLU-conv3x3(stride) → BN-ReLU-conv1x1, plus a (projected) shortcut.

    x: [B, in_ch, H, W] → [B, out_ch, ceil(H/stride), ceil(W/stride)]. Bottleneck width is out_ch/4.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        mid = max(out_ch // 4, 4)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_ch, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module | None = None
        if in_ch != out_ch or stride != 1:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        skip = x if self.shortcut is None else self.shortcut(pre)
        return out + skip
