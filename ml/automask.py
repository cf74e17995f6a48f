"""The paper's Canny hand masks: histogram normalisation → Canny → closing → fill holes → keep the hand → smooth.

Wu, Kong et al. segment the training hands "using the Canny edge detector on histogram normalized
images"; this is that recipe, made robust to what real films carry (collimation, bright frame edges,
tags, a second hand) with every parameter derived from the image itself (its size, noise level and
histogram), never tuned per image:

1. work on a copy whose long side is ``WORK_SIDE`` px (so the cost is flat whatever the film size);
2. find collimated / frame-edge bands (rows or columns at the border that are almost entirely bright)
   and treat them as background;
3. remove the exposure gradient (quadratic fit to the background mode), normalise the histogram (stretch
   the field's 0.5–99.5 percentiles; plain equalisation squeezes the sparse skin-line grey levels and
   Canny then loses the skin), Canny with a σ that grows with the estimated noise, quantile thresholds;
4. close the edge map with a disk proportional to the image size;
5. "fill holes": background is what can be reached from the dark part of the border without crossing
   an edge or bright tissue (the film border closes the contour where the forearm leaves the image);
6. keep the largest component (one hand per film; a partial second hand is dropped);
7. smooth (opening, Gaussian, threshold), fill holes again;
8. where the mask stopped at the bones' edges (faint soft tissue beside bright bone), grow it out to the skin line
   against the grey that surrounds it (`_grow_to_skin`);
9. add the faint fingertips that stand out of their own surroundings (a white top-hat, `_grow_fingertips`), trim
   the strip a frame line adds where the forearm leaves the film (`_trim_edge_flare`), score the mask (a ring of
   tissue just outside it lowers the score), then resize back.

``automask(image)`` returns the mask (uint8 0/255), a quality score in [0, 1] and timings.
CLI: ``python -m ml.automask IN_DIR OUT_DIR`` and ``python -m ml.automask --evaluate ...``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

WORK_SIDE = 512
# Bumped whenever the masks change: caches of masks (ml.data.automask_cached) are keyed by it.
VERSION = 6
GROW = 0.5  # hysteresis: from the background, the share of the way to the level a fingertip must reach (0.3 on 50
# grey-panel train films: 3 masks fixed, 4 new leaks)
# Growing to the skin line (_grow_to_skin): the shares of the way from the surrounding grey to the mask's median that
# tissue must reach, lowest first, and the share of a grown outline that may run along the field's edge (a hand's
# forearm: p95 0.09 on 100 train films). The lowest level whose growth is still a hand wins: 0.05 and 0.1 reach the
# soft tissue of fingers on a clipped black background (bones-only masks on 4 of 192 train-part films); where they
# leak into a heel-effect gradient the guards refuse them and a higher level is tried. They are tried only where the
# grey around the mask is the film's black (at most BLACK_GREY): on a grey panel they took the panel (2 test-part films
# of VERSION 4; on the 192 train-part films it changed one mask, a failure either way).
SKIN_LEVELS = (0.05, 0.1, 0.2, 0.3, 0.4)
BLACK_GREY = 0.02
EDGE_GROWTH = 0.1
# How much a ring of tissue just outside the mask lowers its quality (at 40 % of the ring and above): enough to put a
# mask that cut fingers off or took a panel's strip below the worklist's check level (0.75) from ~0.9.
BEYOND_PENALTY = 0.35
# Fingertips fainter than every fixed level (_grow_fingertips, _faint_tissue_beyond): the top-hat's square is twice
# FINGER_WIDTH px wide at 512 px (a finger is ~20); tissue is FINGERTIP_NOISE spreads and a share of the mask's
# contrast above the top-hat's background: FINGERTIP_LEVEL to grow into (on 192 train-part films: 9 masks fixed, no
# new leak), FAINT_BEYOND_LEVEL for the quality's ring, which lowers the quality from FAINT_BEYOND_FROM of the ring
# (good masks: up to ~0.08; masks that missed fingertips or took a panel: 0.07–0.2).
FINGER_WIDTH = 14
FINGERTIP_NOISE = 6.0
FINGERTIP_LEVEL = 0.04
FINGERTIP_THIN = 25.0
FAINT_BEYOND_LEVEL = 0.08
FAINT_BEYOND_FROM = 0.06
EDGE_FLARE = 0.05


@dataclass
class AutomaskResult:
    mask: np.ndarray  # uint8 (H, W), 0/255, same shape as the input
    quality: float  # [0, 1]: edge support × contrast × plausible area × dominance of the kept component
    timings: dict = field(default_factory=dict)  # seconds per step
    details: dict = field(default_factory=dict)  # the derived parameters and quality terms


def _as_2d(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] in (1, 3, 4):  # grey/RGB(A) as H×W×C: luminance
        a = a[..., :3].astype(np.float32).mean(-1) if a.shape[-1] >= 3 else a[..., 0]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"expected a 2-D image, got shape {np.shape(image)}")
    if a.dtype == bool:
        a = a.astype(np.float32)
    return a


def _to_unit(image: np.ndarray) -> np.ndarray:
    a = _as_2d(image).astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros_like(a, dtype=np.float32)
    return (a - lo) / (hi - lo)


def _resize(a: np.ndarray, shape: tuple[int, int], resample=Image.Resampling.BILINEAR) -> np.ndarray:
    img = Image.fromarray(a.astype(np.float32, copy=False), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), resample), dtype=np.float32)


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    hist = hist.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between))])


def _disk(r: int) -> np.ndarray:
    r = max(int(r), 1)
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return (x * x + y * y) <= r * r + r * 0.5


def _collimated(small: np.ndarray, thresh: float) -> np.ndarray:
    """Border bands (rows/columns from each edge) that are almost entirely bright: collimator or film edge."""
    h, w = small.shape
    out = np.zeros((h, w), bool)
    bright = small > thresh
    row_frac, col_frac = bright.mean(1), bright.mean(0)

    def depth(seq: np.ndarray) -> int:
        k = 0
        while k < len(seq) // 3 and seq[k] >= 0.6:
            k += 1
        return k + 2 if k else 0  # + the penumbra

    if k := depth(row_frac):
        out[:k, :] = True
    if k := depth(row_frac[::-1]):
        out[h - k:, :] = True
    if k := depth(col_frac):
        out[:, :k] = True
    if k := depth(col_frac[::-1]):
        out[:, w - k:] = True
    return out


def _blank_canvas(small: np.ndarray) -> np.ndarray:
    """The constant canvas a film was scanned or rotated onto: pixels at the image's very minimum, connected to its
    border, over more than 2 % of it. A film's own dark background has noise and never sits at one value over such an
    area (0–0.1 % of 300 real films); a tilted scan's canvas covers 40 %+. Treated like a collimator: not the field."""
    flat = small <= float(small.min()) + 1.0 / 255.0
    lab, n = ndimage.label(flat)
    if not n:
        return np.zeros_like(flat)
    on_border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    canvas = np.isin(lab, on_border[on_border > 0])
    if canvas.mean() < 0.02:
        return np.zeros_like(flat)
    return ndimage.binary_dilation(canvas, iterations=2)


