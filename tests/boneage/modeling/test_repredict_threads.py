"""A worker predicts on its share of the cores (conf.inference_threads) and gives torch's setting back afterwards,
so a training task that runs next in the same process keeps its own."""
from __future__ import annotations

import torch
from boneage.modeling.actions import on_inference_threads


def test_the_network_runs_on_the_configured_threads_and_the_setting_comes_back(settings):
    settings.INFERENCE_THREADS = 1
    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with on_inference_threads():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(original)


def test_the_setting_comes_back_when_the_prediction_fails(settings):
    settings.INFERENCE_THREADS = 1
    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        try:
            with on_inference_threads():
                raise RuntimeError("a batch failed")
        except RuntimeError:
            pass
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(original)
