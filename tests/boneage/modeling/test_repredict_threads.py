"""A re-prediction runs the network on the configured threads (conf.repredict_threads) and gives torch's setting back
afterwards, so a training task that runs next in the same process keeps its own."""
from __future__ import annotations

import torch
from boneage.modeling import conf
from boneage.modeling.actions import on_threads


def test_the_network_runs_on_the_configured_threads_and_the_setting_comes_back(settings):
    settings.REPREDICT_THREADS = 1
    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with on_threads(conf.repredict_threads()):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(original)


def test_the_setting_comes_back_when_the_prediction_fails():
    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        try:
            with on_threads(1):
                raise RuntimeError("a batch failed")
        except RuntimeError:
            pass
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(original)


def test_overlap_is_on_by_default_only_where_an_accelerator_runs_the_network(settings):
    settings.REPREDICT_OVERLAP = "auto"
    assert conf.repredict_overlaps("cuda") and not conf.repredict_overlaps("cpu")
    settings.REPREDICT_OVERLAP = "on"
    assert conf.repredict_overlaps("cpu")
    settings.REPREDICT_OVERLAP = "off"
    assert not conf.repredict_overlaps("cuda")
