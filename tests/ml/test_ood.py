"""Outside the model's experience (ml.ood, issue 29): a reference fitted on training embeddings, calibrated on
validation ones, and the verdicts the predictor and `python -m ml.predict` give with it."""
from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ml.checkpoint import load_checkpoint, save_checkpoint, store_ood_reference
from ml.infer import Predictor
from ml.models import ModelConfig, build_model
from ml.ood import NO_REFERENCE, OODReference, conformal_quantile, fit_reference, ledoit_wolf, reference_for_model

ROOT = Path(__file__).resolve().parents[2]
TINY = ModelConfig(width=0.125, seg_size=64, work_size=96, crop_size=64)


def gaussian(n: int, c: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, c))


def test_the_distance_of_a_shifted_film_is_known_exactly():
    """Training features ±1 on each of 4 axes (mean 0, covariance I, no shrinkage needed): a film shifted by 3 along
    one axis is 3 away, by (3, 4) is 5 away."""
    train = np.concatenate([np.eye(4), -np.eye(4)]) * 2.0  # variance 8/8 = 1 per axis; 2 films per feature
    ref = fit_reference(train, np.zeros((1, 4)))
    assert ref.shrinkage == 0.0  # the sample covariance
    np.testing.assert_allclose(ref.distances(np.array([[3.0, 0, 0, 0], [3.0, 4.0, 0, 0], [0, 0, 0, 0]])),
                               [3.0, 5.0, 0.0], atol=1e-5)


def test_the_threshold_is_the_validation_distances_conformal_99th_percentile():
    values = np.arange(1, 201, dtype=float)  # 200 distances: the ⌈201 × 0.99⌉ = 199th smallest
    assert conformal_quantile(values, 0.01) == 199.0
    assert conformal_quantile(values[:50], 0.01) == 50.0  # too few for 1 in 100: the farthest validated film


def test_about_one_validated_film_in_a_hundred_lies_beyond_the_threshold():
    ref = fit_reference(gaussian(2000, 8, seed=1), gaussian(500, 8, seed=2))
    fresh = ref.distances(gaussian(20000, 8, seed=3))
    assert 0.003 < float(np.mean(fresh > ref.threshold)) < 0.025
    assert ref.threshold == pytest.approx(math.sqrt(20.09), rel=0.1)  # chi² with 8 df, 99th percentile


def test_shrinkage_keeps_a_reference_with_fewer_films_than_features_invertible():
    _, cov, shrinkage = ledoit_wolf(gaussian(10, 32, seed=4))
    assert 0 < shrinkage <= 1 and np.all(np.linalg.eigvalsh(cov) > 0)
    ref = fit_reference(gaussian(10, 32, seed=4), gaussian(5, 32, seed=5))
    assert ref.shrinkage == pytest.approx(shrinkage) and np.isfinite(ref.distances(gaussian(3, 32, seed=6))).all()


def test_a_film_far_from_the_training_features_is_outside_with_its_distance_and_threshold_in_words():
    ref = fit_reference(gaussian(500, seed=7), gaussian(200, seed=8))
    inside = ref.assess(np.zeros(4), hand_score=0.99)
    assert not inside.outside and inside.reason == "" and inside.score < 1
    far = ref.assess(np.array([20.0, 0, 0, 0]), hand_score=0.99)
    assert far.outside and far.score > 1
    assert far.reason == (f"the film's features are unlike anything this model was trained on "
                          f"(distance {far.distance:.1f}, threshold {ref.threshold:.1f})")


def test_no_hand_and_a_poor_mask_flag_a_film_whose_features_look_familiar():
    ref = fit_reference(gaussian(500, seed=7), gaussian(200, seed=8), np.full(200, 0.98))
    assert ref.hand_score_min == 0.5
    no_hand = ref.assess(np.zeros(4), hand_score=0.12)
    assert no_hand.outside and no_hand.reason == "no hand found (detection score 0.12)"
    poor = ref.assess(np.zeros(4), hand_score=0.99, mask_quality=0.1)
    assert poor.outside and "mask quality 0.10" in poor.reason


def test_a_segmenter_weak_on_its_own_validation_films_does_not_flag_them_for_no_hand():
    ref = fit_reference(gaussian(50), gaussian(200, seed=1), np.linspace(0.2, 0.9, 200))
    assert ref.hand_score_min <= 0.21


def test_the_reference_survives_the_checkpoint_and_an_unknown_method_reads_as_none():
    ref = fit_reference(gaussian(50), gaussian(20, seed=1), note="unit test")
    back = OODReference.from_payload(ref.to_payload())
    assert back is not None and back.threshold == ref.threshold and back.note == "unit test"
    np.testing.assert_allclose(back.precision, ref.precision)
    assert OODReference.from_payload({}) is None and OODReference.from_payload({"method": "knn/9"}) is None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(2)
    model = build_model(TINY).eval()
    model.segmenter.net.roi_heads.score_thresh = 0.0
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model, TINY)
    return path


def film(seed: int, bright: float = 0.7) -> np.ndarray:
    image = np.random.default_rng(seed).random((120, 100), dtype=np.float32) * 0.1
    image[25:110, 25:75] += bright
    return image


def test_a_checkpoint_without_a_reference_predicts_and_says_it_cannot_tell(tiny):
    p = Predictor(tiny, device="cpu").predict(film(0), True, with_attention=False)
    assert p.outside is False and p.outside_reason == NO_REFERENCE and math.isnan(p.ood_score)


