"""Core-set (k-center greedy) and hybrid batch selection: what holds by construction, on constructed points."""
from __future__ import annotations

import numpy as np
import pytest

from ml.active import (
    BATCH_STRATEGIES,
    HYBRID_FACTOR,
    NEXT_CASE_STRATEGIES,
    STRATEGIES,
    coreset_points,
    coreset_scores,
    hybrid_batch,
    k_center_greedy,
    min_distances,
    scores,
    select_batch,
)


def test_distances_to_the_nearest_centre_are_exact_and_a_duplicate_is_zero_away():
    points = np.array([[0.0, 0.0], [3.0, 4.0], [1e6, 1e6 + 1]])
    centres = np.array([[0.0, 0.0], [1e6, 1e6 + 1], [10.0, 0.0]])
    assert list(min_distances(points, centres, chunk=2)) == [0.0, 5.0, 0.0]
    assert np.isinf(min_distances(points, np.zeros((0, 2)))).all()


def test_k_center_picks_the_candidate_farthest_from_the_labelled_first():
    labelled = np.array([[0.0, 0.0]])
    candidates = np.array([[1.0, 0.0], [9.0, 1.0], [10.0, 0.0], [0.0, -5.0]])
    assert k_center_greedy(candidates, labelled, 1) == [2]
    # then the one farthest from both the labelled point and that pick — not [9, 1], the runner-up from (0, 0)
    assert k_center_greedy(candidates, labelled, 2) == [2, 3]


def test_k_center_never_picks_a_duplicate_of_a_labelled_point_while_another_candidate_is_left():
    rng = np.random.default_rng(0)
    labelled = rng.normal(size=(5, 3))
    fresh = rng.normal(size=(4, 3)) + 0.01
    candidates = np.vstack([labelled, labelled, fresh])  # ten exact duplicates of labelled points, four new points
    picks = k_center_greedy(candidates, labelled, 4)
    assert sorted(picks) == [10, 11, 12, 13]
    assert len(set(k_center_greedy(candidates, labelled, 14))) == 14  # and never the same index twice


def test_a_batch_of_two_from_two_tight_clusters_takes_one_from_each():
    rng = np.random.default_rng(1)
    near, far = rng.normal(0, 0.01, size=(20, 4)), rng.normal(0, 0.01, size=(20, 4)) + 10.0
    candidates = np.vstack([near, far])
    labelled = np.full((1, 4), -10.0)  # far cluster is the farthest from it; the next pick must leave that cluster
    picks = k_center_greedy(candidates, labelled, 2)
    assert picks[0] >= 20 and picks[1] < 20
    picks = k_center_greedy(candidates, np.zeros((0, 4)), 2)  # nothing labelled: still one per cluster
    assert sorted(p >= 20 for p in picks) == [False, True]


def test_hybrid_only_picks_among_the_most_uncertain_and_spreads_within_them():
    rng = np.random.default_rng(2)
    candidates = rng.normal(size=(60, 2))
    candidates[:5] += 100.0  # the farthest points are the least uncertain: core-set alone would take them
    std = np.linspace(0.0, 1.0, 60)
    k = 3
    top = set(np.argsort(-std)[:HYBRID_FACTOR * k])
    labelled = np.zeros((1, 2))
    picks = hybrid_batch(candidates, labelled, std, k)
    assert len(picks) == k and set(picks) <= top
    assert set(k_center_greedy(candidates, labelled, k)) & set(range(5))  # …as core-set alone does
    inside = sorted(top)
    assert [inside[i] for i in k_center_greedy(candidates[inside], labelled, k)] == picks


def test_select_batch_dispatches_the_batch_strategies_and_scores_refuses_them():
    candidates = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [9.0]])
    keys = list("abcdef")
    std = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]  # top 4·1: the first four
    assert select_batch("coreset", keys, std, candidates, np.array([[0.0]]), 1) == [5]
    assert select_batch("hybrid", keys, std, candidates, np.array([[0.0]]), 1) == [3]
    assert set(BATCH_STRATEGIES).isdisjoint(STRATEGIES)  # the platform's per-study strategies are unchanged
    with pytest.raises(ValueError, match="no per-study score"):
        scores("coreset", keys, std)


# --- coreset as one score per study (what the platform's next case serves) ---------------------------

def _cloud(seed: int, n: int = 120, labelled: int = 8, dim: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)), rng.normal(size=(labelled, dim))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sorting_by_coreset_score_gives_the_k_center_greedy_order(seed):
    candidates, labelled = _cloud(seed)
    order = np.argsort(-coreset_scores(candidates, labelled), kind="stable")
    assert list(order) == k_center_greedy(candidates, labelled, len(candidates))


@pytest.mark.parametrize("depth", [1, 10, 60])
def test_below_the_ranked_depth_every_score_is_at_most_the_last_ranked_picks(depth):
    candidates, labelled = _cloud(3)
    score = coreset_scores(candidates, labelled, depth=depth)
    greedy = k_center_greedy(candidates, labelled, depth)
    assert list(np.argsort(-score, kind="stable")[:depth]) == greedy
    rest = np.setdiff1d(np.arange(len(candidates)), greedy)
    assert score[rest].max() <= score[greedy[-1]]
    assert np.allclose(score[rest], min_distances(candidates[rest], np.vstack([labelled, candidates[greedy]])))


def test_with_nothing_labelled_every_score_is_finite_and_the_order_is_still_greedy():
    candidates, _ = _cloud(4)
    score = coreset_scores(candidates, np.zeros((0, candidates.shape[1])))
    assert np.isfinite(score).all()
    assert list(np.argsort(-score, kind="stable")) == k_center_greedy(candidates, np.zeros((0, 6)), len(candidates))
    assert len(coreset_scores(np.zeros((0, 6)), candidates)) == 0


def test_a_near_duplicate_of_a_labelled_study_scores_last():
    labelled = np.array([[0.0, 0.0], [10.0, 0.0]])
    candidates = np.array([[10.0, 0.001], [5.0, 5.0], [0.0, 0.002], [-3.0, 1.0]])
    score = coreset_scores(candidates, labelled)
    assert set(np.argsort(score)[:2]) == {0, 2} and np.argmax(score) == 1


def test_coreset_points_add_the_sex_as_one_coordinate_and_the_platform_serves_coreset():
    points = coreset_points(np.ones((3, 4), np.float32), [True, False, None])
    assert points.shape == (3, 5) and list(points[:, -1]) == [1.0, -1.0, 0.0]
    assert NEXT_CASE_STRATEGIES == (*STRATEGIES, "coreset")


@pytest.mark.parametrize("block_values", [1 << 24, 7, 1])
def test_nearest_centre_distances_do_not_depend_on_the_block_size(block_values):
    rng = np.random.default_rng(5)
    points, centres = rng.normal(size=(40, 3)), rng.normal(size=(25, 3))
    brute = np.sqrt(((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1)).min(axis=1)
    assert np.allclose(min_distances(points, centres, block_values=block_values), brute)


def test_diverse_novelty_is_the_distance_to_the_nearest_labelled_study():
    from ml.active import novelty

    labelled = np.array([[0.0, 0.5], [4.0, -0.5]])
    assert np.allclose(novelty(np.array([[1.0, 0.5], [4.0, -0.5], [3.0, 0.5]]), labelled), [1.0, 0.0, np.sqrt(2.0)])
