"""The label-efficiency experiment in the product's regime (ml.active_starter): the starter's head fine-tuned on
frozen features of the six test-time views, read with the `both` spread."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ml.active import BATCH_STRATEGIES, STRATEGIES, simulate
from ml.active_starter import (
    StarterHeadLearner,
    StarterSetup,
    cached_starter_features,
    other_scanner,
    starter_features,
    starter_head,
)
from ml.checkpoint import load_checkpoint, resolve_checkpoint
from ml.tta import VIEWS

SMALL = StarterSetup(render_size=128, epochs=3, mc_samples=8)


@pytest.fixture(scope="module")
def features() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    return starter_features(24, seed=5, setup=SMALL, log=lambda *_: None)


def test_every_phantom_gets_the_trunk_features_of_each_test_time_view(features):
    feats, age, male = features
    assert feats.shape[:2] == (24, len(VIEWS)) and np.isfinite(feats).all()
    assert age.shape == male.shape == (24,)
    assert not np.allclose(feats[:, 0], feats[:, 1])  # the mirror is another view, not a copy


def test_an_untrained_learner_reads_exactly_as_the_starter_reads_the_same_views(features):
    feats, age, male = features
    learner = StarterHeadLearner(feats, age, male, SMALL, seed=0)
    pred, std = learner.predict(np.arange(24))
    model = load_checkpoint(resolve_checkpoint("starter")).build().eval()
    sex = torch.from_numpy(np.where(male, 1.0, -1.0)).float()
    with torch.no_grad():
        views = torch.stack([model.regressor.head(torch.from_numpy(feats[:, v]), sex) for v in range(len(VIEWS))])
    assert np.allclose(pred, views.mean(0).numpy(), atol=1e-4)
    assert (std >= views.std(0, unbiased=False).numpy() - 1e-4).all()  # the views' spread plus MC dropout's


def test_each_round_starts_from_the_starter_so_it_does_not_depend_on_the_rounds_before(features):
    feats, age, male = features
    head = starter_head(SMALL)
    seasoned = StarterHeadLearner(feats, age, male, SMALL, seed=1, head=head)
    seasoned.fit(list(range(8)))
    seasoned.fit(list(range(16)))
    fresh = StarterHeadLearner(feats, age, male, SMALL, seed=1, head=head)
    fresh.fit(list(range(16)))
    assert np.allclose(seasoned.predict(np.arange(16, 24))[0], fresh.predict(np.arange(16, 24))[0])
    untouched = StarterHeadLearner(feats, age, male, SMALL, seed=1, head=head)
    assert not np.allclose(untouched.predict(np.arange(16, 24))[0], fresh.predict(np.arange(16, 24))[0])


def test_the_other_scanner_is_repeatable_stays_in_range_and_lifts_the_dark_end():
    ramp = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (64, 1))
    once, twice = other_scanner(ramp, seed=3), other_scanner(ramp, seed=3)
    assert np.array_equal(once, twice) and once.min() >= 0.0 and once.max() <= 1.0
    assert once[:, 16].mean() > ramp[:, 16].mean() + 0.1  # gamma 0.6: 0.24 reads as ~0.43


def test_features_are_kept_once_and_read_back_unchanged(tmp_path):
    setup = replace(SMALL, scanner="other")
    first = cached_starter_features(6, seed=5, setup=setup, cache_dir=str(tmp_path), log=lambda *_: None)
    kept = list(tmp_path.iterdir())
    assert len(kept) == 1 and "other-scanner" in kept[0].name  # no half-written temporary left beside it
    again = cached_starter_features(6, seed=5, setup=setup, cache_dir=str(tmp_path), log=lambda *_: None)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_the_simulation_runs_every_strategy_from_the_same_start_in_the_products_regime(tmp_path):
    out = simulate(strategies=STRATEGIES + BATCH_STRATEGIES, seeds=[0], start=10, step=10, stop=30, pool=40, test=10,
                   regressor="starter", starter_setup=SMALL, cache_dir=str(tmp_path), log=lambda *_: None)
    curves = out["results"]
    assert all(sorted(curve) == [10, 20, 30] for curve in curves.values())
    assert len({round(curve[10][0], 6) for curve in curves.values()}) == 1
    assert out["regressor"] == "starter" and out["setup"]["scanner"] == "same"
    assert out["reference"]["label"] == "the starter alone" and out["reference"]["mae"] > 0