def test_the_predictor_flags_a_film_unlike_the_reference_and_passes_one_like_it(tiny, tmp_path):
    """The reference is fitted on the tiny model's own embeddings of 12 similar films: one of them reads inside, a
    film of uniform noise outside, with the distance in the reason, and the CLI writes the same verdicts."""
    path = tmp_path / "model.pt"
    path.write_bytes(tiny.read_bytes())
    plain = Predictor(path, device="cpu")
    train = plain.predict_batch([film(s) for s in range(8)], [True] * 8, with_attention=False)
    val = plain.predict_batch([film(s) for s in range(8, 12)], [True] * 4, with_attention=False)
    # an untrained segmenter scores its hands low: the floor follows the validation films' scores down
    reference = fit_reference(np.stack([p.embedding for p in train]), np.stack([p.embedding for p in val]),
                              np.array([p.score for p in val]), note="tiny")
    store_ood_reference(path, reference.to_payload())
    assert load_checkpoint(path).ood["note"] == "tiny"
    predictor = Predictor(path, device="cpu")
    same, noise = predictor.predict_batch([film(3), np.random.default_rng(9).random((120, 100), dtype=np.float32)],
                                          [True, True], with_attention=False)
    assert not same.outside and same.ood_score < 1
    assert noise.outside and noise.ood_score > 1 and "unlike anything this model was trained on" in noise.outside_reason

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    Image.fromarray((film(3) * 65535).astype(np.uint16)).save(data / "images" / "hand.png")
    Image.fromarray((np.random.default_rng(9).random((120, 100)) * 65535).astype(np.uint16)).save(
        data / "images" / "noise.png")
    (data / "labels.csv").write_text("id,boneage,male\nhand,100,True\nnoise,50,True\n")
    out = tmp_path / "pred.csv"
    run = subprocess.run([sys.executable, "-m", "ml.predict", "--ckpt", str(path), "--data", str(data), "--out",
                          str(out)], check=False, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "1 outside the model's experience" in run.stdout
    rows = {r["id"]: r for r in csv.DictReader(out.open())}
    assert rows["hand"]["outside"] == "false" and rows["hand"]["outside_reason"] == ""
    assert rows["noise"]["outside"] == "true" and "distance" in rows["noise"]["outside_reason"]


def test_a_trained_model_gets_a_reference_from_its_training_and_validation_films(tiny):
    from ml.data import HandDataset, Sample

    model = load_checkpoint(tiny).build().eval()
    model.segmenter.net.roi_heads.score_thresh = 0.0

    class Films(HandDataset):
        def __init__(self, seeds):
            super().__init__([Sample(str(s), Path("-"), None, 60.0, True) for s in seeds], 96, augment=True)

        def __getitem__(self, i):
            image = torch.from_numpy(np.pad(film(int(self.samples[i].id))[:96, :96], ((0, 0), (0, 0))))[None]
            return {"image": image, "mask": (image > 0.5).float(), "box": torch.tensor([25.0, 25, 75, 95]),
                    "age": torch.tensor(60.0), "sex": torch.tensor(1.0), "index": torch.tensor(i)}

    payload = reference_for_model(model, Films(range(6)), Films(range(6, 9)), torch.device("cpu"), batch_size=4)
    assert payload is not None and payload["n_train"] == 6 and payload["n_val"] == 3
    assert payload["precision"].shape == (payload["mean"].shape[0],) * 2


def test_pixel_statistics_flag_a_film_whose_features_look_familiar_with_the_reason_in_words():
    ref = fit_reference(gaussian(500, seed=7), gaussian(200, seed=8), train_pixels=gaussian(300, 9, seed=9),
                        val_pixels=gaussian(200, 9, seed=10))
    assert ref.pixels is not None and ref.alpha == 0.01  # each distance calibrated at α/2: either flags ≤ α
    familiar = ref.assess(np.zeros(4), hand_score=0.99, pixels=np.zeros(9))
    assert not familiar.outside
    odd = ref.assess(np.zeros(4), hand_score=0.99, pixels=np.full(9, 6.0))
    assert odd.outside and odd.reason.startswith("the film's grey levels and texture are unlike the films")


def test_pixel_statistics_survive_the_payload_and_an_older_payload_still_loads():
    ref = fit_reference(gaussian(50), gaussian(20, seed=1), train_pixels=gaussian(50, 9, seed=2),
                        val_pixels=gaussian(20, 9, seed=3))
    back = OODReference.from_payload(ref.to_payload())
    assert back is not None and back.pixels is not None and back.pixels.threshold == pytest.approx(ref.pixels.threshold)
    older = {k: v for k, v in ref.to_payload().items() if k != "pixels"}
    loaded = OODReference.from_payload(older)
    assert loaded is not None and loaded.pixels is None
    assert not loaded.assess(np.zeros(4), hand_score=0.99, pixels=np.full(9, 6.0)).outside  # nothing to judge with


def test_pixel_statistics_describe_the_hand_in_the_crop():
    import torch

    from ml.ood import PIXEL_STATISTICS, pixel_statistics

    crops = torch.zeros(2, 1, 16, 16)
    crops[0, 0, 4:12, 4:12] = torch.linspace(-1, 1, 64).view(8, 8)
    images = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    stats = pixel_statistics(images, crops)
    assert stats.shape == (2, len(PIXEL_STATISTICS))
    assert stats[0, 0] == pytest.approx(64 / 256)  # the hand: the non-zero pixels
    assert stats[1, 0] == 0.0 and np.isfinite(stats).all()  # no hand: zeros, never NaN


def test_too_few_training_films_for_the_pixel_statistics_leave_the_embedding_to_judge_alone():
    ref = fit_reference(gaussian(12, seed=7), gaussian(2, seed=8), train_pixels=gaussian(12, 9, seed=9),
                        val_pixels=gaussian(2, 9, seed=10))
    assert ref.pixels is None and ref.alpha == 0.01
