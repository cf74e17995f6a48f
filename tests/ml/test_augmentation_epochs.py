"""The augmentation differs from epoch to epoch and repeats for a seed, whether the DataLoader reads in the main process
or in persistent workers (issue 30: the epoch set in the main process never reached persistent workers, so every
epoch drew the same augmentation)."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from ml.data import HandDataset, collate, read_folder
from ml.phantoms import generate_cohort


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms")
    generate_cohort(out, 6, seed=5, size=96, distractors="none", progress=False)
    return read_folder(out)


def images_by_epoch(samples, workers: int, epochs: int = 2, seed: int = 0) -> list[torch.Tensor]:
    dataset = HandDataset(samples, 64, augment=True, seed=seed)
    for i in range(len(dataset)):  # decoded up front as ml.train does, so every epoch reads the same cached pixels
        dataset[i]
    loader = DataLoader(dataset, batch_size=len(samples), shuffle=False, collate_fn=collate, num_workers=workers,
                        persistent_workers=workers > 0)
    out = []
    for epoch in range(epochs):
        dataset.epoch = epoch  # what ml.train and ml.recipe do before each epoch
        out.append(torch.cat([batch["image"] for batch in loader]))
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_two_epochs_draw_different_augmentations(samples, workers):
    first, second = images_by_epoch(samples, workers)
    assert not torch.equal(first, second)


def test_one_seed_gives_the_same_augmentations_in_the_main_process_and_in_persistent_workers(samples):
    in_main = images_by_epoch(samples, 0)
    in_workers = images_by_epoch(samples, 2)
    for a, b in zip(in_main, in_workers):
        assert torch.equal(a, b)
    assert not torch.equal(images_by_epoch(samples, 0, seed=1)[1], in_main[1])  # another seed, another draw