def _bg_mode(vals: np.ndarray) -> tuple[float, float]:
    """(level, spread) of the background: the histogram's dominant mode and the MAD of the pixels below it."""
    lo, hi = float(np.quantile(vals, 0.001)), float(np.quantile(vals, 0.95))
    hist, edges = np.histogram(vals, bins=160, range=(lo, max(hi, lo + 1e-3)))  # float32: 1e-6 is no width
    hist = ndimage.uniform_filter1d(hist.astype(np.float64), 3)
    i = int(np.argmax(hist))
    mode = float((edges[i] + edges[i + 1]) / 2)
    below = vals[vals < mode]
    spread = 1.4826 * float(np.median(mode - below)) if below.size > 10 else float(edges[1] - edges[0])
    return mode, max(spread, float(edges[1] - edges[0]))


def _background_trend(smooth: np.ndarray, coll: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Quadratic surface through the background, removed before thresholding (heel effect, vignetting).

    Background samples: the film's outer strip (mostly air; the forearm and any finger tips there are
    rejected as upper outliers of the fit) plus pixels near the dominant dark mode of the residual;
    refitted on the residual a few times.
    """
    h, w = smooth.shape
    step = max(1, max(h, w) // 128)
    sub = smooth[::step, ::step]
    csub = coll[::step, ::step]
    yy, xx = np.mgrid[0:h:step, 0:w:step].astype(np.float32)
    yy, xx = yy / h - 0.5, xx / w - 0.5
    basis = np.stack([np.ones_like(xx), xx, yy, xx * xx, yy * yy, xx * yy], -1)
    sh, sw = sub.shape
    k = max(2, int(0.06 * max(sh, sw)))
    strip = np.zeros_like(csub)
    strip[:k, :] = strip[-k:, :] = True
    strip[:, :k] = strip[:, -k:] = True
    if csub.any():  # with a collimator, the band just inside the exposed field too
        strip |= ndimage.binary_dilation(csub, iterations=k)
    strip &= ~csub
    coef = np.zeros(6, np.float64)
    trend_sub = np.zeros_like(sub)
    use = strip.copy()
    for _ in range(iterations + 1):  # strip only, rejecting bright outliers (tissue reaching the edge)
        if use.sum() < 12:
            break
        coef, *_ = np.linalg.lstsq(basis[use], sub[use], rcond=None)
        trend_sub = (basis @ coef).astype(np.float32)
        res = sub - trend_sub
        med = float(np.median(res[use]))
        mad = 1.4826 * float(np.median(np.abs(res[use] - med))) + 1e-6
        # asymmetric: tissue on the border is brighter; black tag boxes are darker than any background
        use = strip & (res < med + 1.5 * mad) & (res > med - 3.0 * mad)
    for _ in range(iterations):  # then the whole field's dark mode too
        res = sub - trend_sub
        mode, spread = _bg_mode(res[~csub])
        bg = ((np.abs(res - mode) < 3.0 * spread) | use) & ~csub
        if bg.sum() < 30:
            break
        coef, *_ = np.linalg.lstsq(basis[bg], sub[bg], rcond=None)
        trend_sub = (basis @ coef).astype(np.float32)
    Y = (np.arange(h, dtype=np.float32)[:, None] / h - 0.5)
    X = (np.arange(w, dtype=np.float32)[None, :] / w - 0.5)
    c = coef.astype(np.float32)
    return c[1] * X + c[2] * Y + c[3] * X * X + c[4] * Y * Y + c[5] * X * Y  # the mean level stays


def _segment(small: np.ndarray, smooth: np.ndarray, trend: np.ndarray, coll: np.ndarray, field_px: np.ndarray,
             noise: float, hs: int, ws: int, t: dict) -> tuple:
    """Steps 3–7 on the work-size image for one background model; returns (mask, quality, terms, σ, r_c, r_o)."""
    from skimage import feature

    detr = smooth - trend
    vals = detr[field_px]
    bg_mode, bg_spread = _bg_mode(vals)
    v_hi = float(np.quantile(vals, 0.995))
    # "clearly brighter than the background": 5 spreads above it, or 6% of the way to the brightest tissue
    t_pass = bg_mode + max(5.0 * bg_spread, 0.06 * (v_hi - bg_mode))
    bg_med = bg_mode
    work = small - trend
    work[coll] = bg_med
    t1 = time.perf_counter()
    # histogram normalisation: stretch the exposed field's 0.5–99.5 percentiles to [0, 1]
    p_lo, p_hi = np.quantile(work[field_px][::3], [0.005, 0.995])
    eq = np.clip((work - p_lo) / max(float(p_hi - p_lo), 1e-6), 0.0, 1.0).astype(np.float32)
    sigma = float(np.clip(1.2 + 40.0 * noise, 1.2, 3.5)) * max(hs, ws) / WORK_SIDE
    edges = feature.canny(eq, sigma=sigma, low_threshold=0.80, high_threshold=0.92, use_quantiles=True)
    # the exposed field's boundary acts as the film border (collimator edges are not hand edges)
    frame = np.zeros_like(coll)
    frame[0, :] = frame[-1, :] = True
    frame[:, 0] = frame[:, -1] = True
    if coll.any():
        # the collimator's penumbra (blurred bright rim) is a few px wide: seed beyond it, ignore its edges
        rim = ndimage.binary_dilation(coll, iterations=max(4, round(0.02 * max(hs, ws))))
        frame |= rim
        edges &= ~rim
    t["canny"] = t.get("canny", 0.0) + time.perf_counter() - t1

    t1 = time.perf_counter()
    r_close = max(2, round(0.006 * max(hs, ws)))
    closed = ndimage.binary_closing(edges, structure=_disk(r_close), border_value=0)
    # background = reachable from the border without crossing an edge or clearly-brighter-than-background tissue
    passable = (~closed & (detr < t_pass)) | coll
    lab, n = ndimage.label(passable)
    seeds = np.unique(lab[frame & passable])
    seeds = seeds[seeds > 0]
    background = np.isin(lab, seeds)
    filled = ~background & field_px
    t["fill"] = t.get("fill", 0.0) + time.perf_counter() - t1

    t1 = time.perf_counter()
    r_open = max(1, round(0.004 * max(hs, ws)))
    filled = ndimage.binary_opening(filled, structure=_disk(r_open))
    lab, n = ndimage.label(filled)
    if n:
        sizes = ndimage.sum_labels(filled, lab, index=np.arange(1, n + 1))
        keep_ids = np.array([int(np.argmax(sizes)) + 1])  # one hand per film: the largest component
        kept = np.isin(lab, keep_ids)
        dominance = float(sizes[keep_ids - 1].sum() / sizes.sum())
    else:
        kept = filled
        dominance = 0.0
    soft = ndimage.gaussian_filter(kept.astype(np.float32), 1.0 + r_open)
    kept = _cut_thin_attachments(ndimage.binary_fill_holes(soft > 0.5))
    # the skin line is faint (thin tissue at the edge): grow into adjacent pixels above a low threshold
    t_low = bg_mode + 2.5 * bg_spread
    kept = ndimage.binary_dilation(kept, iterations=max(1, r_open), mask=(detr > t_low) & field_px) | kept
    t["components"] = t.get("components", 0.0) + time.perf_counter() - t1

    t1 = time.perf_counter()
    grad = np.hypot(ndimage.sobel(detr, 0), ndimage.sobel(detr, 1))
    strong = grad > 8.0 * max(bg_spread, 1e-4)
    quality, terms = _quality(small, kept, edges | strong, coll, dominance)
    return kept, quality, terms, sigma, r_close, r_open


def _threshold_inside(small: np.ndarray, smooth: np.ndarray, panel: np.ndarray, params: tuple,
                      level: float | None = None) -> tuple:
    """Inside a light panel the hand is the brighter of two greys: Otsu's threshold over the panel (or `level`), the
    largest component, holes filled, thin attachments cut (the other candidate when Canny's edges follow the panel's
    grain, or find only part of a faint hand)."""
    values = smooth[panel]
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros_like(panel), 0.0, {}, *params
    if level is None:
        level = lo + (hi - lo) * _otsu((values - lo) / (hi - lo))
    bright = ndimage.binary_opening((smooth > level) & panel, structure=_disk(2))
    lab, n = ndimage.label(bright)
    if not n:
        return bright, 0.0, {}, *params
    sizes = ndimage.sum_labels(bright, lab, index=np.arange(1, n + 1))
    kept = lab == int(np.argmax(sizes)) + 1
    # hysteresis: finger tips and the skin line are fainter than the palm; grow into what is brighter than halfway
    # from the background below the level to the level
    background = float(np.median(values[values < level])) if (values < level).any() else lo
    grow = (smooth > background + GROW * (level - background)) & panel
    kept = ndimage.binary_propagation(kept, mask=grow | kept)
    kept = _cut_thin_attachments(ndimage.binary_fill_holes(ndimage.binary_opening(kept, structure=_disk(2))))
    grad = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1))
    edges = grad > np.quantile(grad[panel], 0.9)
    quality, terms = _quality(small, kept, edges, ~panel, float(sizes.max() / sizes.sum()))
    return kept, quality, {**terms, "inside_panel": "otsu"}, *params


def _grow_to_skin(small: np.ndarray, smooth: np.ndarray, best: tuple, bright: np.ndarray) -> tuple | None:
    """The candidate grown out to the skin line where it stopped at the bones' edges, else None.

    On films whose soft tissue is faint next to bright bone, Canny's strongest closed contours and a field's grey
    classes can follow the bones (the field's own grey taken for background, or a clipped black background taken
    for a scan's canvas). The background is then what surrounds the candidate: the dominant grey of a ring 20–60 px
    (at 512 px) around it. The mask grows, by hysteresis from the candidate, into what is clearly brighter than that:
    5 spreads and `SKIN_LEVELS` of the way to the candidate's median, the lowest level whose growth is a hand (on a
    light panel the lowest levels take the panel). Outside bright collimator bands. The grown mask is kept only when
    it is larger by a tenth or more, stays a hand's shape (not a panel, not along the film's edge) and scores about as
    well."""
    kept, quality = best[0], best[1]
    area = int(kept.sum())
    if area < 64:
        return None
    scale = max(kept.shape) / WORK_SIDE
    surround = _surrounding_grey(smooth, kept, ~bright)
    if surround is None:
        return None
    background, spread, inside = surround
    if inside <= background:
        return None
    edge_before = _edge_fraction(kept, ~bright)
    for share in SKIN_LEVELS if background <= BLACK_GREY else SKIN_LEVELS[2:]:
        level = background + max(5.0 * spread, share * (inside - background))
        grown = ndimage.binary_propagation(kept, mask=((smooth > level) & ~bright) | kept)
        grown = ndimage.binary_fill_holes(ndimage.binary_opening(grown, structure=_disk(max(1, round(2 * scale)))))
        grown = _cut_thin_attachments(grown)
        if grown.sum() < 1.1 * area:
            return None  # higher levels grow less still
        # a hand meets the film's edge only where the forearm leaves it: growth that runs along the edge is the
        # background's own exposure gradient (the heel effect) or a panel, not skin
        if grown.sum() <= 5.0 * area and not _panel_like(grown, ~bright) \
                and _edge_fraction(grown, ~bright) <= max(edge_before + 0.03, EDGE_GROWTH) \
                and not _new_edge_contact(kept, grown, ~bright):
            break
    else:
        return None
    grad = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1))
    edges = grad > np.quantile(grad[~bright], 0.9)
    grown_quality, terms = _quality(small, grown, edges, bright, 1.0)
    if grown_quality < quality - 0.1:
        return None
    return grown, grown_quality, {**terms, "grown_to_skin": round(float(grown.sum() / area), 3),
                                  "skin_level": share}, *best[3:]


@dataclass(frozen=True)
class _LocalContrast:
    """What stands out of its own surroundings near a mask: the white top-hat (the image minus its grey opening by a
    square wider than a finger), whose background level and noise are read 8–40 px (at 512 px) around the mask."""

    tophat: np.ndarray
    reach: np.ndarray   # within 40 px of the mask, inside the field: where fingertips may be added
    background: float   # the top-hat's median there
    noise: float        # its robust spread there
    inside: float       # the mask's median above the grey around it

    def level(self, share: float) -> float:
        return self.background + max(FINGERTIP_NOISE * self.noise, share * self.inside)


def _local_contrast(smooth: np.ndarray, kept: np.ndarray, field_px: np.ndarray) -> _LocalContrast | None:
    """The local contrast around `kept`, or None where the mask or the grey around it is too small to tell. The grey
    opening removes what is narrower than a finger (fingertips, the skin's rim) and keeps wider things (a light
    panel, a film's edge, the heel effect's gradient), so a faint fingertip stands out where a fixed grey level does
    not."""
    if kept.sum() < 64:
        return None
    scale = max(kept.shape) / WORK_SIDE
    reach = ndimage.binary_dilation(kept, iterations=max(2, round(40 * scale))) & field_px
    around = reach & ~ndimage.binary_dilation(kept, iterations=max(1, round(8 * scale)))
    if around.sum() < 64:
        return None
    half = round(FINGER_WIDTH * scale)
    ys, xs = np.nonzero(reach)
    y0, y1 = max(int(ys.min()) - half, 0), int(ys.max()) + half + 1
    x0, x1 = max(int(xs.min()) - half, 0), int(xs.max()) + half + 1
    box = smooth[y0:y1, x0:x1]  # the opening inside the mask's neighbourhood only: its cost grows with the box
    tophat = np.zeros_like(smooth)
    tophat[y0:y1, x0:x1] = box - ndimage.grey_opening(box, size=(2 * half + 1, 2 * half + 1))
    values = tophat[around]
    background = float(np.median(values))
    noise = 1.4826 * float(np.median(np.abs(values - background)))
    inside = float(np.median(smooth[kept])) - float(np.median(smooth[around]))
    return _LocalContrast(tophat, reach, background, noise, inside)


def _grow_fingertips(kept: np.ndarray, field_px: np.ndarray, local: _LocalContrast) -> np.ndarray:
    """`kept` with the faint fingertips (and skin) beside it that stand out locally: the parts of the top-hat above
    `FINGERTIP_LEVEL` that touch the mask, within 40 px of it, neither reaching the field's edge (a strip along the
    film's border) nor long and thin (a panel's or frame's bright line: area over `FINGERTIP_THIN` × its half-width²)."""
    scale = max(kept.shape) / WORK_SIDE
    candidate = (local.tophat > local.level(FINGERTIP_LEVEL)) & local.reach & ~kept
    parts = ndimage.binary_opening(candidate, structure=_disk(max(1, round(1.5 * scale))))
    lab, n = ndimage.label(parts)
    if not n:
        return kept
    touching = np.unique(lab[ndimage.binary_dilation(kept, iterations=2) & parts])
    edge = ~ndimage.binary_erosion(np.pad(field_px, 1), iterations=3)[1:-1, 1:-1]
    ids = np.setdiff1d(touching[touching > 0], np.unique(lab[edge & parts]))
    if ids.size:
        sizes = np.asarray(ndimage.sum_labels(parts, lab, ids))
        half_widths = np.asarray(ndimage.maximum(ndimage.distance_transform_edt(parts), lab, ids))
        ids = ids[sizes <= FINGERTIP_THIN * np.maximum(half_widths, 1.0) ** 2]
    return ndimage.binary_fill_holes(kept | np.isin(lab, ids))


