"""Test-time views: the `both` reading is the six views' mean, its std pools their spread with MC dropout, and a
checkpoint reads with the method its calibration was fitted on."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.checkpoint import save_checkpoint
from ml.infer import Predictor
from ml.models import ModelConfig, build_model
from ml.train import TrainConfig
from ml.tta import VIEWS, augmented_views, spread
from ml.uncertainty_eval import pooled_spread

TINY = ModelConfig(width=0.125, seg_size=64, work_size=96, crop_size=64)


def checkpoint(tmp_path, train_config: dict) -> Predictor:
    torch.manual_seed(5)
    model = build_model(TINY)
    model.segmenter.net.roi_heads.score_thresh = 0.0
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, TINY, train_config=train_config, calibration={"scale": 1.0, "floor": 0.0})
    return Predictor(path, device="cpu")


def canvas(seed: int = 0) -> np.ndarray:
    """A hand-like image already at the work size, so the predictor's canvas is the image itself."""
    image = np.random.default_rng(seed).random((96, 96), dtype=np.float32) * 0.1
    image[20:90, 30:60] += 0.7
    return image


def test_every_view_keeps_the_canvas_shape_and_the_mirror_is_exact():
    images = torch.from_numpy(np.stack([canvas(0), canvas(1)]))[:, None]
    views = augmented_views(images)
    assert len(views) == len(VIEWS) - 1
    assert all(v.shape == images.shape for v in views)
    assert torch.equal(views[0], images.flip(-1))
    assert torch.allclose(views[1], images.clamp(0, 1) ** 0.8)
    zoomed_out = views[4]
    assert torch.equal(zoomed_out[..., 0, :], zoomed_out[..., 1, :])  # edge-padded, not black


def test_the_pooled_spread_is_the_law_of_total_variance_over_the_views_and_dropout():
    rng = np.random.default_rng(3)
    readings, mc = rng.normal(100, 10, (6, 7)), rng.uniform(1, 5, 7)
    pooled = spread(torch.tensor(readings[0]), torch.tensor(readings[1:]), torch.tensor(mc))
    expected = pooled_spread(readings[None], mc[None])
    assert np.allclose(pooled.age.numpy(), expected.mean) and np.allclose(pooled.raw_std.numpy(), expected.std)
    plain = spread(torch.tensor(readings[0]), None, torch.tensor(mc))
    assert np.allclose(plain.age.numpy(), readings[0]) and np.allclose(plain.raw_std.numpy(), mc)


def test_a_both_reading_is_the_mean_of_the_six_views_each_read_plainly(tmp_path):
    predictor = checkpoint(tmp_path, {"mc_samples": 4, "uncertainty": "both"})
    image = canvas()
    both = predictor.predict(image, True, with_attention=False, mc_samples=0)
    views = [image, *[v[0, 0].numpy() for v in augmented_views(torch.from_numpy(image)[None, None])]]
    plain = [predictor.predict(v, True, with_attention=False, mc_samples=0, uncertainty="mc").age_months for v in views]
    assert both.age_months == pytest.approx(float(np.mean(plain)), abs=1e-3)
    assert both.std_months == pytest.approx(float(np.std(plain)), abs=1e-3)  # no MC samples: the views' spread alone


def test_the_mask_and_attention_come_from_the_plain_view(tmp_path):
    predictor = checkpoint(tmp_path, {"mc_samples": 4, "uncertainty": "both"})
    both, mc = predictor.predict(canvas(), False), predictor.predict(canvas(), False, uncertainty="mc")
    assert np.array_equal(both.mask, mc.mask) and both.box == mc.box
    assert all(np.array_equal(both.attention[k], mc.attention[k]) for k in mc.attention)


def test_a_checkpoint_from_before_the_setting_reads_with_mc_dropout_as_its_calibration_was_fitted(tmp_path):
    predictor = checkpoint(tmp_path, {"mc_samples": 4})
    assert predictor.uncertainty == "mc"
    image = canvas()
    assert predictor.predict(image, True, with_attention=False).age_months == pytest.approx(
        predictor.predict(image, True, with_attention=False, uncertainty="mc").age_months)


def test_an_unknown_uncertainty_method_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown uncertainty method 'ensemble'; known: mc, both"):
        TrainConfig.from_dict({"uncertainty": "ensemble"})
    assert TrainConfig().uncertainty == "both"
