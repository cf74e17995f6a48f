"""Inference: prediction parts in image coordinates, live stages, batches, the CLI and the heatmap PNGs."""
from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ml.checkpoint import save_checkpoint
from ml.infer import Predictor, work_image
from ml.models import ATTENTION_NAMES, ModelConfig, build_model
from ml.render import heatmap_png_bytes, mask_png_bytes

ROOT = Path(__file__).resolve().parents[2]
TINY = ModelConfig(width=0.125, seg_size=64, work_size=96, crop_size=64)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    torch.manual_seed(2)
    model = build_model(TINY)
    model.segmenter.net.roi_heads.score_thresh = 0.0
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model, TINY, train_config={"mc_samples": 4}, calibration={"scale": 1.5, "floor": 2.0})
    return Predictor(path, device="cpu")


def radiograph(h: int = 140, w: int = 110, seed: int = 0) -> np.ndarray:
    image = np.random.default_rng(seed).random((h, w), dtype=np.float32) * 0.1
    image[30:130, 30:80] += 0.7
    return image


def test_a_prediction_has_age_std_mask_box_and_six_attention_maps_in_image_coordinates(predictor):
    image = radiograph()
    p = predictor.predict(image, male=False)
    assert np.isfinite(p.age_months) and p.std_months > 0
    assert p.mask.shape == image.shape and p.mask.dtype == np.uint8 and set(np.unique(p.mask)) <= {0, 255}
    x0, y0, x1, y1 = p.box
    assert 0 <= x0 <= x1 <= 110 and 0 <= y0 <= y1 <= 140
    assert tuple(p.attention) == ATTENTION_NAMES
    assert all(a.shape == image.shape and a.dtype == np.float32 for a in p.attention.values())
    assert {"segment", "regress", "attention", "total"} <= set(p.timings)


def test_attention_can_be_skipped_and_mc_samples_chosen(predictor):
    p = predictor.predict(radiograph(), male=None, with_attention=False, mc_samples=0)
    assert p.attention == {} and p.std_months == pytest.approx(1.5 * 2.0)


def test_the_stream_yields_mask_then_age_then_six_attention_maps_then_done(predictor):
    events = list(predictor.predict_stream(radiograph(), True))
    assert [e[0] for e in events] == ["mask", "age", *["attention"] * 6, "done"]
    assert [e[1] for e in events[2:8]] == list(ATTENTION_NAMES)
    done = events[-1][1]
    assert events[1][1] == done.age_months and np.array_equal(events[0][1], done.mask)


def test_a_batch_predicts_the_same_as_one_image_at_a_time(predictor):
    images = [radiograph(seed=i) for i in range(3)]
    batch = predictor.predict_batch(images, [True, False, None])
    single = [predictor.predict(im, m) for im, m in zip(images, [True, False, None])]
    assert [round(p.age_months, 3) for p in batch] == [round(p.age_months, 3) for p in single]


def test_heatmap_and_mask_pngs_decode_to_the_image_size(predictor):
    image = radiograph()
    p = predictor.predict(image, True)
    overlay = Image.open(io.BytesIO(heatmap_png_bytes(p.attention["Att3_1"], image)))
    assert overlay.size == (110, 140) and overlay.mode == "RGB"
    mask = Image.open(io.BytesIO(mask_png_bytes(p.mask)))
    assert mask.size == (110, 140) and mask.mode == "L"