def _trim_edge_flare(kept: np.ndarray) -> np.ndarray:
    """The mask without the strip it takes along a film edge where the forearm leaves the film (a frame line or a
    panel's bright border joined to the forearm there): within the last `EDGE_FLARE` of each side the mask keeps the
    columns its forearm's two borders reach, extended in straight lines from the 20 rows before (a tilted forearm
    stays whole)."""
    out = kept
    for k in range(4):  # each side in turn, brought to the bottom
        m = np.rot90(out, k).copy()
        h = m.shape[0]
        band = max(4, round(EDGE_FLARE * h))
        rows = [y for y in range(max(h - band - 20, 0), h - band) if m[y].any()]
        if m[-2:].any() and len(rows) >= 10:
            left = [int(np.argmax(m[y])) for y in rows]
            right = [m.shape[1] - 1 - int(np.argmax(m[y, ::-1])) for y in rows]
            fit_left, fit_right = np.polyfit(rows, left, 1), np.polyfit(rows, right, 1)
            cols = np.arange(m.shape[1])
            for y in range(h - band, h):
                lo, hi = float(np.polyval(fit_left, y)), float(np.polyval(fit_right, y))
                tolerance = 2 + 0.02 * max(float(hi - lo), 0.0)
                m[y] &= (cols >= lo - tolerance) & (cols <= hi + tolerance)
        out = np.rot90(m, -k)
    return out


