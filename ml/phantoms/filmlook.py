"""What real films showed the automask and the network that clean phantoms lack (issue 28), applied to a rendered
phantom's display values: a light panel with straight edges around the hand (a scanner's light box, a cassette), a
background grey, scanned-film grain and banding, a wider exposure and contrast range, a film tilted on a black
canvas, or a landscape film (90° turn). Every change moves the ground-truth mask with the image."""
from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage


def real_film_look(v: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """(display values in [0, 1], mask 0/255, what was applied) → the same with a real film's look."""
    h, w = v.shape
    look: dict = {}
    if rng.random() < 0.4:  # a light panel: a brighter straight-edged rectangle around the hand, slightly turned
        ys, xs = np.nonzero(mask)
        if ys.size:
            margin = rng.uniform(0.04, 0.15, 4) * np.array([h, h, w, w])
            y0, y1 = max(ys.min() - margin[0], 0), min(ys.max() + margin[1], h + 0.3 * h)
            x0, x1 = max(xs.min() - margin[2], 0), min(xs.max() + margin[3], w)
            angle = np.deg2rad(rng.uniform(-6, 6))
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
            ry = (yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle)
            rx = (yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
            panel = (np.abs(ry) <= (y1 - y0) / 2) & (np.abs(rx) <= (x1 - x0) / 2)
            lift = float(rng.uniform(0.15, 0.45))
            alpha = ndimage.gaussian_filter(panel.astype(np.float32), 1.0)
            v = v + np.float32(lift) * (1.0 - v) * alpha
            look["panel"] = {"lift": round(lift, 3), "angle_deg": round(float(np.rad2deg(angle)), 2)}
    if rng.random() < 0.5:  # scanned film: grain and horizontal banding
        period = float(rng.uniform(8, 40))
        amp = float(rng.uniform(0.002, 0.01))
        band = amp * np.sin(2 * np.pi * np.arange(h, dtype=np.float32)[:, None] / period + rng.uniform(0, 6.3))
        v = v + band + np.float32(rng.uniform(0.002, 0.008)) * rng.standard_normal((h, w), dtype=np.float32)
        look["grain"] = {"band_period": round(period, 1), "band_amp": round(amp, 4)}
    lo, hi = float(rng.uniform(0.0, 0.25)), float(rng.uniform(0.75, 1.0))  # exposure and contrast range
    v = np.float32(lo) + np.float32(hi - lo) * np.clip(v, 0.0, 1.0)
    look["range"] = [round(lo, 3), round(hi, 3)]
    turn = rng.random()
    if turn < 0.15:  # a film scanned tilted, on a black canvas
        angle = float(rng.uniform(8, 25) * rng.choice([-1, 1]))
        v = np.asarray(Image.fromarray(v.astype(np.float32), mode="F").rotate(angle, Image.Resampling.BILINEAR,
                                                                                expand=True, fillcolor=0.0))
        mask = np.asarray(Image.fromarray(mask).rotate(angle, Image.Resampling.NEAREST, expand=True, fillcolor=0))
        look["tilt_deg"] = round(angle, 2)
    elif turn < 0.25:  # a landscape film: the hand lies on its side
        k = int(rng.choice([1, 3]))
        v, mask = np.rot90(v, k).copy(), np.rot90(mask, k).copy()
        look["rot90"] = 90 * k
    return np.clip(v, 0.0, 1.0).astype(np.float32), mask, look
