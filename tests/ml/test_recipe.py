"""ml.recipe: the default recipe (`python -m ml.train --data DIR --out CKPT` with no other flag), on a small phantom
cohort at a tiny geometry. What holds by construction: the three stages run and are recorded, the segmenter's
BatchNorm statistics are re-estimated on these films (never kept at the starter's), and the shipped weights are the
best on validation of the joint stage's candidates, the regressor stage's model among them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ml.checkpoint import load_checkpoint, resolve_checkpoint
from ml.phantoms import generate_cohort
from ml.recipe import RecipeConfig, recipe_config

REPO = Path(__file__).resolve().parents[2]
TINY = {"model": {"work_size": 128, "crop_size": 64, "seg_size": 64}, "seg_epochs": 1, "joint_epochs": 1,
        "max_seconds": 60, "crops": {"epochs": 3, "batch_size": 8}, "threads": 1}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("recipe")
    generate_cohort(root / "films", 20, seed=515, size=160, distractors="real", progress=False)
    (root / "films" / "masks").rename(root / "ground-truth-masks")  # like real films: Canny masks only
    (root / "recipe.json").write_text(json.dumps(TINY))
    done = subprocess.run([sys.executable, "-m", "ml.train", "--data", str(root / "films"), "--out",
                           str(root / "m.pt"), "--recipe-config", str(root / "recipe.json"), "--quiet"],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    return root / "m.pt", done


def test_ml_train_with_no_other_flag_runs_the_staged_recipe_and_writes_a_checkpoint(trained):
    ckpt, done = trained
    assert done.returncode == 0, done.stderr[-2000:]
    assert "val MAE" in done.stdout and str(ckpt) in done.stdout
    metrics = load_checkpoint(ckpt).metrics
    assert metrics["recipe"] == "staged"
    assert metrics["segmenter_stage"]["epochs"] >= 1 and metrics["regressor_stage"]["epochs"] >= 1
    assert not ckpt.with_name(ckpt.name + ".stage2.pt").exists()  # the intermediate file is gone


def test_the_shipped_weights_are_the_best_on_validation_of_the_joint_stage_and_its_start(trained):
    metrics = load_checkpoint(trained[0]).metrics
    candidates = {k: v for k, v in metrics["final_candidates"].items() if k != "shipped"}
    assert "init" in candidates  # the regressor stage's model competes
    assert metrics["val_mae"] == pytest.approx(min(candidates.values()))
    assert metrics["val_mae"] <= metrics["init_val_mae"]


def test_the_segmenter_batchnorm_is_re_estimated_on_the_films_not_kept_at_the_starters(trained):
    ours = load_checkpoint(trained[0]).build().segmenter
    starter = load_checkpoint(resolve_checkpoint("starter")).build().segmenter
    assert ours is not None and starter is not None
    means = [(a, b) for (n, a), (_, b) in zip(ours.state_dict().items(), starter.state_dict().items())
             if n.endswith("running_mean")]
    assert means and any(not torch.allclose(a, b) for a, b in means)


def test_a_recipe_config_refuses_an_unknown_key_by_name():
    with pytest.raises(ValueError, match="unknown recipe config keys \\['epochz'\\]"):
        recipe_config({"epochz": 3})


def test_a_recipe_config_reads_a_model_over_the_real_preset_and_crop_settings():
    config = recipe_config({"model": {"crop_size": 96}, "crops": {"epochs": 5}})
    assert config.model.crop_size == 96 and config.model.work_size == RecipeConfig().model.work_size
    assert config.crops.epochs == 5


def test_a_folder_without_labels_is_refused_with_the_reason(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ml.train", "--data", str(tmp_path), "--out", str(tmp_path / "m.pt")],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "no labels.csv" in done.stderr
    assert not (tmp_path / "m.pt").exists()


def test_a_recipe_config_changes_only_the_crop_settings_it_names():
    config = recipe_config({"crops": {"epochs": 5}})
    assert config.crops.channels_last == RecipeConfig().crops.channels_last is True and config.crops.lr == RecipeConfig().crops.lr
