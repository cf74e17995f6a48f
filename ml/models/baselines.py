"""VGG-16 regression baseline (torchvision architecture, random init) with the same sex-concat head."""
from __future__ import annotations

from torch import Tensor, nn
from torchvision.models import vgg16_bn

from ml.models.attention import AgeHead, RegressorOutput


class VGG16Regressor(nn.Module):
    """image [B, 1, S, S] (S ≥ 32), sex [B] → RegressorOutput (no attention maps).

    torchvision `vgg16_bn(weights=None)` convolutional features (BN variant: plain VGG-16 does not
    train from scratch with SGD at lr 0.01); grey input is repeated to 3 channels. The two 4096-wide FC
    layers are replaced by global average pooling + `AgeHead` (they would add ~120M parameters).
    """

    def __init__(self, width: float = 1.0, use_sex: bool = True, no_attention: tuple[str, ...] = (),
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.features = vgg16_bn(weights=None).features
        self.head = AgeHead(512, use_sex, dropout=dropout)

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x.expand(-1, 3, -1, -1)).mean(dim=(2, 3))

    def forward(self, x: Tensor, sex: Tensor) -> RegressorOutput:
        feats = self.embed(x)
        return RegressorOutput(self.head(feats, sex), {}, feats)
