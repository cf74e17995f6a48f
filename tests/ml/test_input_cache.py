"""The network's inputs through a disk cache every process shares (issue 30): the same film and mask as decoding in
memory, one file a film written once, nothing held in the process, and a training run whose first step waits for no
up-front decoding of the whole set."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ml.data import HandDataset, collate, input_cache_dir, read_folder
from ml.models import ModelConfig
from ml.phantoms import generate_cohort
from ml.train import TRAIN_PRESETS, TrainConfig, train

TINY = ModelConfig(width=0.125, seg_size=96, work_size=96, crop_size=64, dropout=0.0)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    out = tmp_path_factory.mktemp("films")
    generate_cohort(out, 8, seed=21, size=160, distractors="none", progress=False)
    return read_folder(out)


def test_the_disk_cache_gives_the_films_and_masks_that_decoding_in_memory_gives(samples, tmp_path):
    in_memory = HandDataset(samples, 96, augment=False)
    on_disk = HandDataset(samples, 96, augment=False, disk_cache=tmp_path)
    for i in range(len(samples)):
        a, b = in_memory[i], on_disk[i]
        assert torch.allclose(a["image"], b["image"], atol=1 / 65535) and torch.equal(a["mask"], b["mask"])
    assert len(list(tmp_path.glob("*.npy"))) == len(samples) and not on_disk._cache  # nothing kept in the process


def test_workers_read_what_one_process_wrote_without_writing_again(samples, tmp_path):
    first = HandDataset(samples, 96, augment=False, disk_cache=tmp_path)
    expected = collate([first[i] for i in range(len(samples))])["image"]
    written = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.npy")}
    loader = DataLoader(HandDataset(samples, 96, augment=False, disk_cache=tmp_path), batch_size=len(samples),
                        collate_fn=collate, num_workers=2)
    assert torch.equal(torch.cat([b["image"] for b in loader]), expected)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.npy")} == written


def test_a_cache_file_cut_short_is_made_again(samples, tmp_path):
    dataset = HandDataset(samples[:1], 96, augment=False, disk_cache=tmp_path)
    good = dataset[0]["image"]
    (cached,) = tmp_path.glob("*.npy")
    cached.write_bytes(cached.read_bytes()[:100])
    assert torch.equal(dataset[0]["image"], good)
    assert np.load(cached).shape == (2, 96, 96)


def test_a_run_with_the_input_cache_starts_without_decoding_the_set_first(samples, tmp_path, monkeypatch):
    monkeypatch.setenv("BONEAGE_CACHE_DIR", str(tmp_path / "cache"))
    config = TrainConfig(model=TINY, epochs=1, batch_size=4, teacher_epochs=0, teacher_decay_epochs=0, mc_samples=0,
                         input_cache=True, num_workers=2)
    result = train(samples, config, tmp_path / "m.pt")
    assert result.checkpoint is not None and result.metrics["load_seconds"] < 0.5
    assert len(list(input_cache_dir().glob("*.npy"))) == len(samples)  # each film decoded once, by whoever read it
    assert TRAIN_PRESETS["paper"].input_cache  # the preset for RSNA-sized sets reads through it