def _faint_tissue_beyond(kept: np.ndarray, local: _LocalContrast) -> float:
    """The share of a ring 2–6 px (at 512 px) outside the mask where the local contrast says tissue: a mask that
    stopped short of faint fingertips, or took a panel beside the hand, has it where the fixed-level `_tissue_beyond`
    sees background."""
    scale = max(kept.shape) / WORK_SIDE
    ring = ndimage.binary_dilation(kept, iterations=max(1, round(6 * scale))) \
        & ~ndimage.binary_dilation(kept, iterations=max(1, round(2 * scale)))
    return float((local.tophat[ring] > local.level(FAINT_BEYOND_LEVEL)).mean()) if ring.any() else 0.0


def _tissue_beyond(smooth: np.ndarray, kept: np.ndarray, field_px: np.ndarray) -> float:
    """The share of a thin ring just outside the mask (2–6 px at 512 px) that is tissue: brighter than the surrounding
    grey (the dominant grey 20–60 px out) by 5 spreads and 30 % of the way to the mask's median. A mask that ends at
    the skin has background there (median 0, p95 0.03 on 177 good masks of train-part films); one that cut fingers
    off or took a panel's strip beside the hand has tissue or panel (0.1–1.0)."""
    if kept.sum() < 64:
        return 0.0
    scale = max(kept.shape) / WORK_SIDE
    near = ndimage.binary_dilation(kept, iterations=max(1, round(6 * scale))) \
        & ~ndimage.binary_dilation(kept, iterations=max(1, round(2 * scale))) & field_px
    surround = _surrounding_grey(smooth, kept, field_px)
    if near.sum() < 16 or surround is None:
        return 0.0
    background, spread, inside = surround
    level = background + max(5.0 * spread, 0.3 * (inside - background))
    return float((smooth[near] > level).mean())


