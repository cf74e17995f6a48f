"""The label-efficiency experiment: the network learner (ml.active_net) and the simulate loop around it."""
from __future__ import annotations

import numpy as np
import torch

from ml.active import BATCH_STRATEGIES, STRATEGIES, simulate
from ml.active_net import NetLearner, NetSetup, phantom_crops

SMALL = NetSetup(side=48, first_epochs=3, round_epochs=1, mc_samples=8, render_size=128)


def test_the_network_learner_gives_every_study_an_age_and_a_repeatable_mc_dropout_std():
    crops, age, male = phantom_crops(30, seed=5, setup=SMALL)
    assert crops.shape == (30, 48, 48) and np.isfinite(crops).all()
    learner = NetLearner(crops, age, male, SMALL, seed=0)
    learner.fit(list(range(20)))
    pred, std = learner.predict(np.arange(20, 30))
    assert pred.shape == std.shape == (10,) and np.isfinite(pred).all()
    assert (std > 0).all()
    again_pred, again_std = learner.predict(np.arange(20, 30))
    assert np.allclose(pred, again_pred) and np.allclose(std, again_std)


def test_the_network_learner_embeds_studies_as_the_age_head_sees_them():
    crops, age, male = phantom_crops(30, seed=5, setup=SMALL)
    learner = NetLearner(crops, age, male, SMALL, seed=0)
    learner.fit(list(range(20)))
    learner.predict(np.arange(20, 30))  # fills rows 20..29; rows 0..19 are computed on demand
    emb = learner.embed(np.array([25, 3, 29, 0]))
    with torch.no_grad():
        learner.net.eval()
        trunk = learner.net.embed(learner.x[[25, 3, 29, 0]]).numpy()
    assert emb.shape == (4, trunk.shape[1] + 1)
    assert np.allclose(emb[:, :-1], trunk, atol=1e-5)
    assert list(emb[:, -1]) == [1.0 if male[i] else -1.0 for i in (25, 3, 29, 0)]
    learner.fit(list(range(25)))  # new weights: new features, not the cached ones
    assert not np.allclose(learner.embed(np.array([25, 3, 29, 0]))[:, :-1], emb[:, :-1])


def test_every_strategy_starts_from_the_same_labels_and_grows_by_the_step():
    out = simulate(strategies=STRATEGIES + BATCH_STRATEGIES, seeds=[0], start=10, step=10, stop=30, pool=40, test=10,
                   regressor="network", net_setup=SMALL, log=lambda *_: None)
    curves = out["results"]
    assert set(curves) == {"uncertainty", "random", "diverse", "coreset", "hybrid"}
    assert all(sorted(curve) == [10, 20, 30] for curve in curves.values())
    first = {strategy: curve[10][0] for strategy, curve in curves.items()}
    assert len(set(np.round(list(first.values()), 6))) == 1, first  # same start set, same seed, same model
    assert out["regressor"] == "network" and out["setup"]["side"] == 48


def test_the_gp_stand_in_runs_the_batch_strategies_in_its_own_input_space():
    out = simulate(strategies=BATCH_STRATEGIES, seeds=[0], start=10, step=10, stop=20, pool=30, test=10, components=8,
                   regressor="gp", log=lambda *_: None)
    assert all(sorted(curve) == [10, 20] for curve in out["results"].values())
    assert set(out["strategy_seconds"]) == set(BATCH_STRATEGIES)
