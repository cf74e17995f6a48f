"""ml.automask on what real films show (issue 28): light panels, film-edge strips, tilted scans, landscape films, a
second hand. Built scenes whose right answer is known by construction, then the real-look phantoms (ml.phantoms
distractors "real"). The real films themselves are a benchmark (tests/bench/test_real_films_bench.py)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from ml.automask import (
    FAINT_BEYOND_FROM,
    SOLID_PANEL,
    _cut_thin_attachments,
    _faint_tissue_beyond,
    _grow_fingertips,
    _grow_to_skin,
    _local_contrast,
    _solidity,
    _trim_edge_flare,
    automask,
    dice,
)
from ml.phantoms import render
from ml.phantoms.cohort import sample_subject


def hand_shape(h: int = 400, w: int = 320) -> np.ndarray:
    """A palm, a forearm leaving the film at the bottom, four fingers and a thumb: bool (h, w)."""
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    draw.ellipse((90, 170, 230, 300), fill=255)
    draw.rectangle((120, 260, 200, h), fill=255)
    for k, x in enumerate((95, 130, 165, 200)):
        draw.rounded_rectangle((x, 50 + 12 * abs(k - 1.5), x + 24, 220), radius=11, fill=255)
    draw.polygon([(95, 240), (40, 160), (58, 148), (120, 215)], fill=255)
    return np.asarray(canvas) > 0


def film(hand: np.ndarray, *, background: float = 0.08, tissue: float = 0.6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.where(hand, tissue, background).astype(np.float32)
    return np.clip(image + 0.01 * rng.standard_normal(hand.shape).astype(np.float32), 0, 1)


def test_a_hand_on_a_light_panel_is_masked_as_the_hand_not_the_panel():
    hand = hand_shape()
    panel = np.zeros_like(hand)
    panel[30:, 20:300] = True
    image = film(hand)
    image[panel & ~hand] = 0.35  # the scanner's light box: lighter than the film, darker than the hand
    result = automask(image)
    assert dice(result.mask, hand) >= 0.9
    assert (result.mask > 0).sum() < 0.7 * panel.sum()


def test_a_strip_along_the_film_edge_that_touches_the_forearm_is_cut_off():
    hand = hand_shape()
    image = film(hand)
    image[-6:, :] = 0.6  # a bright film-edge strip, joined to the forearm where it leaves the film
    mask = automask(image).mask > 0
    assert not mask[-3:, :60].any() and not mask[-3:, -60:].any()
    assert dice(mask, hand) >= 0.9


def test_thin_attachments_are_cut_where_they_meet_the_hand_and_the_fingers_stay():
    hand = hand_shape()
    with_frame = hand.copy()
    with_frame[-5:, :] = True  # a frame strip along the bottom edge
    with_frame[:, :4] = True   # and up the left edge
    cut = _cut_thin_attachments(with_frame)
    assert dice(cut, hand) >= 0.97
    assert cut[60:120].sum() == hand[60:120].sum()  # the finger rows are untouched


def faint_tissue_film(hand: np.ndarray, tissue: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Bright bones inside faint soft tissue on a clipped black background (one site's real films): (image, bones)."""
    bones = ndimage.binary_erosion(hand, iterations=9)
    rng = np.random.default_rng(0)
    image = np.where(bones, 0.6, np.where(hand, tissue, 0.0)).astype(np.float32)
    image = np.clip(image + 0.004 * rng.standard_normal(hand.shape).astype(np.float32), 0, 1)
    image[image < 0.01] = 0.0
    return image, bones


def test_a_hand_whose_soft_tissue_is_faint_beside_bright_bones_is_masked_to_the_skin_line():
    hand = hand_shape()
    image, _ = faint_tissue_film(hand)
    result = automask(image)
    assert dice(result.mask, hand) >= 0.95  # the bones alone score 0.7 against the hand
    assert result.details["grown_to_skin"] > 1.5