def _surrounding_grey(smooth: np.ndarray, kept: np.ndarray, allowed: np.ndarray) -> tuple[float, float, float] | None:
    """(level, spread) of the dominant grey in a ring 20–60 px (at 512 px) around the mask, within `allowed`, and the
    mask's median; None where that ring is too small to tell."""
    scale = max(kept.shape) / WORK_SIDE
    ring = ndimage.binary_dilation(kept, iterations=max(2, round(60 * scale))) \
        & ~ndimage.binary_dilation(kept, iterations=max(1, round(20 * scale))) & allowed
    if ring.sum() < 64:
        return None
    background, spread = _bg_mode(smooth[ring])
    return background, spread, float(np.median(smooth[kept]))


def _new_edge_contact(kept: np.ndarray, grown: np.ndarray, field_px: np.ndarray) -> bool:
    """Whether `grown` meets the field's edge in more places than a hand does (once: the forearm leaving the film) and
    than `kept` did: a bright film-edge strip reached through a fingertip, not skin."""
    edge = ~ndimage.binary_erosion(np.pad(field_px, 1), iterations=3)[1:-1, 1:-1]
    return ndimage.label(grown & edge)[1] > max(1, ndimage.label(kept & edge)[1])


def _cut_thin_attachments(kept: np.ndarray) -> np.ndarray:
    """The hand without what hangs on it by a thin neck: a film-edge strip or cassette frame touching the forearm, a
    marker touching a finger. An opening with a radius of 12 % of the hand's largest inscribed circle (the palm; a
    finger is wider than that, a strip is not) finds the hand's core; the mask keeps what lies within that radius of
    the largest core, so the fingers' outline is kept and the strips are cut where they meet it."""
    if not kept.any():
        return kept
    radius = int(np.clip(0.12 * float(ndimage.distance_transform_edt(kept).max()), 2, 12))
    core = _dilate_disk(_erode_disk(kept, radius), radius)  # the opening by _disk(radius)
    lab, n = ndimage.label(core)
    if not n:
        return kept
    sizes = ndimage.sum_labels(core, lab, index=np.arange(1, n + 1))
    return kept & _dilate_disk(lab == int(np.argmax(sizes)) + 1, radius + 1)


