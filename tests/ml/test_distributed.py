"""Distributed training: torchrun with two CPU processes (gloo) trains one model, rank 0 writes it, it predicts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.checkpoint import load_checkpoint
from ml.infer import Predictor
from ml.phantoms import generate_cohort

ROOT = Path(__file__).resolve().parents[2]
TINY = {"width": 0.125, "seg_size": 96, "work_size": 96, "crop_size": 64, "dropout": 0.0}


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms")
    generate_cohort(out, 20, seed=3, size=128, distractors="random", progress=False)
    return out


def test_two_cpu_processes_train_one_model_that_rank_0_writes_and_that_predicts(phantoms, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": TINY, "epochs": 2, "batch_size": 4, "threads": 1, "mc_samples": 0,
                                  "teacher_epochs": 1, "teacher_decay_epochs": 0, "final_bn_batches": 2}))
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",  # = torchrun
         "-m", "ml.train", "--data", str(phantoms), "--out", str(out), "--config", str(config), "--preset", "light",
         "--quiet"],
        check=False, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [line for line in done.stdout.splitlines() if line.startswith("trained ")]
    assert len(summaries) == 1 and "world size 2" in summaries[0], done.stdout  # rank 0 alone reports
    checkpoint = load_checkpoint(out)
    assert checkpoint.metrics["world_size"] == 2
    images = [np.asarray(Image.open(path)) for path in sorted((phantoms / "images").glob("*.png"))[:2]]
    predictions = Predictor(out).predict_batch(images, [True, False])
    assert all(np.isfinite(p.age_months) for p in predictions)