def test_the_lowest_skin_levels_are_tried_on_a_black_background_only():
    hand = hand_shape()
    image, bones = faint_tissue_film(hand)
    black = _grow_to_skin(image, ndimage.gaussian_filter(image, 1.0), (bones, 0.9, {}, 1.0, 3, 2), np.zeros_like(hand))
    assert black is not None and black[2]["skin_level"] < 0.2  # on the film's black any grey is tissue
    panel = np.clip(image * 0.7 + 0.3, 0, 1)  # the same hand on a grey panel, the film's black around it
    panel[:12], panel[:, :12], panel[:, -12:] = 0.0, 0.0, 0.0
    lighter = np.zeros_like(hand)
    lighter[20:62, 60:260] = True  # a slightly lighter part of the panel that the fingertips reach
    panel[lighter & ~hand] = 0.35
    grey = _grow_to_skin(panel, ndimage.gaussian_filter(panel, 1.0), (bones, 0.9, {}, 1.0, 3, 2), np.zeros_like(hand))
    assert grey is not None and grey[2]["skin_level"] >= 0.2
    assert (grey[0] & lighter & ~hand).sum() <= 0.1 * (lighter & ~hand).sum()  # the panel stays out


def test_growth_along_the_films_edge_is_refused_as_the_backgrounds_own_gradient():
    hand = hand_shape()
    image, _ = faint_tissue_film(hand)
    rows = np.arange(hand.shape[0], dtype=np.float32)[:, None]
    image = np.maximum(image, np.where(rows > 340, 0.3 * (rows - 340) / 60, 0.0))  # the heel effect along the bottom
    bright = np.zeros_like(hand)
    grown = _grow_to_skin(image, ndimage.gaussian_filter(image, 1.0), (hand, 0.9, {}, 1.0, 3, 2), bright)
    assert grown is None  # the right mask stays as it is


def test_a_film_edge_strip_reached_through_a_fingertip_is_not_grown_into():
    hand = hand_shape()
    image, bones = faint_tissue_film(hand)
    image[:45, :] = 0.3  # a bright strip along the top edge, touching the middle finger's tip
    image[40:60, 130:150] = 0.3
    smooth = ndimage.gaussian_filter(image, 1.0)
    grown = _grow_to_skin(image, smooth, (bones | (hand & (np.arange(400)[:, None] > 330)), 0.9, {}, 1.0, 3, 2),
                          np.zeros_like(hand))
    assert grown is None or not grown[0][:30].any()


def small_hand() -> np.ndarray:
    """hand_shape on a larger film (560 × 448): its fingers 4 % of the film's long side wide, as on real films."""
    return np.pad(hand_shape(), ((160, 0), (64, 64)))


