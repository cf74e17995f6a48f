"""ml.gate: films the platform should not read as they are, judged from the automask (issue 29). Phantoms whose right
answer is known by construction: the plain film reads, its negative is inverted, its turned copy says which way,
a blank film is refused, noise has no hand outline."""
from __future__ import annotations

import numpy as np
import pytest

from ml.automask import automask
from ml.gate import FilmCheck, check_film, fingers_side, forearm_side, hand_evidence
from ml.phantoms import render
from ml.phantoms.cohort import sample_subject


@pytest.fixture(scope="module")
def films() -> list[np.ndarray]:
    out = []
    for i in range(4):
        age, male, seed = sample_subject(5, i)
        out.append(render(age, male, seed, size=320).image.astype(np.float32) / 65535.0)
    return out


def test_a_plain_hand_film_is_read_as_it_is(films):
    for film in films:
        check = check_film(film)
        assert check.verdict == "read" and not check.reasons and check.turns == 0


def test_a_film_on_its_side_or_upside_down_is_turned_fingers_up(films):
    for film in films:
        for k in (1, 2, 3):
            check = check_film(np.rot90(film, k).copy())
            assert check.turns == (4 - k) % 4, (k, check)
            assert check.verdict in ("corrected", "flagged") and "fingers-up" in check.reason
            if check.verdict == "corrected":
                assert np.array_equal(check.corrected(np.rot90(film, k).copy()), film)


def test_a_negative_is_found_by_the_outline_its_inverse_gives(films):
    found = [check_film(1.0 - film) for film in films]
    assert sum(c.inverted for c in found) >= 3  # measured: 10 of 12 corrected, 1 flagged (docs/real-films.md)
    for check in found:
        if check.inverted:
            assert "inverted" in check.reason and check.verdict in ("corrected", "flagged")


def test_a_blank_film_is_refused_and_noise_has_no_hand_outline():
    blank = check_film(np.full((300, 220), 0.4, np.float32))
    assert blank.verdict == "refused" and blank.reason.startswith("a blank film")
    noise = check_film(np.random.default_rng(0).random((300, 220)).astype(np.float32))
    assert noise.verdict == "flagged" and "no hand outline found" in noise.reason


def test_the_forearm_side_is_the_one_border_the_mask_meets():
    mask = np.zeros((100, 80), bool)
    mask[30:100, 30:50] = True  # an arm from the bottom edge
    assert forearm_side(mask)[0] == "bottom"
    assert forearm_side(np.rot90(mask))[0] == "right"
    mask[0:10, 30:50] = True  # and a strip at the top: two sides, nothing is claimed
    assert forearm_side(mask)[0] is None


def open_hand_mask() -> np.ndarray:
    """A palm with a forearm below it and four fingers and a thumb above: rows across the fingers cross five runs."""
    mask = np.zeros((200, 160), bool)
    mask[120:200, 55:105] = True     # the forearm, leaving at the bottom
    mask[70:130, 35:125] = True      # the palm
    for x in (38, 58, 78, 98):       # four fingers
        mask[10:72, x:x + 12] = True
    mask[60:100, 125:150] = True     # the thumb
    return mask


def test_the_fingers_side_is_where_rows_cross_the_most_fingers():
    mask = open_hand_mask()
    assert fingers_side(mask)[0] == "top"
    assert fingers_side(np.rot90(mask, 1))[0] == "left"   # np.rot90 turns counter-clockwise: the top goes left
    assert fingers_side(np.rot90(mask, 2))[0] == "bottom"
    assert fingers_side(np.rot90(mask, 3))[0] == "right"
    block = np.zeros((200, 160), bool)
    block[40:160, 40:120] = True      # no fingers anywhere: no side is claimed
    assert fingers_side(block)[0] is None


def test_a_hand_outline_is_evidence_only_where_it_is_brighter_than_around_it(films):
    for film in films:
        result = automask(film)
        assert hand_evidence(film, result) >= 0.7
        # the same outline on the negative: Canny's edges are the same, the grey inside is darker than around
        assert hand_evidence(1.0 - film, result) == 0.0


def test_a_check_says_itself_in_words_for_the_platform():
    check = FilmCheck("flagged", ("one", "two"), turns=1, forearm_side="left", quality=0.5)
    assert check.to_dict() == {"verdict": "flagged", "reason": "one; two", "inverted": False, "turns": 1,
                               "forearm_side": "left", "quality": 0.5}