# Erosion and dilation by _disk(r) read from a Euclidean distance transform: the same pixels as binary_erosion /
# binary_dilation with that structure (a disk is x² + y² ≤ r² + r/2), at a cost that does not grow with r (the
# morphology with a 25×25 disk was most of an automask's time once the skin growth cut attachments three times).
def _erode_disk(mask: np.ndarray, r: int) -> np.ndarray:
    pad = r + 1  # outside the image is background, as binary_erosion's border
    d = ndimage.distance_transform_edt(np.pad(mask, pad))
    return (np.rint(d * d) > r * r + r * 0.5)[pad:-pad, pad:-pad]


def _dilate_disk(mask: np.ndarray, r: int) -> np.ndarray:
    if not mask.any():
        return np.zeros_like(mask)
    d = ndimage.distance_transform_edt(~mask)
    return np.rint(d * d) <= r * r + r * 0.5


def _panel_like(kept: np.ndarray, field_px: np.ndarray) -> bool:
    """A kept region that fills most of the exposed field or follows its edges is a light panel or a tilted film (the
    hand lies inside it), not a hand: a hand meets the field's edge only where the forearm leaves the film."""
    frac = float(kept.sum() / max(field_px.sum(), 1))
    return frac > 0.6 or _edge_fraction(kept, field_px) > 0.25 or _solidity(kept) > SOLID_PANEL


# A hand's area is 45–80 % of its convex hull (fingers, the thumb's web; p95 0.80 on 300 real films), a cassette or a
# light panel's is ~100 %.
SOLID_PANEL = 0.92


