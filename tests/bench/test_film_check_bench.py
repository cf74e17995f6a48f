"""The film check (ml.gate, issue 29) on new phantoms, each as rendered, inverted and turned 90° either way: how many
it reads, and how many negatives and turned films it notices (corrects or flags). PHANTOM_GATE_N phantoms of seed
PHANTOM_GATE_SEED (60 and 29011 by default; ~3 min on 2 cores), random distractors, 320 px.

    make bench PYTEST_ARGS="-k film_check_on_phantoms"
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from tests.bench.results import BenchResults

pytestmark = pytest.mark.bench
RESULTS = BenchResults("var/bench/film-check-phantoms.json", lambda: {"cpus": os.cpu_count()})


def test_film_check_on_phantoms_stored_inverted_and_turned():
    from ml.gate import check_film
    from ml.phantoms import render
    from ml.phantoms.cohort import sample_subject

    n, seed = int(os.environ.get("PHANTOM_GATE_N", "60")), int(os.environ.get("PHANTOM_GATE_SEED", "29011"))
    counts = {"stored_read": 0, "inverted_noticed": 0, "inverted_corrected": 0, "turned_left_noticed": 0,
              "turned_left_right_turn": 0, "turned_right_noticed": 0, "turned_right_right_turn": 0}
    for i in range(n):
        age, male, subject_seed = sample_subject(seed, i)
        film = render(age, male, subject_seed, size=320, distractors="random").image.astype(np.float32) / 65535.0
        counts["stored_read"] += check_film(film).verdict == "read"
        inverted = check_film(1.0 - film)
        counts["inverted_noticed"] += inverted.inverted
        counts["inverted_corrected"] += inverted.inverted and inverted.verdict == "corrected"
        for name, k, undo in (("turned_left", 1, 3), ("turned_right", 3, 1)):
            turned = check_film(np.rot90(film, k).copy())
            counts[f"{name}_noticed"] += turned.verdict != "read"
            counts[f"{name}_right_turn"] += turned.turns == undo
    record = {"phantoms": n, "seed": seed, **counts}
    print(f"\nfilm check on {n} phantoms: {record}")
    RESULTS.record("film check on phantoms", record)
    assert counts["stored_read"] >= 0.8 * n  # phantoms as rendered are read
