"""Hand segmentation subnet: torchvision Mask R-CNN, 2 classes (background, hand), backbone by name.

Nothing is downloaded: every constructor gets `weights=None, weights_backbone=None` (or builds its
backbone from scratch). Backbones are registered in `SEGMENTERS`:

- `tiny_fpn`    — a 4-stage plain conv body (16→128 ch) with a 64-channel FPN and slim RoI heads;
                  trains on a 2-core CPU in minutes at 96–128 px (the light preset).
- `resnet18_fpn` — torchvision ResNet-18 body, 128-ch FPN, slim heads.
- `resnet50_fpn` — torchvision `maskrcnn_resnet50_fpn` (paper scale).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchvision.models import resnet18
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

SEGMENTERS: dict[str, Callable[[int], MaskRCNN]] = {}


def register_segmenter(name: str) -> Callable[[Callable[[int], MaskRCNN]], Callable[[int], MaskRCNN]]:
    def wrap(fn: Callable[[int], MaskRCNN]) -> Callable[[int], MaskRCNN]:
        SEGMENTERS[name] = fn
        return fn
    return wrap


def _slim_maskrcnn(backbone: nn.Module, size: int, fpn_ch: int, rep: int) -> MaskRCNN:
    names = ["0", "1", "2", "3"]
    anchors = AnchorGenerator(sizes=((16,), (32,), (64,), (128,), (256,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    return MaskRCNN(
        backbone, num_classes=None, min_size=size, max_size=size, image_mean=[0.5], image_std=[0.25],
        rpn_anchor_generator=anchors, rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=50,
        rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=20, rpn_batch_size_per_image=64,
        box_roi_pool=MultiScaleRoIAlign(names, 7, 2), box_head=TwoMLPHead(fpn_ch * 49, rep),
        box_predictor=FastRCNNPredictor(rep, 2), box_batch_size_per_image=16, box_detections_per_img=1,
        mask_roi_pool=MultiScaleRoIAlign(names, 14, 2), mask_head=MaskRCNNHeads(fpn_ch, [fpn_ch, fpn_ch], 1),
        mask_predictor=MaskRCNNPredictor(fpn_ch, fpn_ch, 2),
    )


class _TinyBody(nn.Module):
    """[B, 1, H, W] → layer1..layer4 at strides 4, 8, 16, 32 with 16, 32, 64, 128 channels."""

    def __init__(self) -> None:
        super().__init__()

        def block(i: int, o: int, s: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                                 nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))
        self.stem = block(1, 16, 2)
        self.layer1 = block(16, 16, 2)
        self.layer2 = block(16, 32, 2)
        self.layer3 = block(32, 64, 2)
        self.layer4 = block(64, 128, 2)

    def forward(self, x: Tensor) -> Tensor:  # unused: BackboneWithFPN walks the children
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))


_RETURN = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}


@register_segmenter("tiny_fpn")
def tiny_fpn(size: int) -> MaskRCNN:
    backbone = BackboneWithFPN(_TinyBody(), _RETURN, [16, 32, 64, 128], out_channels=64)
    return _slim_maskrcnn(backbone, size, 64, 128)


@register_segmenter("resnet18_fpn")
def resnet18_fpn(size: int) -> MaskRCNN:
    body = resnet18(weights=None)
    body.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    backbone = BackboneWithFPN(body, _RETURN, [64, 128, 256, 512], out_channels=128)
    return _slim_maskrcnn(backbone, size, 128, 256)


@register_segmenter("resnet50_fpn")
def resnet50_fpn(size: int) -> MaskRCNN:
    return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2, min_size=size,
                                 max_size=size, image_mean=[0.5] * 3, image_std=[0.25] * 3,
                                 box_detections_per_img=3)


@dataclass
class Detection:
    """Best hand per image, in input-image pixel coordinates."""
    masks: Tensor   # [B, 1, H, W] soft mask probabilities (differentiable w.r.t. the mask head)
    boxes: Tensor   # [B, 4] x0, y0, x1, y1 (detached)
    scores: Tensor  # [B], 0 where nothing was detected (mask = 1 everywhere, box = whole image)


class Segmenter(nn.Module):
    """Wraps a torchvision MaskRCNN so one pass gives both its training losses and differentiable detections.

    images [B, 1, H, W] in [0, 1] → (losses dict, Detection). torchvision's RoI heads return either
    losses (train) or detections (eval); in training we run the eval path of the RoI heads a second
    time on the same features so the regression loss can reach the mask head and backbone through
    the soft mask.
    """

    def __init__(self, name: str, size: int) -> None:
        super().__init__()
        if name not in SEGMENTERS:
            raise ValueError(f"unknown segmentation backbone {name!r}; known: {sorted(SEGMENTERS)}")
        self.net = SEGMENTERS[name](size)
        self.in_channels = 3 if name == "resnet50_fpn" else 1

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None,
                detect: bool = True) -> tuple[dict[str, Tensor], Detection | None]:
        net = self.net
        size = (int(images.shape[-2]), int(images.shape[-1]))
        batch = [img.expand(self.in_channels, -1, -1) for img in images]
        if self.training and targets is None:
            raise ValueError("training the segmenter needs targets (boxes, labels, masks)")
        image_list, tgt = net.transform(batch, targets if self.training else None)
        features = net.backbone(image_list.tensors)
        proposals, losses = net.rpn(image_list, features, tgt)
        losses = dict(losses)
        if self.training:
            _, det_losses = net.roi_heads(features, proposals, image_list.image_sizes, tgt)
            losses.update(det_losses)
        if not detect:
            return losses, None
        heads_mode, transform_mode = net.roi_heads.training, net.transform.training
        net.roi_heads.training = net.transform.training = False
        try:
            dets, _ = net.roi_heads(features, [p.detach() for p in proposals], image_list.image_sizes)
            dets = net.transform.postprocess(dets, image_list.image_sizes, [size] * len(batch))
        finally:
            net.roi_heads.training, net.transform.training = heads_mode, transform_mode
        return losses, best_detection(dets, images)


def best_detection(dets: list[dict[str, Tensor]], images: Tensor) -> Detection:
    """Highest-scoring instance per image; no instance → mask of ones, whole-image box, score 0."""
    h, w = images.shape[-2:]
    masks, boxes, scores = [], [], []
    for det in dets:
        if len(det["scores"]):
            masks.append(det["masks"][0])
            boxes.append(det["boxes"][0].detach())
            scores.append(det["scores"][0].detach())
        else:
            masks.append(images.new_ones(1, h, w))
            boxes.append(images.new_tensor([0.0, 0.0, w, h]))
            scores.append(images.new_zeros(()))
    return Detection(torch.stack(masks), torch.stack(boxes), torch.stack(scores))


class WeightsMismatch(ValueError):
    """A local weight file that does not fit the module it was given for; the message names the keys."""


def _mismatch(module: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k} {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} here"
                    for k in set(own) & set(state) if tuple(state[k].shape) != tuple(own[k].shape))

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
    return [f"{name} ({len(keys)}): {some(keys)}" for name, keys in
            (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)) if keys]


def load_local_weights(module: nn.Module, path: str) -> str:
    """A local weight file (a state_dict saved with torch.save; never a download) into the segmenter, strictly: either
    the whole segmenter's state, or a bare ResNet's (an ImageNet classifier: conv1, layer1–4, fc) for its backbone
    alone, the classifier's fc left out. Anything else raises WeightsMismatch naming the keys that do not fit (a
    silent partial load trained from random weights while the user believed otherwise). Returns what was loaded."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsMismatch(f"{path}: not a state_dict (a mapping of parameter names to tensors)")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel/DDP
    body = getattr(getattr(module, "backbone", None), "body", None)
    if "conv1.weight" in state and "layer1.0.conv1.weight" in state and isinstance(body, nn.Module):
        bare = {k: v for k, v in state.items() if not k.startswith("fc.")}
        problems = _mismatch(body, bare)
        if problems:
            raise WeightsMismatch(f"{path} looks like a ResNet's weights but does not fit this segmenter's backbone: "
                                  + "; ".join(problems))
        body.load_state_dict(OrderedDict(bare))
        return "backbone"
    problems = _mismatch(module, state)
    if problems:
        raise WeightsMismatch(f"{path} does not fit this segmenter: " + "; ".join(problems))
    module.load_state_dict(OrderedDict(state))
    return "segmenter"
