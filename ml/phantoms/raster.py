"""Vectorised rasterisers: each primitive is evaluated only inside its bounding box.

Fields are float32 arrays in *pixel* coordinates (x = column, y = row).  Thickness values are in
pixels (chord lengths through a 3-D body); the renderer converts them to millimetres.
"""
from __future__ import annotations

import numpy as np


def _box(h: int, w: int, x0: float, x1: float, y0: float, y1: float) -> tuple[int, int, int, int] | None:
    ix0, ix1 = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, w)
    iy0, iy1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, h)
    if ix0 >= ix1 or iy0 >= iy1:
        return None
    return iy0, iy1, ix0, ix1


def _grid(box: tuple[int, int, int, int], ax: float, ay: float) -> tuple[np.ndarray, np.ndarray]:
    iy0, iy1, ix0, ix1 = box
    px = (np.arange(ix0, ix1, dtype=np.float32) - np.float32(ax))[None, :]
    py = (np.arange(iy0, iy1, dtype=np.float32) - np.float32(ay))[:, None]
    return px, py


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def capsule_coords(field: np.ndarray, a: np.ndarray, b: np.ndarray, reach: float):
    """(box, t, perp) for a segment a→b: t is the position along it (0..1 inside), perp the distance."""
    h, w = field.shape
    box = _box(h, w, min(a[0], b[0]) - reach, max(a[0], b[0]) + reach,
               min(a[1], b[1]) - reach, max(a[1], b[1]) + reach)
    if box is None:
        return None
    d = b - a
    length = float(np.hypot(d[0], d[1])) or 1e-6
    ux, uy = d[0] / length, d[1] / length
    px, py = _grid(box, a[0], a[1])
    along = px * np.float32(ux) + py * np.float32(uy)  # (h, w) via broadcasting
    perp = np.abs(px * np.float32(uy) - py * np.float32(ux))
    return box, along / np.float32(length), perp, length


def draw_soft(field: np.ndarray, a, b, r_a: float, r_b: float, depth: float) -> None:
    """Union (max) of a tapered soft-tissue capsule's thickness into `field` (pixels)."""
    got = capsule_coords(field, a, b, max(r_a, r_b))
    if got is None:
        return
    box, t, perp, length = got
    tc = np.clip(t, 0.0, 1.0)
    r = np.float32(r_a) + np.float32(r_b - r_a) * tc
    along = (t - tc) * np.float32(length)
    rho2 = perp * perp + along * along
    thick = np.sqrt(np.maximum(1.0 - rho2 / (r * r), 0.0)) * (2.0 * depth) * r
    sub = field[box[0]:box[1], box[2]:box[3]]
    np.maximum(sub, thick, out=sub)


def draw_tube(field: np.ndarray, tex: np.ndarray, a, b, r_a: float, r_m: float, r_b: float, k_a: float,
              k_b: float, medulla: float, mu_cortex: float, mu_trab: float) -> None:
    """Union of a long bone (tapered capped tube with cortical shell and trabecular core)."""
    reach = max(r_a, r_m, r_b) * 1.05
    got = capsule_coords(field, a, b, reach)
    if got is None:
        return
    box, t, perp, length = got
    tc = np.clip(t, 0.0, 1.0)
    wend = _smoothstep((np.abs(2.0 * tc - 1.0) - 0.42) / 0.58)
    r_end = np.where(tc < 0.5, np.float32(r_a), np.float32(r_b))
    r = np.float32(r_m) + (r_end - np.float32(r_m)) * wend
    over = (t - tc) * np.float32(length)
    k = np.where(t < 0.5, np.float32(k_a), np.float32(k_b))
    over = over * k
    rho2 = perp * perp + over * over
    t_out = 2.0 * np.sqrt(np.maximum(r * r - rho2, 0.0))
    ri = r * (np.float32(medulla) + (np.float32(0.86) - np.float32(medulla)) * wend)
    t_in = 2.0 * np.sqrt(np.maximum(ri * ri - rho2 * 1.15, 0.0))
    tsub = tex[box[0]:box[1], box[2]:box[3]]
    dens = np.float32(mu_cortex) * (t_out - t_in) + np.float32(mu_trab) * t_in * tsub
    sub = field[box[0]:box[1], box[2]:box[3]]
    np.maximum(sub, dens, out=sub)


def draw_ellipsoid(field: np.ndarray, tex: np.ndarray, c, a: float, b: float, axis, p: float,
                   mu_cortex: float, mu_trab: float, add: bool = False) -> None:
    """A (super-)ellipsoid bone (carpal or epiphysis) with a cortical rim."""
    h, w = field.shape
    reach = max(a, b) * (1.0 if p <= 2.0 else 1.2)
    box = _box(h, w, c[0] - reach, c[0] + reach, c[1] - reach, c[1] + reach)
    if box is None or a <= 0.3 or b <= 0.3:
        return
    px, py = _grid(box, c[0], c[1])
    ux, uy = np.float32(axis[0]), np.float32(axis[1])
    xr = (px * ux + py * uy) / np.float32(a)
    yr = (py * ux - px * uy) / np.float32(b)
    if abs(p - 2.0) < 1e-3:
        q = xr * xr + yr * yr
    else:
        q = (np.abs(xr) ** p + np.abs(yr) ** p) ** (2.0 / p)
    depth = np.float32(min(a, b))
    t_out = 2.0 * depth * np.sqrt(np.maximum(1.0 - q, 0.0))
    inner = np.float32(0.72)
    t_in = 2.0 * depth * inner * np.sqrt(np.maximum(1.0 - q / (inner * inner), 0.0))
    tsub = tex[box[0]:box[1], box[2]:box[3]]
    dens = np.float32(mu_cortex) * (t_out - t_in) + np.float32(mu_trab) * t_in * tsub
    sub = field[box[0]:box[1], box[2]:box[3]]
    if add:
        sub += dens
    else:
        np.maximum(sub, dens, out=sub)


def draw_polygon(field: np.ndarray, pts: np.ndarray, thickness: float) -> None:
    """Union of a flat slab of constant thickness (pixels) over a filled polygon (pixel coordinates)."""
    from PIL import Image, ImageDraw

    h, w = field.shape
    box = _box(h, w, pts[:, 0].min(), pts[:, 0].max(), pts[:, 1].min(), pts[:, 1].max())
    if box is None:
        return
    iy0, iy1, ix0, ix1 = box
    img = Image.new("L", (ix1 - ix0, iy1 - iy0), 0)
    ImageDraw.Draw(img).polygon([(float(x - ix0), float(y - iy0)) for x, y in pts], fill=255)
    inside = np.asarray(img) > 0
    sub = field[iy0:iy1, ix0:ix1]
    np.maximum(sub, np.where(inside, np.float32(thickness), np.float32(0.0)), out=sub)