def test_the_predict_cli_writes_id_pred_std_and_reports_bad_input_in_one_line(predictor, tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    for i in range(2):
        Image.fromarray((radiograph(seed=i) * 65535).astype(np.uint16)).save(data / "images" / f"s{i}.png")
    (data / "labels.csv").write_text("id,boneage,male\ns0,100,True\ns1,,False\n")  # s1's bone age unknown
    out = tmp_path / "pred.csv"
    run = subprocess.run([sys.executable, "-m", "ml.predict", "--ckpt", str(predictor.path), "--data", str(data),
                          "--out", str(out)], check=False, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "predicted 2 images" in run.stdout and "MAE" in run.stdout  # over the one film with a bone age
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == ["s0", "s1"]
    assert list(rows[0]) == ["id", "pred_months", "std_months", "outside", "outside_reason"]
    # a checkpoint without an out-of-distribution reference reads, and says it cannot tell
    assert {r["outside"] for r in rows} == {"false"} and rows[0]["outside_reason"].startswith("no reference")
    bad = subprocess.run([sys.executable, "-m", "ml.predict", "--ckpt", str(data / "labels.csv"), "--data", str(data),
                          "--out", str(out)], check=False, capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0 and "error:" in bad.stderr
    assert "Traceback" not in bad.stderr



def bilinear(array: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, array.shape[0] - 1), np.minimum(x0 + 1, array.shape[1] - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = array[np.ix_(y0, x0)] * (1 - fx) + array[np.ix_(y0, x1)] * fx
    bottom = array[np.ix_(y1, x0)] * (1 - fx) + array[np.ix_(y1, x1)] * fx
    return top * (1 - fy) + bottom * fy


@pytest.mark.parametrize("side", [16, 35, 140])
def test_attention_maps_on_a_coarse_grid_read_what_the_full_size_maps_read_at_the_cell_centres(predictor, side):
    image = radiograph()  # 140 × 110
    full = predictor.predict(image, True).attention
    coarse = predictor.predict(image, True, attention_side=side).attention
    step = -(-140 // side)
    for name, small in coarse.items():
        assert small.shape == (-(-140 // step), -(-110 // step)) and max(small.shape) <= side
        # cell i's centre is at (i + 0.5) × step pixels; full-size pixel k's at k + 0.5
        ys, xs = (np.arange(small.shape[0]) + 0.5) * step - 0.5, (np.arange(small.shape[1]) + 0.5) * step - 0.5
        ys, xs = ys[ys <= 139], xs[xs <= 109]  # the last cell can reach past the image
        error = np.abs(bilinear(full[name], ys, xs) - small[:len(ys), :len(xs)])
        # bilinear twice smooths the crop's edge a little (outside the crop a map holds its minimum)
        assert error.max() <= 0.15 * np.ptp(full[name]) + 1e-6 and np.median(error) <= 0.02 * np.ptp(full[name]) + 1e-6


def test_a_work_image_predicts_what_the_full_image_predicts(predictor):
    image = radiograph()
    full = predictor.predict(image, True, mc_samples=0, attention_side=16)
    prepared = predictor.predict(work_image(image, TINY.work_size), True, mc_samples=0, attention_side=16)
    assert prepared.age_months == pytest.approx(full.age_months, abs=1e-4)
    assert np.array_equal(prepared.mask, full.mask) and prepared.box == pytest.approx(full.box)
    for name, map_ in full.attention.items():
        np.testing.assert_allclose(prepared.attention[name], map_, atol=1e-5)


def test_a_work_image_made_for_another_network_size_is_refused_with_both_sizes(predictor):
    with pytest.raises(ValueError, match=r"\(64, 64\).*96×96"):
        predictor.predict(work_image(radiograph(), 64), True)


def test_the_finest_attention_map_has_a_quarter_of_the_crop_s_pixels_a_side(predictor):
    assert predictor.attention_cells == TINY.crop_size // 4


def test_a_prediction_carries_the_age_heads_input_as_its_embedding(predictor):
    """The features core-set compares: the plain view's pooled trunk features, what the regressor's `embed` gives."""
    image = radiograph()
    prediction = predictor.predict(image, True, with_attention=False)
    assert prediction.embedding is not None and prediction.embedding.dtype == np.float32
    unit = work_image(image, TINY.work_size)
    with torch.no_grad():
        x = torch.from_numpy(unit.square)[None, None]
        _, det = predictor.model.segment(x)
        crops, _ = predictor.model.crop(x, det)
        expected = predictor.model.regressor.embed(crops)[0].numpy()
    assert prediction.embedding.shape == expected.shape and np.allclose(prediction.embedding, expected, atol=1e-5)
    other = predictor.predict(radiograph(seed=1), True, with_attention=False).embedding
    assert not np.allclose(other, prediction.embedding)
