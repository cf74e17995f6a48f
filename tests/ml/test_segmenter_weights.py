"""A segmenter's local weight file loads strictly (issue 30): the whole segmenter's state, or a bare ResNet's for its
backbone; anything else is refused with the keys that do not fit named, and nothing is half-loaded."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torchvision.models import resnet18

from ml.models import PRESETS, build_model
from ml.models.segmentation import Segmenter, WeightsMismatch, load_local_weights


def saved(tmp_path, state, name="weights.pt"):
    path = tmp_path / name
    torch.save(state, path)
    return str(path)


def test_a_whole_segmenters_weights_load_into_another_one_exactly(tmp_path):
    torch.manual_seed(0)
    source = Segmenter("tiny_fpn", 96)
    path = saved(tmp_path, source.net.state_dict())
    model = build_model(replace(PRESETS["light"], seg_weights=path))
    for key, value in source.net.state_dict().items():
        assert torch.equal(model.segmenter.net.state_dict()[key], value)


def test_weights_of_another_segmenter_are_refused_with_the_keys_named(tmp_path):
    other = Segmenter("resnet18_fpn", 96).net.state_dict()
    target = Segmenter("tiny_fpn", 96)
    before = {k: v.clone() for k, v in target.net.state_dict().items()}
    with pytest.raises(WeightsMismatch, match=r"does not fit this segmenter: missing \(\d+\): backbone\.body\."):
        load_local_weights(target.net, saved(tmp_path, other))
    assert all(torch.equal(before[k], v) for k, v in target.net.state_dict().items())  # nothing half-loaded


def test_a_key_of_another_shape_is_named_with_both_shapes(tmp_path):
    target = Segmenter("tiny_fpn", 96)
    state = dict(target.net.state_dict())
    key = next(k for k, v in state.items() if v.ndim == 4)
    state[key] = torch.zeros(3, 3, 3, 3)
    with pytest.raises(WeightsMismatch, match=rf"of another shape \(1\): {key} \(3, 3, 3, 3\) in the file"):
        load_local_weights(target.net, saved(tmp_path, state))


def test_a_resnet_classifiers_weights_start_the_backbone_and_its_fc_is_left_out(tmp_path):
    resnet = resnet18(weights=None)
    resnet.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)  # the segmenter reads one grey channel
    target = Segmenter("resnet18_fpn", 96)
    assert load_local_weights(target.net, saved(tmp_path, {"state_dict": resnet.state_dict()})) == "backbone"
    body = target.net.backbone.body.state_dict()
    assert torch.equal(body["layer4.1.conv2.weight"], resnet.state_dict()["layer4.1.conv2.weight"])
    # an RGB ResNet's first layer does not fit a one-channel segmenter: said, not silently skipped
    with pytest.raises(WeightsMismatch, match=r"conv1\.weight \(64, 3, 7, 7\) in the file, \(64, 1, 7, 7\) here"):
        load_local_weights(Segmenter("resnet18_fpn", 96).net, saved(tmp_path, resnet18(weights=None).state_dict()))


def test_a_file_that_is_not_a_state_dict_is_refused_in_words(tmp_path):
    with pytest.raises(WeightsMismatch, match="not a state_dict"):
        load_local_weights(Segmenter("tiny_fpn", 96).net, saved(tmp_path, [1, 2, 3]))
