"""The label-efficiency experiment on a two-site archive (ml.active_sites): part of the project's images come from a
reader with strong edge enhancement, and the learner fine-tunes the starter's whole regressor every round."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.active import BATCH_STRATEGIES, STRATEGIES, simulate
from ml.active_sites import (
    SitesSetup,
    StarterRegressorLearner,
    cached_site_crops,
    edge_enhanced,
    from_new_site,
    site_crops,
    starter_regressor,
)
from ml.tta import VIEWS

SMALL = SitesSetup(render_size=128, epochs=2, mc_samples=8, new_site_share=0.5)


def quiet(*_):
    return None


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    return site_crops(16, seed=5, setup=SMALL, log=quiet)


def test_every_phantom_gets_the_starters_crop_of_each_test_time_view_and_a_fixed_site(data):
    assert data["crops"].shape[:3] == (16, len(VIEWS), 1) and np.isfinite(data["crops"]).all()
    assert data["age"].shape == data["male"].shape == data["new_site"].shape == (16,)
    assert 0 < data["new_site"].sum() < 16
    assert list(data["new_site"]) == [from_new_site(5, i, 0.5) for i in range(16)]


def test_the_new_sites_reader_sharpens_edges_and_stays_in_range():
    step = np.zeros((64, 64), np.float32)
    step[:, 32:] = 0.6
    sharpened = edge_enhanced(step)
    assert sharpened.min() >= 0.0 and sharpened.max() <= 1.0 and np.array_equal(sharpened, edge_enhanced(step))
    assert sharpened[:, 33].mean() > 0.6 + 0.05 and sharpened[:, 30].mean() == 0.0  # overshoot; clipped below 0
    assert np.allclose(sharpened[:, 60], 0.6, atol=0.02)  # flat regions far from the edge keep their value


def test_about_the_stated_share_of_a_cohort_comes_from_the_new_site():
    share = np.mean([from_new_site(2027, i, 0.25) for i in range(2000)])
    assert 0.22 < share < 0.28


def test_an_untrained_learner_reads_as_the_starters_regressor_reads_the_same_crops(data):
    learner = StarterRegressorLearner(data["crops"], data["age"], data["male"], SMALL, seed=0)
    pred, std = learner.predict(np.arange(16))
    net = starter_regressor(SMALL)
    sex = torch.from_numpy(np.where(data["male"], 1.0, -1.0)).float()
    with torch.no_grad():
        views = torch.stack([net(torch.from_numpy(data["crops"][:, v]).float(), sex).age for v in range(len(VIEWS))])
    assert np.allclose(pred, views.mean(0).numpy(), atol=1e-3)
    assert (std >= views.std(0, unbiased=False).numpy() - 1e-3).all()  # the views' spread plus MC dropout's


def test_each_round_starts_from_the_starter_and_keeps_its_batchnorm_statistics(data):
    net = starter_regressor(SMALL)
    seasoned = StarterRegressorLearner(data["crops"], data["age"], data["male"], SMALL, seed=1, regressor=net)
    seasoned.fit(list(range(6)))
    seasoned.fit(list(range(10)))
    fresh = StarterRegressorLearner(data["crops"], data["age"], data["male"], SMALL, seed=1, regressor=net)
    fresh.fit(list(range(10)))
    assert np.allclose(seasoned.predict(np.arange(10, 16))[0], fresh.predict(np.arange(10, 16))[0], atol=1e-4)
    trained = dict(fresh.net.named_buffers())
    for name, buffer in net.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            assert torch.equal(buffer, trained[name]), name  # frozen, as the product's fine-tune keeps them
    assert not torch.equal(next(net.parameters()), next(fresh.net.parameters()))  # the weights did learn


def test_the_embedding_is_the_plain_views_features_of_the_current_weights(data):
    learner = StarterRegressorLearner(data["crops"], data["age"], data["male"], SMALL, seed=2)
    before = learner.embed(np.arange(4))
    learner.predict(np.arange(16))
    assert np.allclose(before, learner.embed(np.arange(4)), atol=1e-5)  # cached from predict, the same numbers
    learner.fit(list(range(8)))
    after = learner.embed(np.arange(4))
    assert after.shape == before.shape and not np.allclose(after, before)  # new weights, new features
    assert set(np.unique(after[:, -1])) <= {-1.0, 1.0}


def test_crops_are_kept_once_and_read_back_unchanged(tmp_path):
    first = cached_site_crops(4, seed=5, setup=SMALL, cache_dir=str(tmp_path), log=quiet)
    kept = list(tmp_path.iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("al-sites-5-4-128-") and "tmp" not in kept[0].name
    again = cached_site_crops(4, seed=5, setup=SMALL, cache_dir=str(tmp_path), log=quiet)
    assert all(np.array_equal(first[k], again[k]) for k in first)


def test_the_simulation_reports_each_site_and_what_every_strategy_labelled(tmp_path):
    out = simulate(strategies=STRATEGIES + BATCH_STRATEGIES, seeds=[0], start=6, step=6, stop=12, pool=20, test=8,
                   regressor="sites", sites_setup=SMALL, cache_dir=str(tmp_path), log=quiet)
    assert len({round(curve[6][0], 6) for curve in out["results"].values()}) == 1  # the same start for all
    for strategy, runs in out["labelled"].items():
        assert len(runs[0]) == 12 == len(set(runs[0])) and runs[0][:6] == out["labelled"]["random"][0][:6], strategy
    new, first = out["by_group"]["new site"], out["by_group"]["first site"]
    assert set(new) == set(first) == set(out["results"]) and sorted(new["random"]) == [6, 12]
    n_new = out["setup"]["new_site_in_test"]
    assert 0 < n_new < 8  # so the overall MAE is the two sites' MAEs weighted by their counts:
    overall = (n_new * new["hybrid"][12][0] + (8 - n_new) * first["hybrid"][12][0]) / 8
    assert overall == pytest.approx(out["results"]["hybrid"][12][0], rel=1e-6)
    assert out["reference"]["mae_new_site"] > 0 and out["reference"]["mae_first_site"] > 0
