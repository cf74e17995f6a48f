"""The promotion gate: a candidate is promoted only when it is better on the same held-out studies by a margin
its bootstrap interval supports, on enough studies."""
from __future__ import annotations

import numpy as np
import pytest
from boneage.modeling.gate import GatePolicy, decide

POLICY = GatePolicy(min_held_out=20, confidence=0.9, min_gain_months=0.0)
ACTIVE = np.random.default_rng(1).gamma(2.0, 5.0, size=40)  # the active model's absolute errors, months


def test_a_clearly_better_candidate_passes_with_an_interval_above_zero():
    decision = decide(ACTIVE * 0.6, ACTIVE, POLICY, candidate_name="v2", active_name="v1")
    assert decision.passed and decision.reason == "better"
    assert decision.interval_months[0] > 0 and decision.mean_gain_months > 0
    assert decision.summary.startswith("better: on 40 held-out studies v2")


def test_an_equal_candidate_the_start_weights_kept_is_not_promoted():
    decision = decide(ACTIVE.copy(), ACTIVE, POLICY, candidate_name="v2", active_name="v1")
    assert not decision.passed and decision.reason == "not_better"
    assert decision.mean_gain_months == 0 and decision.interval_months == (0.0, 0.0)
    assert decision.summary.startswith("no improvement, kept v1")


def test_a_worse_candidate_is_not_promoted():
    decision = decide(ACTIVE * 1.3, ACTIVE, POLICY, candidate_name="v2", active_name="v1")
    assert not decision.passed and decision.reason == "not_better" and decision.interval_months[1] < 0


def test_a_slightly_better_but_noisy_candidate_is_not_promoted():
    active = ACTIVE + 20.0  # errors far from zero: the per-study gains are the noise, not the |·|
    noise = np.random.default_rng(2).normal(0, 6.0, size=40)
    decision = decide(active - 0.2 - (noise - noise.mean()), active, POLICY)
    assert not decision.passed and decision.interval_months[0] <= 0 <= decision.interval_months[1]


def test_a_better_candidate_on_too_few_held_out_studies_is_not_promoted():
    decision = decide(ACTIVE[:12] * 0.5, ACTIVE[:12], POLICY, active_name="v1")
    assert not decision.passed and decision.reason == "too_few_held_out"
    assert "only 12 held-out studies, the gate needs 20; kept v1" in decision.summary


def test_the_margin_setting_raises_the_bar():
    decision = decide(ACTIVE * 0.9, ACTIVE, GatePolicy(min_held_out=20, min_gain_months=5.0))
    assert decision.mean_gain_months > 0 and not decision.passed


def test_the_first_model_passes_and_the_decision_replays_with_the_same_seed():
    assert decide(ACTIVE, None, POLICY).reason == "first_model"
    assert decide(ACTIVE * 0.9, ACTIVE, POLICY, seed=5) == decide(ACTIVE * 0.9, ACTIVE, POLICY, seed=5)


def test_unpaired_errors_are_refused():
    with pytest.raises(ValueError, match="same studies"):
        decide(ACTIVE[:30], ACTIVE, POLICY)
