"""ML benchmarks (`make bench`): inference latency, training throughput and data wait, params and FLOPs.

Runs unchanged on CUDA (device = cuda when present). Prints one JSON line per measurement and
writes test-artifacts/ml-bench.json. Untrained weights with the detector's score threshold at 0,
so every image takes the full path (detection, mask paste, crop, regressor, 6 attention maps).
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ml.checkpoint import save_checkpoint
from ml.data import read_folder
from ml.infer import Predictor
from ml.models import PRESETS, build_model, count_parameters
from ml.train import TRAIN_PRESETS, train
from tests.bench.results import BenchResults

pytestmark = pytest.mark.bench
if "ML_BENCH_THREADS" in os.environ:  # e.g. 1 on a shared CPU box, where 2 threads stall in OpenMP barriers
    torch.set_num_threads(int(os.environ["ML_BENCH_THREADS"]))
record = BenchResults("test-artifacts/ml-bench.json",
                      lambda: {"device": str(_device()), "threads": torch.get_num_threads()}).record


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _predictor(tmp_path: Path, preset: str) -> Predictor:
    model = build_model(PRESETS[preset])
    if model.segmenter is not None:
        model.segmenter.net.roi_heads.score_thresh = 0.0
    path = tmp_path / f"{preset}.pt"
    save_checkpoint(path, model, PRESETS[preset], train_config={"mc_samples": 8}, calibration={"scale": 1.0})
    predictor = Predictor(path)
    if predictor.model.segmenter is not None:
        predictor.model.segmenter.net.roi_heads.score_thresh = 0.0
    return predictor


@pytest.mark.parametrize("preset", ["light", "paper"])
def test_parameters_and_flops_per_image(preset):
    model = build_model(PRESETS[preset]).eval()
    if model.segmenter is not None:
        model.segmenter.net.roi_heads.score_thresh = 0.0
    size = PRESETS[preset].work_size
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 1, size, size), torch.ones(1))
    seg = count_parameters(model.segmenter) if model.segmenter is not None else 0
    record(f"{preset}_model", {"params_total": count_parameters(model), "params_segmenter": seg,
                               "params_regressor": count_parameters(model.regressor),
                               "gflops_per_image": counter.get_total_flops() / 1e9,  # multiply-add = 2 FLOPs
                               "input_px": size})


@pytest.mark.parametrize("size", [256, 512])
def test_single_image_latency_light(tmp_path, size):
    predictor = _predictor(tmp_path, "light")
    image = np.random.default_rng(0).random((size, int(size * 0.8)), dtype=np.float32)
    for with_attention in (True, False):
        for _ in range(3):
            predictor.predict(image, True, with_attention=with_attention)
        ms = []
        for _ in range(30):
            t = time.perf_counter()
            predictor.predict(image, True, with_attention=with_attention)
            ms.append((time.perf_counter() - t) * 1e3)
        record(f"latency_light_{size}px_{'with' if with_attention else 'without'}_attention_ms",
               {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "n": len(ms)})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="paper-scale latency is measured on CUDA only")
def test_single_image_latency_paper_on_cuda(tmp_path):
    predictor = _predictor(tmp_path, "paper")
    image = np.random.default_rng(0).random((512, 410), dtype=np.float32)
    ms = []
    for i in range(33):
        t = time.perf_counter()
        predictor.predict(image, True)
        torch.cuda.synchronize()
        if i >= 3:
            ms.append((time.perf_counter() - t) * 1e3)
    record("latency_paper_512px_with_attention_ms", {"p50": float(np.percentile(ms, 50)),
                                                     "p95": float(np.percentile(ms, 95)), "n": len(ms)})


def test_training_throughput_and_data_wait(tmp_path):
    from ml.phantoms import generate_cohort

    generate_cohort(tmp_path / "ph", 96, seed=5, size=256, distractors="random", progress=False)
    preset = "paper" if torch.cuda.is_available() else "light"
    config = replace(TRAIN_PRESETS[preset], epochs=2, teacher_epochs=1, teacher_decay_epochs=1, precise_bn_batches=0,
                     mc_samples=2)
    result = train(read_folder(tmp_path / "ph"), config, tmp_path / "m.pt")
    m = result.metrics
    record(f"train_{preset}", {"images_per_s": m["train_images_per_s"], "data_wait_fraction": m["data_wait_fraction"],
                               "load_seconds": m["load_seconds"], "n_train": m["n_train"], "epochs": m["epochs"],
                               "batch_size": config.batch_size, "num_workers": config.num_workers})


def test_the_recipes_regressor_step_in_channels_last_against_the_usual_layout():
    """The default recipe's regressor step (32 crops of the real preset) in both memory layouts, alternated three times
    in one process, CPU seconds a step (process time: what the step costs, whatever else the box runs). Baseline: the
    usual layout; the recipe trains channels-last (ml.crops.CropTrainConfig)."""
    torch.manual_seed(0)
    config = PRESETS["real"]
    reg = build_model(config).regressor
    opt = torch.optim.AdamW(reg.parameters(), lr=1e-3)
    crops, sex, ages = torch.rand(32, 1, config.crop_size, config.crop_size), torch.ones(32), torch.rand(32) * 200

    def steps(layout: torch.memory_format, n: int = 4) -> float:
        reg.to(memory_format=layout)
        batch = crops.contiguous(memory_format=layout)

        def one() -> None:
            loss = (reg(batch, sex).age.float() - ages).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        one()  # the layout's first step pays for its weight conversion and oneDNN's kernel choice
        t = time.process_time()
        for _ in range(n):
            one()
        return (time.process_time() - t) / n

    usual, last = [], []
    for _ in range(3):
        usual.append(steps(torch.contiguous_format))
        last.append(steps(torch.channels_last))
    ratio = float(np.median(last) / np.median(usual))
    record("regressor_step_layout", {"usual_cpu_s": round(float(np.median(usual)), 3),
                                     "channels_last_cpu_s": round(float(np.median(last)), 3), "ratio": round(ratio, 3)})
    print(f"\nregressor step, CPU s: usual {np.median(usual):.3f}, channels-last {np.median(last):.3f} "
          f"(ratio {ratio:.2f})")
    assert ratio < 1.0
