"""ml.automask: the paper's Canny hand masks, scored against the phantoms' ground truth."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.automask import AutomaskResult, automask, dice
from ml.phantoms import generate_cohort, render
from ml.phantoms.cohort import sample_subject

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml.automask", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture(scope="module")
def fixed_set() -> list:
    """Ten phantoms (a fixed cohort seed), half with random distractors."""
    out = []
    for i in range(10):
        age, male, rseed = sample_subject(99, i)
        out.append(render(age, male, rseed, size=384, distractors="random" if i % 2 else "none"))
    return out


def test_masks_match_the_ground_truth_on_a_fixed_set(fixed_set):
    scores = [dice(automask(ph.image).mask, ph.mask) for ph in fixed_set]
    assert min(scores) >= 0.85, scores
    assert float(np.median(scores)) >= 0.93, scores


def test_a_mask_is_binary_and_the_same_shape_as_the_image(fixed_set):
    ph = fixed_set[0]
    res = automask(ph.image)
    assert isinstance(res, AutomaskResult)
    assert res.mask.shape == ph.image.shape and res.mask.dtype == np.uint8
    assert set(np.unique(res.mask)) <= {0, 255}
    assert 0.0 <= res.quality <= 1.0 and res.timings["total"] > 0


def test_float_and_uint16_inputs_give_the_same_mask(fixed_set):
    ph = fixed_set[1]
    as_u16 = automask(ph.image).mask
    as_float = automask(ph.image.astype(np.float32) / 65535.0).mask
    assert dice(as_u16, as_float) > 0.99


def test_a_large_film_is_masked_at_full_resolution():
    ph = render(100, True, seed=4, size=1400)
    res = automask(ph.image)
    assert res.mask.shape == ph.image.shape
    assert dice(res.mask, ph.mask) > 0.9


def test_a_hand_scores_higher_quality_than_noise(fixed_set):
    noise = np.random.default_rng(0).random((384, 300)).astype(np.float32)
    assert automask(fixed_set[2].image).quality > automask(noise).quality + 0.2


def test_a_blank_image_gives_an_empty_mask_and_zero_quality():
    res = automask(np.zeros((200, 160), np.uint16))
    assert not res.mask.any() and res.quality == 0.0


def test_a_non_2d_input_is_rejected():
    with pytest.raises(ValueError):
        automask(np.zeros((4, 5, 6, 7)))


def test_the_cli_writes_one_mask_per_image_named_by_id(tmp_path):
    generate_cohort(tmp_path / "png", 2, seed=5, size=160, progress=False)
    generate_cohort(tmp_path / "dcm", 2, seed=6, size=160, fmt="dicom", progress=False)
    r = run_cli(str(tmp_path / "png" / "images"), str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 1 and "mean quality" in r.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1000.png", "1001.png"]
    r = run_cli(str(tmp_path / "dcm" / "images"), str(tmp_path / "out_dcm"))
    assert r.returncode == 0, r.stderr
    for sid in ("1000", "1001"):
        got = np.asarray(Image.open(tmp_path / "out_dcm" / f"{sid}.png"))
        truth = np.asarray(Image.open(tmp_path / "dcm" / "masks" / f"{sid}.png"))
        assert dice(got, truth) > 0.85


def test_the_cli_help_works():
    r = run_cli("--help")
    assert r.returncode == 0 and "IN_DIR" in r.stdout.upper()


def test_a_missing_input_folder_gives_a_clear_error(tmp_path):
    r = run_cli(str(tmp_path / "nope"), str(tmp_path / "out"))
    assert r.returncode != 0
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_an_unreadable_image_gives_a_clear_error(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "1000.png").write_bytes(b"this is not a png")
    (src / "1001.dcm").write_bytes(b"nor a dicom")
    r = run_cli(str(src), str(tmp_path / "out"))
    assert r.returncode != 0
    assert "1000.png" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_folder_without_images_gives_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    r = run_cli(str(tmp_path), str(tmp_path / "out"))
    assert r.returncode != 0 and "no images" in r.stderr and "Traceback" not in r.stderr


def test_the_distance_transform_disk_morphology_is_the_same_pixels_as_scipys_with_the_disk_structure():
    from scipy import ndimage

    from ml.automask import _dilate_disk, _disk, _erode_disk

    rng = np.random.default_rng(0)
    for k in range(60):
        h, w = rng.integers(20, 160, 2)
        mask = ndimage.gaussian_filter(rng.random((h, w)), rng.uniform(1, 6)) > rng.uniform(0.45, 0.55)
        mask[:, :3] |= k % 3 == 0  # touching the border: erosion's border counts as background
        r = int(rng.integers(1, 14))
        assert np.array_equal(_erode_disk(mask, r), ndimage.binary_erosion(mask, structure=_disk(r)))
        assert np.array_equal(_dilate_disk(mask, r), ndimage.binary_dilation(mask, structure=_disk(r)))
