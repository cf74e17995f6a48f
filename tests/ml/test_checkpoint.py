"""Checkpoints: one atomic file, sha256, identical predictions after a round trip, clear errors."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from ml.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ml.infer import Predictor
from ml.models import ModelConfig, build_model

TINY = ModelConfig(width=0.125, seg_size=64, work_size=96, crop_size=64)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(1)
    model = build_model(TINY)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    sha = save_checkpoint(path, model, TINY, train_config={"mc_samples": 4}, metrics={"val_mae": 9.5},
                          calibration={"scale": 2.0, "floor": 1.0}, fingerprint="abc")
    return model.eval(), path, sha


def test_the_checkpoint_is_one_file_with_its_sha256_and_no_temp_files_left(saved):
    _, path, sha = saved
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]


def test_the_checkpoint_keeps_config_metrics_fingerprint_and_code_version(saved):
    ckpt = load_checkpoint(saved[1])
    assert ckpt.model_config == TINY and ckpt.metrics["val_mae"] == 9.5
    assert ckpt.fingerprint == "abc" and len(ckpt.code_version) == 12 and ckpt.calibration["scale"] == 2.0


def test_a_round_trip_gives_identical_predictions(saved):
    model, path, _ = saved
    image = np.random.default_rng(0).random((120, 90), dtype=np.float32)
    first, second = Predictor(path, device="cpu"), Predictor(path, device="cpu")
    a, b = first.predict(image, True), second.predict(image, True)
    assert a.age_months == b.age_months and a.std_months == b.std_months
    assert np.array_equal(a.mask, b.mask)
    for name in a.attention:
        assert np.array_equal(a.attention[name], b.attention[name])
    x = torch.from_numpy(np.pad(image, ((0, 0), (0, 30))))[None, None]
    with torch.no_grad():
        direct = model(torch.nn.functional.interpolate(x, size=(96, 96), mode="bilinear", antialias=True),
                       torch.ones(1)).age
    assert abs(float(direct) - a.age_months) < 1e-3


def test_a_truncated_checkpoint_gives_a_clear_error(saved, tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(saved[1].read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="broken.pt: not a readable checkpoint"):
        load_checkpoint(broken)


def test_random_bytes_and_missing_files_give_clear_errors(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "absent.pt")


def test_a_foreign_file_and_mismatched_weights_are_incompatible(saved, tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="incompatible checkpoint format"):
        load_checkpoint(foreign)
    payload = torch.load(saved[1], weights_only=True)
    payload["model_config"]["width"] = 0.25
    other = tmp_path / "other.pt"
    torch.save(payload, other)
    with pytest.raises(CheckpointError, match="weights do not match architecture"):
        load_checkpoint(other).build()
    payload["model_config"]["colour"] = "blue"
    torch.save(payload, other)
    with pytest.raises(CheckpointError, match="incompatible model config"):
        load_checkpoint(other)
