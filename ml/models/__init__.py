"""Networks: segmentation subnet, residual attention regressor, the unified model, baselines.

`build_model(ModelConfig)` is the one entry point; regressors are looked up in `REGRESSORS`
(a small timm-style registry) and segmentation backbones in `SEGMENTERS`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from torch import nn

from ml.models.attention import ATTENTION_NAMES, ResidualAttentionNet
from ml.models.baselines import VGG16Regressor
from ml.models.segmentation import SEGMENTERS, Segmenter, load_local_weights
from ml.models.unified import UnifiedNet, UnifiedOutput, paste_to_image

REGRESSORS: dict[str, type[ResidualAttentionNet | VGG16Regressor]] = {
    "attention92": ResidualAttentionNet,
    "vgg16": VGG16Regressor,
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the architecture (stored in every checkpoint). Defaults = the light preset."""
    regressor: str = "attention92"
    width: float = 0.125             # channel multiplier of the attention net (1.0 = Attention-92)
    segmenter: str | None = "tiny_fpn"   # None = the "no segmentation subnet" ablation
    seg_size: int = 96               # Mask R-CNN input side
    work_size: int = 256             # images are padded square and resized to this before the model
    crop_size: int = 128             # S: side of the masked crop fed to the regressor (cut from the work_size image)
    use_sex: bool = True
    no_attention: tuple[str, ...] = ()
    dropout: float = 0.2
    att_pre_post: int = 0            # Wang et al.'s p: residual units before/after each attention module (92: 1)
    att_trunk: int = 1               # Wang et al.'s t: residual units in each trunk branch (92: 2)
    final_units: int = 1             # residual units in the last stage (Attention-92: 3)
    standardize: bool = True         # per-crop intensity standardisation over the hand (False: raw [0, 1])
    seg_weights: str | None = None   # optional local state_dict for the segmenter (never downloaded)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}")
        data = dict(data)
        if "no_attention" in data:
            data["no_attention"] = tuple(data["no_attention"])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["no_attention"] = list(self.no_attention)
        return out


PRESETS: dict[str, ModelConfig] = {
    # CPU preset: Attention-92's six attention modules with p=0, t=1 and one final unit (~2× fewer residual
    # units), width 1/8, 96-px segmenter, 256-px canvas, 128-px crops (the hand is ~140 px on the canvas, so the crop
    # keeps its detail; a 160-px canvas with 96-px crops read 2× worse, docs/benchmarks.md).
    "light": ModelConfig(),
    # Starter (`make run`, ~120 labelled images, minutes on 2 CPU cores): the light architecture at a 96-px
    # canvas with 64-px crops and no dropout (too few images/steps for dropout to pay).
    "starter": ModelConfig(work_size=96, crop_size=64, dropout=0.0),
    # The default recipe (ml.recipe, `ml.train --data DIR --out CKPT`): a 512-px canvas keeps a half-resolution real
    # film's hand at ~400 px, cut to 224-px crops (bone age lives in the epiphyses and carpals); a 128-px segmenter.
    "real": ModelConfig(seg_size=128, work_size=512, crop_size=224),
    "paper": ModelConfig(width=1.0, segmenter="resnet50_fpn", seg_size=512, work_size=512, crop_size=512,
                         att_pre_post=1, att_trunk=2, final_units=3),
}


def build_model(config: ModelConfig) -> UnifiedNet:
    if config.regressor not in REGRESSORS:
        raise ValueError(f"unknown regressor {config.regressor!r}; known: {sorted(REGRESSORS)}")
    depth = ({"pre_post": config.att_pre_post, "trunk": config.att_trunk, "final_units": config.final_units}
             if config.regressor == "attention92" else {})
    regressor = REGRESSORS[config.regressor](width=config.width, use_sex=config.use_sex,
                                             no_attention=config.no_attention, dropout=config.dropout, **depth)
    segmenter = Segmenter(config.segmenter, config.seg_size) if config.segmenter else None
    if segmenter is not None and config.seg_weights:
        load_local_weights(segmenter.net, config.seg_weights)
    return UnifiedNet(segmenter, regressor, config.crop_size, standardize=config.standardize)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "ATTENTION_NAMES",
    "PRESETS",
    "REGRESSORS",
    "SEGMENTERS",
    "ModelConfig",
    "UnifiedNet",
    "UnifiedOutput",
    "build_model",
    "count_parameters",
    "paste_to_image",
]
