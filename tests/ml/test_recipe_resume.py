"""A killed default-recipe run continues (`python -m ml.train --data DIR --out CKPT --resume`, issue 30 and
DESIGN §6): the run keeps its state beside the checkpoint after every epoch; after a real `kill -9` in the regressor
stage the same command with --resume skips the finished segmenter stage, trains only the regressor's remaining epochs
and writes the checkpoint; a state from other data or settings is refused by name."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ml.checkpoint import load_checkpoint
from ml.data import DataError, read_folder
from ml.phantoms import generate_cohort
from ml.resume import StageState, load_state, resume_path, run_key, save_state

REPO = Path(__file__).resolve().parents[2]
REGRESSOR_EPOCHS = 30
SMALL = {"model": {"work_size": 128, "crop_size": 64, "seg_size": 64}, "seg_epochs": 2, "joint_epochs": 0,
         "max_seconds": 3000, "crops": {"epochs": REGRESSOR_EPOCHS, "batch_size": 8}, "threads": 1}


def train_command(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ml.train", "--data", str(root / "films"), "--out", str(root / "m.pt"),
            "--recipe-config", str(root / "recipe.json"), *extra]


def regressor_epochs_kept(path: Path) -> int:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1
    return saved["epochs_done"] if saved["stage"] == "regressor" else -1


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    generate_cohort(root / "films", 16, seed=919, size=160, distractors="none", progress=False)
    (root / "recipe.json").write_text(json.dumps(SMALL))
    state = resume_path(root / "m.pt")
    first = subprocess.Popen(train_command(root), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while regressor_epochs_kept(state) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    killed_at = regressor_epochs_kept(state)
    assert 2 <= killed_at < REGRESSOR_EPOCHS, f"the run was not caught mid-regressor ({killed_at})"
    assert not (root / "m.pt").exists()
    second = subprocess.run(train_command(root, "--resume"), cwd=REPO, capture_output=True, text=True, timeout=900,
                            check=False)
    return root, killed_at, second


def test_the_resumed_run_writes_the_checkpoint_and_removes_its_state(killed_then_resumed):
    root, killed_at, second = killed_then_resumed
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"resuming {root / 'm.pt'}: regressor stage after {killed_at} epochs" in second.stderr
    assert (root / "m.pt").is_file() and not resume_path(root / "m.pt").exists()


def test_the_resumed_run_trains_only_what_the_killed_one_had_left(killed_then_resumed):
    root, killed_at, second = killed_then_resumed
    assert '"stage": "segmenter"' not in second.stderr  # the finished stage is not trained again
    regressor_rows = [json.loads(line) for line in second.stderr.splitlines()
                      if line.startswith('{"stage": "regressor", "epoch"')]
    assert [r["epoch"] for r in regressor_rows] == list(range(killed_at + 1, REGRESSOR_EPOCHS + 1))
    metrics = load_checkpoint(root / "m.pt").metrics
    assert metrics["segmenter_stage"]["epochs"] == SMALL["seg_epochs"]
    assert metrics["regressor_stage"]["epochs"] == REGRESSOR_EPOCHS


def test_a_state_from_other_data_or_settings_is_refused_by_name(tmp_path):
    generate_cohort(tmp_path / "films", 4, seed=3, size=96, distractors="none", progress=False)
    samples = read_folder(tmp_path / "films")
    out = tmp_path / "m.pt"
    save_state(out, run_key(samples, {"a": 1}), StageState("regressor", 1, 1.0, 10.0, 2.0, 3, {}, {}))
    assert load_state(out, run_key(samples, {"a": 1})).epochs_done == 1
    with pytest.raises(DataError, match="written by a run on other data or with other recipe settings"):
        load_state(out, run_key(samples, {"a": 2}))
    with pytest.raises(DataError, match="other data"):
        load_state(out, run_key(samples[:3], {"a": 1}))
    resume_path(out).write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="cannot read the resume state"):
        load_state(out, run_key(samples, {"a": 1}))


def test_resume_is_refused_in_one_line_where_no_state_is_kept(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ml.train", "--data", str(tmp_path), "--out", str(tmp_path / "m.pt"),
                           "--preset", "light", "--resume"], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "--resume continues the default recipe" in done.stderr
    assert "Traceback" not in done.stderr