def _solidity(kept: np.ndarray) -> float:
    """Area / convex-hull area of the mask (on a coarse grid: the hull of a 512-px mask costs more than the rest)."""
    from skimage.morphology import convex_hull_image

    step = max(1, max(kept.shape) // 128)
    coarse = kept[::step, ::step]
    if coarse.sum() < 16:
        return 0.0
    return float(coarse.sum() / max(convex_hull_image(coarse).sum(), 1))


def _edge_fraction(kept: np.ndarray, field_px: np.ndarray) -> float:
    """The share of the mask's outline that runs along the exposed field's edge (the film border or a collimator)."""
    boundary = kept & ~ndimage.binary_erosion(kept)
    if not boundary.any():
        return 0.0
    edge = ~ndimage.binary_erosion(np.pad(field_px, 1), iterations=3)[1:-1, 1:-1]
    return float((boundary & edge).sum() / boundary.sum())


def automask(image: np.ndarray) -> AutomaskResult:
    """Canny-based hand mask of a radiograph (any dtype, bright bone); see the module docstring."""
    t = {}
    t0 = time.perf_counter()
    raw = _as_2d(image)
    H, W = raw.shape
    f = WORK_SIDE / max(H, W)
    if f < 1.0:  # shrink first (box filter), then normalise: one pass over the full-size film
        hs, ws = max(round(H * f), 8), max(round(W * f), 8)
        small = _to_unit(_resize(raw.astype(np.float32, copy=False), (hs, ws), Image.Resampling.BOX))
    else:
        hs, ws = H, W
        small = _to_unit(raw)
    t["resize_in"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    # noise estimate (robust, from horizontal differences) → smoothing and Canny σ
    diff = np.diff(small[::2], axis=1)
    noise = float(1.4826 * np.median(np.abs(diff - np.median(diff))) / np.sqrt(2.0))
    smooth = ndimage.gaussian_filter(small, 1.0 + 2.0 * min(noise / 0.05, 1.0))
    otsu_all = _otsu(smooth)
    bright = _collimated(smooth, otsu_all + 0.5 * (float(np.quantile(smooth, 0.995)) - otsu_all))
    coll = bright | _blank_canvas(small)
    field_px = ~coll
    if field_px.sum() < 64:
        field_px = np.ones_like(coll)
        coll = ~field_px
    # flatten the exposure gradient (heel effect): fit a quadratic surface to the background and remove it
    fitted = _background_trend(smooth, coll)
    flat = np.zeros_like(smooth)
    # keep the fit only if it makes the background more uniform (tissue on the border can spoil it)
    order = [fitted, flat] if _bg_mode((smooth - fitted)[field_px])[1] < _bg_mode(smooth[field_px])[1] \
        else [flat, fitted]
    t["stats"] = time.perf_counter() - t1
    best = _segment(small, smooth, order[0], coll, field_px, noise, hs, ws, t)
    attempt = 0
    if best[1] < 0.75:  # a second try with the other background model only when the first looks poor
        attempt = 1
        other = _segment(small, smooth, order[1], coll, field_px, noise, hs, ws, t)
        if other[1] > best[1]:
            best = other
    if best[1] < 0.9:  # a faint hand on a grey panel: the brightest grey classes of the field are candidates too
        from skimage.filters import threshold_multiotsu

        attempt += 1
        # the lower of the three classes' two thresholds: above it lie soft tissue and bone (the upper one keeps bone
        # alone, which scores well and is not a hand mask), and the upper one only when Canny found next to nothing
        try:
            levels = list(threshold_multiotsu(smooth[field_px][::3], classes=3))
        except ValueError:  # fewer than three grey levels: nothing to separate
            levels = []
        for level in levels if best[1] < 0.5 else levels[:1]:
            candidate = _threshold_inside(small, smooth, field_px, best[3:], float(level))
            if candidate[1] > best[1] + 0.02:
                best = candidate
    if _panel_like(best[0], field_px):
        # a light panel or a tilted film inside the field: segment again with the panel as the field, where its own
        # grey is the background the fill starts from
        attempt += 1
        panel = ndimage.binary_erosion(best[0], iterations=2)
        if panel.sum() >= 64:
            for inner in (_segment(small, smooth, order[0], ~panel, panel, noise, hs, ws, t),
                          _threshold_inside(small, smooth, panel, best[3:])):
                if inner[1] > best[1]:
                    best = inner
    grown = _grow_to_skin(small, smooth, best, bright)
    if grown is not None:
        attempt += 1
        best = grown
    kept, quality, terms, sigma, r_close, r_open = best
    terms["attempts"] = attempt + 1
    local = _local_contrast(smooth, kept, field_px)
    if local is not None:
        with_tips = _grow_fingertips(kept, field_px, local)
        # fingertips add little, a panel much; a mask that was no panel does not become one
        if with_tips.sum() <= 1.6 * kept.sum() \
                and (_panel_like(kept, field_px) or not _panel_like(with_tips, field_px)):
            terms["fingertips_grown"] = round(float(with_tips.sum() / kept.sum()), 3)
            kept = with_tips
            local = _local_contrast(smooth, kept, field_px)
    kept = _trim_edge_flare(kept)
    # a mask whose outline runs through tissue (a finger cut off, a panel's strip taken beside the hand) is a partial
    # or a wrong mask even where its outline is sharp: the quality says so, so that a labeler checks it first
    beyond = _tissue_beyond(smooth, kept, field_px)
    terms["tissue_beyond"] = round(beyond, 4)
    quality *= 1.0 - BEYOND_PENALTY * float(np.clip((beyond - 0.1) / 0.3, 0.0, 1.0))
    faint = _faint_tissue_beyond(kept, local) if local is not None else 0.0
    terms["faint_tissue_beyond"] = round(faint, 4)
    quality *= 1.0 - BEYOND_PENALTY * float(np.clip((faint - FAINT_BEYOND_FROM) / 0.08, 0.0, 1.0))
    t1 = time.perf_counter()
    if (hs, ws) != (H, W):
        soft8 = np.round(ndimage.gaussian_filter(kept.astype(np.float32), 0.7) * 255).astype(np.uint8)
        up8 = np.asarray(Image.fromarray(soft8).resize((W, H), Image.Resampling.BILINEAR))
        mask = np.where(up8 >= 128, np.uint8(255), np.uint8(0))
    else:
        mask = kept.astype(np.uint8) * 255
    t["resize_out_quality"] = time.perf_counter() - t1
    t["total"] = time.perf_counter() - t0
    details = {"work_shape": [hs, ws], "noise": round(noise, 5), "canny_sigma": round(sigma, 3),
               "close_radius": r_close, "open_radius": r_open, "collimated_fraction": round(float(coll.mean()), 4),
               **terms}
    return AutomaskResult(mask, quality, t, details)


def _quality(small: np.ndarray, kept: np.ndarray, edges: np.ndarray, coll: np.ndarray,
             dominance: float) -> tuple[float, dict]:
    """A [0, 1] score from four image-derived terms (all must be good for a high score)."""
    if not kept.any() or kept.all():
        return 0.0, {"edge_support": 0.0, "contrast": 0.0, "area_score": 0.0, "dominance": round(dominance, 4)}
    boundary = kept & ~ndimage.binary_erosion(kept)
    near_edge = ndimage.binary_dilation(edges, iterations=2)
    support = float((boundary & near_edge).sum() / max(boundary.sum(), 1))
    field_px = ~coll
    inside = small[kept]
    outside = small[field_px & ~kept]
    if outside.size == 0:
        contrast = 0.0
    else:
        sep = (float(inside.mean()) - float(outside.mean())) / (float(inside.std()) + float(outside.std()) + 1e-6)
        contrast = float(1.0 - np.exp(-max(sep, 0.0) * 2.0))
    frac = float(kept.sum() / max(field_px.sum(), 1))
    if frac < 0.05:
        area = frac / 0.05
    elif frac > 0.75:
        area = max(0.0, (1.0 - frac) / 0.25)
    else:
        area = 1.0
    # a hand meets the field's edge only at the forearm (a few % of its outline); a panel or a frame follows it
    along_edge = _edge_fraction(kept, field_px)
    hand_shape = float(np.clip(1.0 - max(along_edge - 0.15, 0.0) / 0.25, 0.0, 1.0))
    solidity = _solidity(kept)  # a filled rectangle is a panel, not a hand
    hand_shape *= float(np.clip((0.97 - solidity) / (0.97 - 0.85), 0.0, 1.0))
    q = float(np.clip((support * contrast * area * dominance * hand_shape) ** 0.5, 0.0, 1.0))
    return q, {"edge_support": round(support, 4), "contrast": round(contrast, 4), "area_score": round(area, 4),
               "dominance": round(dominance, 4), "along_field_edge": round(along_edge, 4),
               "solidity": round(solidity, 4)}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a) > 0
    b = np.asarray(b) > 0
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2.0 * (a & b).sum() / s)


