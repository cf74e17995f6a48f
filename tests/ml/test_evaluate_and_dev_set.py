"""ml.evaluate (held-out MAE with bootstrap intervals, the mean predictor, interval coverage) and
scripts/build_real_dev.py (the git-ignored real-film development set and its fixed split)."""
from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.evaluate import bootstrap_mae, report
from ml.phantoms import generate_cohort

REPO = Path(__file__).resolve().parents[2]


def load_builder():
    spec = importlib.util.spec_from_file_location("build_real_dev", REPO / "scripts" / "build_real_dev.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_report_gives_the_mae_the_mean_predictor_and_the_coverage_of_the_stated_interval():
    true = np.array([10.0, 20.0, 30.0, 40.0])
    pred = np.array([12.0, 18.0, 35.0, 40.0])
    std = np.array([1.0, 1.0, 1.0, 1.0])
    r = report(pred, std, true, [True, False, True, None], np.array([False, False, True, False]), mean_age=25.0,
               multiplier=2.0, level=0.9)
    assert r.mae == pytest.approx(9 / 4)
    assert r.mean_predictor_mae == pytest.approx(10.0) and r.ratio_to_mean_predictor == pytest.approx(0.225)
    assert r.coverage == pytest.approx(0.75)  # |5| > 2·1 misses; 2, 2, 0 are inside
    assert r.outside == 1 and r.coverage_inside == pytest.approx(1.0)
    assert r.mae_by_sex["male"][0] == pytest.approx(3.5) and r.mae_by_sex["male"][3] == 2


def test_the_bootstrap_interval_is_seeded_and_holds_the_mae():
    errors = np.random.default_rng(3).normal(0, 10, 200)
    first, second = bootstrap_mae(errors), bootstrap_mae(errors)
    assert first == second
    assert first[1] < first[0] < first[2]


def test_ml_evaluate_reads_a_folder_through_the_product_path(tmp_path):
    generate_cohort(tmp_path / "films", 6, seed=8, size=160, progress=False)
    done = subprocess.run([sys.executable, "-m", "ml.evaluate", "--ckpt", "starter", "--data", str(tmp_path / "films"),
                           "--quiet", "--json", str(tmp_path / "r.json")], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "on 6 films; mean predictor" in done.stdout and "by age band" in done.stdout
    assert (tmp_path / "r.json").is_file()


def test_ml_evaluate_refuses_a_bad_level(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ml.evaluate", "--ckpt", "starter", "--data", str(tmp_path),
                           "--level", "1.5"], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "--level" in done.stderr


def test_the_dev_split_is_fixed_by_each_id_alone():
    builder = load_builder()
    ids = [str(i) for i in range(1000, 1300)]
    train, test = builder.split(ids, test_size=50)
    assert len(test) == 50 and not set(train) & set(test) and len(train) + len(test) == 300
    # adding films never moves a film that was in the test part out of it unless a new one ranks before it
    _, test_more = builder.split(ids + ["99999"], test_size=50)
    assert len(set(test) & set(test_more)) >= 49


def fake_repos(root: Path, n: int) -> tuple[Path, Path]:
    films, labels = root / "films", root / "labels"
    (films / "images").mkdir(parents=True)
    labels.mkdir()
    with (labels / "boneage-training-dataset.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "boneage", "male"])
        for i in range(n):
            Image.fromarray(np.full((8, 8), i % 256, np.uint8)).save(films / "images" / f"{1000 + i}.png")
            writer.writerow([1000 + i, 12 + i % 200, i % 2 == 0])
    return films, labels


def test_the_builder_writes_all_train_and_test_in_the_rsna_layout(tmp_path):
    films, labels = fake_repos(tmp_path, 230)
    builder = load_builder()
    assert builder.main([str(films), str(labels), "--out", str(tmp_path / "dev")]) == 0
    rows = {part: list(csv.DictReader((tmp_path / "dev" / part / "labels.csv").open())) for part in ("all", "train", "test")}
    assert (len(rows["all"]), len(rows["train"]), len(rows["test"])) == (230, 30, 200)
    assert all((tmp_path / "dev" / "test" / "images" / f"{r['id']}.png").is_file() for r in rows["test"])


def test_the_builder_refuses_films_without_an_official_label(tmp_path, capsys):
    films, labels = fake_repos(tmp_path, 3)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(films / "images" / "777.png")
    assert load_builder().main([str(films), str(labels), "--out", str(tmp_path / "dev")]) == 2
    assert "1 films have no official label" in capsys.readouterr().err
    assert not (tmp_path / "dev").exists()
