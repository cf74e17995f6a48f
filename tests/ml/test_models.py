"""The unified network's parts: attention maps, ablations, gradient paths, MC dropout, no downloads."""
from __future__ import annotations

import socket

import pytest
import torch

from ml.models import ATTENTION_NAMES, PRESETS, REGRESSORS, ModelConfig, build_model
from ml.models.attention import ResidualAttentionNet
from ml.uncertainty import mc_std

TINY = ModelConfig(width=0.125, seg_size=64, work_size=96, crop_size=64)


def hand_batch(b: int = 2, size: int = 96) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """A bright rectangle 'hand' on a dark background, with its Mask R-CNN target."""
    images = torch.rand(b, 1, size, size) * 0.1
    images[:, :, size // 4: size - 8, size // 3: 2 * size // 3] += 0.7
    mask = torch.zeros(1, size, size, dtype=torch.uint8)
    mask[:, size // 4: size - 8, size // 3: 2 * size // 3] = 1
    box = torch.tensor([[size // 3, size // 4, 2 * size // 3, size - 8]], dtype=torch.float32)
    return images, [{"boxes": box, "labels": torch.ones(1, dtype=torch.int64), "masks": mask} for _ in range(b)]


@pytest.mark.parametrize("size", [64, 97, 160])
def test_the_six_attention_maps_are_named_as_in_the_paper_at_any_input_size(size):
    net = ResidualAttentionNet(width=0.125).eval()
    out = net(torch.rand(2, 1, size, size), torch.tensor([1.0, -1.0]))
    assert tuple(out.attention) == ATTENTION_NAMES
    assert out.age.shape == (2,)
    s1 = out.attention["Att1_1"].shape[-1]
    assert out.attention["Att1_1"].shape == (2, s1, s1) and s1 == -(-size // 4)
    assert out.attention["Att2_1"].shape == out.attention["Att2_2"].shape == (2, -(-s1 // 2), -(-s1 // 2))
    assert out.attention["Att3_1"].shape == out.attention["Att3_3"].shape == (2, -(-s1 // 4), -(-s1 // 4))


def test_removing_attention_in_att3_2_and_att3_3_drops_their_maps_and_mask_branches():
    full = ResidualAttentionNet(width=0.125)
    ablated = ResidualAttentionNet(width=0.125, no_attention=("Att3_2", "Att3_3"))
    out = ablated.eval()(torch.rand(1, 1, 64, 64), torch.ones(1))
    assert set(out.attention) == set(ATTENTION_NAMES) - {"Att3_2", "Att3_3"}
    assert sum(p.numel() for p in ablated.parameters()) < sum(p.numel() for p in full.parameters())
    with pytest.raises(ValueError, match="unknown attention modules"):
        ResidualAttentionNet(no_attention=("Att9_9",))


def test_sex_changes_the_prediction_only_when_the_model_uses_it():
    x = torch.rand(1, 1, 64, 64)
    with_sex = ResidualAttentionNet(width=0.125).eval()
    with torch.no_grad():
        with_sex.head.fc1.weight[:, -1] = 1.0
        assert with_sex(x, torch.ones(1)).age != with_sex(x, -torch.ones(1)).age
    no_sex = ResidualAttentionNet(width=0.125, use_sex=False).eval()
    with torch.no_grad():
        assert no_sex(x, torch.ones(1)).age == no_sex(x, -torch.ones(1)).age


def test_the_unified_model_returns_mask_box_age_and_attention_for_a_batch():
    model = build_model(TINY).eval()
    images, _ = hand_batch()
    with torch.no_grad():
        out = model(images, torch.tensor([1.0, 0.0]))
    assert out.age.shape == (2,) and out.masks.shape == (2, 1, 96, 96) and out.boxes.shape == (2, 4)
    assert out.crops.shape == (2, 1, 64, 64) and tuple(out.attention) == ATTENTION_NAMES


def test_regression_loss_reaches_the_mask_head_through_predicted_masks_but_not_under_teacher_forcing():
    torch.manual_seed(0)
    model = build_model(TINY).train()
    model.segmenter.net.roi_heads.score_thresh = 0.0  # an untrained detector must still return a hand
    images, targets = hand_batch()
    mask_head = model.segmenter.net.roi_heads.mask_predictor.mask_fcn_logits.weight

    def grad_from_regression(teacher: bool) -> float:
        model.zero_grad()
        out = model(images, torch.ones(2), targets, torch.full((2,), teacher))
        out.age.sum().backward()
        return 0.0 if mask_head.grad is None else float(mask_head.grad.abs().sum())

    assert grad_from_regression(teacher=False) > 0
    assert grad_from_regression(teacher=True) == 0


def test_the_training_loss_has_the_paper_terms():
    model = build_model(TINY).train()
    images, targets = hand_batch()
    out = model(images, torch.ones(2), targets, torch.ones(2, dtype=torch.bool))
    assert set(out.losses) == {"loss_classifier", "loss_objectness", "loss_box_reg", "loss_rpn_box_reg", "loss_mask"}


def test_no_segmentation_ablation_feeds_the_whole_image():
    model = build_model(ModelConfig(width=0.125, segmenter=None, work_size=96, crop_size=96, standardize=False)).eval()
    images, _ = hand_batch(1)
    with torch.no_grad():
        out = model(images, torch.ones(1))
    assert torch.allclose(out.crops, images, atol=1e-5)


def test_crops_are_standardised_over_the_hand_and_the_background_stays_zero():
    model = build_model(TINY).eval()
    images, _ = hand_batch(2)
    with torch.no_grad():
        out = model(images * 0.5 + 0.2, torch.ones(2))  # exposure/window changes must not change the input scale
    for crop in out.crops:
        fg = crop != 0
        assert abs(float(crop[fg].mean())) < 1e-3 and abs(float(crop[fg].std(unbiased=False)) - 1) < 1e-2


def test_mc_dropout_varies_predictions_and_leaves_batchnorm_statistics_untouched():
    net = ResidualAttentionNet(width=0.125, dropout=0.5).eval()
    bn_before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}
    std = mc_std(net, torch.rand(2, 1, 64, 64), torch.ones(2), samples=8)
    assert std.shape == (2,) and bool((std > 0).all())
    for k, v in net.state_dict().items():
        if k in bn_before:
            assert torch.equal(v, bn_before[k]), k
    assert not any(m.training for m in net.modules())


def test_mc_dropout_through_the_head_alone_matches_full_forward_passes():
    """The trunk has no dropout, so sampling only the head must give the same spread as whole forward passes."""
    torch.manual_seed(0)
    net = ResidualAttentionNet(width=0.125, dropout=0.5).eval()
    crops, sex = torch.rand(3, 1, 64, 64), torch.tensor([1.0, -1.0, 0.0])

    class Opaque(torch.nn.Module):  # no embed(): mc_std falls back to repeated full forward passes
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x, s):
            return self.net(x, s)

    fast, full = mc_std(net, crops, sex, samples=400), mc_std(Opaque(), crops, sex, samples=400)
    assert torch.allclose(fast, full, rtol=0.15), (fast, full)


def test_building_every_architecture_needs_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for config in [*PRESETS.values(), ModelConfig(regressor="vgg16", segmenter="resnet18_fpn")]:
        assert config.regressor in REGRESSORS
        build_model(config)