IMAGE_SUFFIXES = (".png", ".dcm", ".dicom", ".jpg", ".jpeg", ".tif", ".tiff")


def _read(path: Path) -> np.ndarray:
    from ml.imaging import load_image

    return load_image(path)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    ap = argparse.ArgumentParser(
        prog="python -m ml.automask",
        description="Canny hand masks (the paper's method) for every image (png/jpg/tif/dcm) in IN_DIR, "
                    "written as OUT_DIR/<id>.png (0/255). With --evaluate, score the masks of a fresh phantom "
                    "cohort against its ground truth instead.")
    ap.add_argument("in_dir", nargs="?", help="folder of images (an RSNA-style folder's images/ works)")
    ap.add_argument("out_dir", nargs="?", help="folder for the masks (created if missing)")
    ap.add_argument("--evaluate", action="store_true",
                    help="Dice vs ground truth on phantoms per distractor mode (see --n, --seed, --modes, --size)")
    ap.add_argument("--n", type=int, default=500, help="phantoms per mode for --evaluate (default 500)")
    ap.add_argument("--seed", type=int, default=2024, help="cohort seed for --evaluate")
    ap.add_argument("--modes", default="none,random,shortcut", help="distractor modes for --evaluate")
    ap.add_argument("--size", default="512", help="phantom long side for --evaluate (px or 'native')")
    args = ap.parse_args(argv)
    if args.evaluate:
        from ml.phantoms.evaluate import evaluate_cli

        return evaluate_cli(args.n, args.seed, args.modes.split(","), args.size)
    if not args.in_dir or not args.out_dir:
        ap.print_usage(sys.stderr)
        print("error: IN_DIR and OUT_DIR are required (or use --evaluate)", file=sys.stderr)
        return 2
    src, dst = Path(args.in_dir), Path(args.out_dir)
    if not src.is_dir():
        print(f"error: input folder {src} does not exist or is not a folder", file=sys.stderr)
        return 2
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        print(f"error: no images (png, jpg, tif, dcm) in {src}", file=sys.stderr)
        return 2
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create output folder {dst}: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    qualities, failed = [], []
    for path in files:
        try:
            image = _read(path)
        except Exception as exc:  # noqa: BLE001 - whatever the decoder raises, the file is unreadable
            failed.append(f"{path.name} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
            continue
        res = automask(image)
        Image.fromarray(res.mask).save(dst / f"{path.stem}.png")
        qualities.append(res.quality)
    secs = time.perf_counter() - t0
    mean_q = float(np.mean(qualities)) if qualities else float("nan")
    print(f"wrote {len(qualities)} masks to {dst} in {secs:.1f} s ({1000 * secs / max(len(files), 1):.0f} ms/image), "
          f"mean quality {mean_q:.3f}" + (f"; {len(failed)} unreadable: {', '.join(failed[:5])}" if failed else ""))
    if failed:
        print(f"error: could not read {len(failed)} of {len(files)} images: {failed[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