def faint_fingertips_film(hand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A hand on a grey panel that darkens towards the top (the heel effect), its fingertips (the top 90 px of the
    film's fingers) barely lighter than the panel beside them: (image, the hand without its fingertips)."""
    rows = np.arange(hand.shape[0], dtype=np.float32)[:, None]
    panel = 0.30 + 0.10 * rows / hand.shape[0]
    tips = hand & (rows < 300) & (np.arange(hand.shape[1])[None, :] > 154)
    image = np.where(tips, panel + 0.06, np.where(hand, 0.7, panel)).astype(np.float32)
    image = np.clip(image + 0.004 * np.random.default_rng(1).standard_normal(hand.shape).astype(np.float32), 0, 1)
    return image, hand & ~tips


def test_faint_fingertips_beside_a_mask_that_stopped_short_are_added_to_it():
    hand = small_hand()
    image, short = faint_fingertips_film(hand)
    smooth = ndimage.gaussian_filter(image, 1.0)
    field = np.ones_like(hand)
    local = _local_contrast(smooth, short, field)
    grown = _grow_fingertips(short, field, local)
    assert dice(short, hand) < 0.93 <= dice(grown, hand)
    assert not (grown & ~ndimage.binary_dilation(hand, iterations=3)).any()  # nothing of the panel


def test_a_frame_line_touching_a_fingertip_is_not_grown_into():
    hand = small_hand()
    image, _ = faint_fingertips_film(hand)
    image[208:212, 84:364] = 0.75  # a cassette frame's bright line across the middle finger's tip
    smooth = ndimage.gaussian_filter(image, 1.0)
    field = np.ones_like(hand)
    grown = _grow_fingertips(hand, field, _local_contrast(smooth, hand, field))
    assert not grown[206:214, 84:144].any() and not grown[206:214, 304:364].any()


def test_a_mask_that_stopped_short_of_faint_fingertips_shows_tissue_beyond_it():
    hand = small_hand()
    image, short = faint_fingertips_film(hand)
    smooth = ndimage.gaussian_filter(image, 1.0)
    field = np.ones_like(hand)
    beyond_short = _faint_tissue_beyond(short, _local_contrast(smooth, short, field))
    beyond_hand = _faint_tissue_beyond(hand, _local_contrast(smooth, hand, field))
    assert beyond_hand < FAINT_BEYOND_FROM  # below where the quality starts to be lowered
    assert beyond_short > FAINT_BEYOND_FROM + 0.04  # lowered by more than half the penalty


def test_a_frame_line_joined_to_the_forearm_at_the_films_edge_is_trimmed_and_a_tilted_forearm_kept():
    hand = hand_shape()
    with_line = hand.copy()
    with_line[-7:, 60:300] = True  # a panel's bright border, 7 px tall, joined to the forearm where it leaves
    trimmed = _trim_edge_flare(with_line)
    assert trimmed[-7:].sum(1).max() <= hand[-7:].sum(1).max() + 8
    assert (trimmed & ~with_line).sum() == 0 and dice(trimmed, hand) >= 0.99
    tilted = np.zeros((400, 320), bool)
    rows = np.arange(400)[:, None]
    tilted[(np.arange(320)[None, :] > 100 + 0.5 * rows) & (np.arange(320)[None, :] < 170 + 0.5 * rows)] = True
    assert (_trim_edge_flare(tilted) == tilted).all()  # a forearm leaving the film at 27°


def test_a_film_scanned_tilted_onto_a_black_canvas_is_masked_inside_the_film():
    hand = hand_shape()
    image = film(hand, background=0.2)
    tilted = np.asarray(Image.fromarray(image, mode="F").rotate(18, Image.Resampling.BILINEAR, expand=True,
                                                                 fillcolor=0.0))
    truth = np.asarray(Image.fromarray(hand.astype(np.uint8) * 255).rotate(18, Image.Resampling.NEAREST,
                                                                            expand=True, fillcolor=0)) > 0
    assert dice(automask(tilted).mask, truth) >= 0.9


def test_a_landscape_film_is_masked_like_the_upright_one():
    hand = hand_shape()
    upright = automask(film(hand)).mask
    turned = automask(np.rot90(film(hand)).copy()).mask
    assert dice(np.rot90(upright), turned) >= 0.95


def test_a_filled_rectangle_is_not_scored_as_a_good_hand():
    image = np.full((400, 320), 0.08, np.float32)
    image[60:340, 50:270] = 0.6
    result = automask(image)
    assert result.quality < 0.75  # the threshold below which a labeler checks the mask first


def test_solidity_tells_a_hand_from_a_panel():
    panel = np.zeros((400, 320), bool)
    panel[30:380, 20:300] = True
    assert _solidity(hand_shape()) < SOLID_PANEL < _solidity(panel)


@pytest.fixture(scope="module")
def real_look() -> list:
    """24 phantoms with real films' look (fixed seeds): panels, grain, tilts, landscape films, second hands."""
    out = []
    for i in range(24):
        age, male, seed = sample_subject(77, i)
        out.append(render(age, male, seed, size=320, distractors="real"))
    return out


def test_real_look_phantoms_carry_what_real_films_show(real_look):
    looks = [ph.meta["film_look"] for ph in real_look]
    assert any("panel" in look for look in looks)
    assert any("tilt_deg" in look or "rot90" in look for look in looks)
    assert any(d["kind"] == "second_hand" for ph in real_look for d in ph.meta["distractors"])
    for ph in real_look:  # the mask moves with the image
        assert ph.mask.shape == ph.image.shape and ph.mask.any()


def test_the_automask_holds_on_most_real_look_phantoms_and_its_quality_flags_the_rest(real_look):
    results = [automask(ph.image) for ph in real_look]
    scores = np.array([dice(r.mask, ph.mask) for r, ph in zip(results, real_look)])
    quality = np.array([r.quality for r in results])
    assert np.median(scores) >= 0.9, scores.round(2)
    # a poor mask scores lower than a good one on average: the quality score orders them
    assert quality[scores < 0.85].mean() < quality[scores >= 0.85].mean()
