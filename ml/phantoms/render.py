"""Render one synthetic hand radiograph: skeleton → attenuation → X-ray imaging chain → distractors."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from ml.imaging import unit_to_uint16
from ml.phantoms.anatomy import CARPAL_SHAPE, Ellipsoid, HandLayout, Tube, build_hand
from ml.phantoms.filmlook import real_film_look
from ml.phantoms.raster import draw_ellipsoid, draw_polygon, draw_soft, draw_tube

# "real": the random distractors plus what real films showed (ml.phantoms.filmlook): light panels, grain and banding,
# a tilted or landscape film, a second hand more often, a wider exposure range
DISTRACTOR_MODES = ("none", "random", "shortcut", "real")
AGE_BRACKETS = (0.0, 60.0, 120.0, 168.0, 1e9)  # shortcut tag type = bracket index in the train half
SHORTCUT_STYLES = ("square", "ring", "bar", "triangle")


@dataclass
class Phantom:
    """One synthetic radiograph with its ground truth.

    image: (H, W) uint16, bright bone on a dark background; mask: (H, W) uint8 0/255 (the main hand,
    inside the exposed field); meta: JSON-serialisable ground truth (age, sex, skeleton, pose, distractors).
    """

    image: np.ndarray
    mask: np.ndarray
    meta: dict = field(default_factory=dict)


@dataclass
class Pose:
    """Hand frame (mm, y distal) → pixel frame (x right, y down)."""

    scale: float  # px per mm
    angle_deg: float
    left: bool
    centre: np.ndarray

    @property
    def matrix(self) -> np.ndarray:
        key = (self.angle_deg, self.left)
        cached = self.__dict__.get("_matrix")
        if cached is None or cached[0] != key:
            t = np.deg2rad(self.angle_deg)
            rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
            cached = (key, rot @ np.diag([1.0 if self.left else -1.0, -1.0]))
            self.__dict__["_matrix"] = cached
        return cached[1]

    def point(self, p: np.ndarray) -> np.ndarray:
        return self.centre + self.scale * (self.matrix @ p)

    def vector(self, v: np.ndarray) -> np.ndarray:
        out = self.matrix @ v
        return out / (np.linalg.norm(out) or 1.0)


def _draw_layout(lay: HandLayout, pose: Pose, soft: np.ndarray, bone: np.ndarray, tex: np.ndarray,
                 mu_cortex: float, mu_trab: float) -> None:
    s = pose.scale
    for pts, thick in lay.polys:
        draw_polygon(soft, np.array([pose.point(p) for p in pts]), thick * s)
    for part in lay.soft:
        draw_soft(soft, pose.point(part.a), pose.point(part.b), part.r_a * s, part.r_b * s, part.depth)
    for b in lay.bones:
        if isinstance(b, Tube):
            draw_tube(bone, tex, pose.point(b.a), pose.point(b.b), b.r_a * s, b.r_m * s, b.r_b * s, b.k_a, b.k_b,
                      b.medulla, mu_cortex, mu_trab)
        elif isinstance(b, Ellipsoid):
            draw_ellipsoid(bone, tex, pose.point(b.c), b.a * s, b.b * s, pose.vector(b.axis), b.p, mu_cortex,
                           mu_trab, add=b.add)


def _place(lay: HandLayout, h: int, w: int, rng: np.random.Generator, left: bool, shift: float = 0.0) -> Pose:
    """Scale/rotate/translate so the whole hand (not the forearm) lies on the canvas with margins."""
    angle = float(rng.uniform(-25.0, 25.0))
    unit = Pose(1.0, angle, left, np.zeros(2))
    pts = np.array([unit.point(p) for p in lay.keypoints] + [unit.point(np.zeros(2))])
    lo, hi = pts.min(0), pts.max(0)
    bw, bh = hi - lo
    fill_h = float(rng.uniform(0.66, 0.84))
    fill_w = 0.90 - abs(shift) * 0.9
    scale = min(fill_h * h / bh, fill_w * w / bw) * float(rng.uniform(0.93, 1.0))
    slack_x = w - bw * scale
    x0 = slack_x * (0.5 + shift) + float(rng.uniform(-0.25, 0.25)) * slack_x * (1 - 2 * abs(shift))
    y0 = h * float(rng.uniform(0.03, 0.10))
    centre = np.array([x0 - lo[0] * scale, y0 - lo[1] * scale])
    return Pose(scale, angle, left, centre)


@lru_cache(maxsize=64)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=max(px, 6))
    except (ImportError, OSError, TypeError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def text_bitmap(text: str, px: int) -> np.ndarray:
    """Rendered text (bool array, True = ink), `px` ≈ cap height in pixels."""
    font = _font(int(px * 1.35))
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (int(max(right - left, 1)) + 2, int(max(bottom - top, 1)) + 2), 0)
    ImageDraw.Draw(img).text((1 - left, 1 - top), text, fill=255, font=font)
    return np.asarray(img) > 127


def shape_bitmap(style: str, size: int) -> np.ndarray:
    """Bright geometric tag for the shortcut experiment."""
    size = max(size, 8)
    img = Image.new("L", (size, size if style != "bar" else max(size // 3, 4)), 0)
    d = ImageDraw.Draw(img)
    W, H = img.size
    if style == "square":
        d.rectangle([0, 0, W - 1, H - 1], fill=255)
        d.rectangle([W // 4, H // 4, 3 * W // 4, 3 * H // 4], fill=0)
    elif style == "ring":
        d.ellipse([0, 0, W - 1, H - 1], fill=255)
        d.ellipse([W // 4, H // 4, 3 * W // 4, 3 * H // 4], fill=0)
    elif style == "bar":
        d.rectangle([0, 0, W - 1, H - 1], fill=255)
    else:
        d.polygon([(W // 2, 0), (W - 1, H - 1), (0, H - 1)], fill=255)
    return np.asarray(img) > 127


class _Placer:
    """Finds boxes for distractors that keep clear of the hand (and of each other)."""

    def __init__(self, busy: np.ndarray, rng: np.random.Generator):
        self.busy = busy.copy()
        self.h, self.w = busy.shape
        self.rng = rng

    def find(self, bh: int, bw: int, prefer: list[str] | None = None) -> tuple[int, int] | None:
        h, w = self.h, self.w
        m = max(2, int(0.02 * min(h, w)))
        if bh + 2 * m > h or bw + 2 * m > w:
            return None
        spots = {
            "tl": (m, m), "tr": (m, w - bw - m), "bl": (h - bh - m, m), "br": (h - bh - m, w - bw - m),
            "ml": ((h - bh) // 2, m), "mr": ((h - bh) // 2, w - bw - m), "tm": (m, (w - bw) // 2),
        }
        order = list(prefer or [])
        rest = [k for k in spots if k not in order]
        self.rng.shuffle(rest)
        for key in order + rest:
            y, x = spots[key]
            for _ in range(3):
                jy = int(self.rng.integers(0, max(1, h // 12))) * (1 if key[0] in "tm" else -1)
                jx = int(self.rng.integers(0, max(1, w // 12))) * (1 if key[-1] in "lm" else -1)
                yy, xx = int(np.clip(y + jy, 0, h - bh)), int(np.clip(x + jx, 0, w - bw))
                pad = m // 2
                if not self.busy[max(yy - pad, 0):yy + bh + pad, max(xx - pad, 0):xx + bw + pad].any():
                    self.busy[yy:yy + bh, xx:xx + bw] = True
                    return yy, xx
        return None


def render(age_months: float, male: bool, seed: int, *, size: int | None = 512,
           distractors: str = "none", split: str = "train") -> Phantom:
    """A synthetic PA hand radiograph of the given bone age and sex, deterministic for `seed`.

    size: long side in pixels (None = native, a random 1600–2600 px canvas). distractors: "none",
    "random" (markers, text, rulers, collimation, frame edges, part of a second hand) or "shortcut"
    (random ones + a tag whose style encodes the age bracket when `split == "train"`).
    """
    if distractors not in DISTRACTOR_MODES:
        raise ValueError(f"distractors must be one of {DISTRACTOR_MODES}, got {distractors!r}")
    if size is not None and not (64 <= int(size) <= 8192):
        raise ValueError(f"size must be between 64 and 8192 px (or None for native), got {size}")
    rng = np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF)
    age = float(np.clip(age_months, 0.0, 240.0))
    long_side = int(size) if size is not None else int(rng.integers(1600, 2601))
    aspect = float(rng.uniform(0.74, 0.95))
    h, w = long_side, round(long_side * aspect)
    left = bool(rng.random() < 0.8)  # bone-age films are usually left hands

    lay = build_hand(age, male, rng)
    want_second = distractors != "none" and rng.random() < (0.3 if distractors == "real" else 0.15)
    side = float(rng.choice([-1.0, 1.0]))
    pose = _place(lay, h, w, rng, left, shift=0.12 * side if want_second else 0.0)

    # --- attenuation fields ------------------------------------------------------------------
    res = long_side / 512.0
    tex = _trabecular_texture(h, w, max(0.6 * pose.scale, 0.7), rng)
    density = 0.72 + 0.28 * min(age / 180.0, 1.0)
    kv = float(rng.uniform(0.8, 1.2))  # beam quality: bone/soft contrast
    mu_soft, mu_c, mu_t = 0.021, 0.105 * density * kv, 0.050 * density * kv
    soft = np.zeros((h, w), np.float32)
    bone = np.zeros((h, w), np.float32)
    _draw_layout(lay, pose, soft, bone, tex, mu_c, mu_t)
    hand = soft > 0.0

    records: list[dict] = []
    lead = np.zeros((h, w), np.float32)  # radio-opaque objects (attenuation, mm-equivalent)
    burn = np.zeros((h, w), np.float32)  # burned-in annotations (display value, 0 = none)
    field_in = np.ones((h, w), bool)
    placer = _Placer(ndimage.binary_dilation(hand[::4, ::4], iterations=2).repeat(4, 0).repeat(4, 1)[:h, :w]
                     if h >= 8 else hand, rng)

    if want_second:
        _second_hand(age, male, rng, lay, pose, h, w, side, hand, soft, bone, tex, mu_c, mu_t, records)
        placer.busy |= soft > 0
    if distractors != "none":
        _collimation(rng, pose, lay, h, w, field_in, records)
        _random_distractors(rng, placer, pose, lead, burn, records, h, w)
    shortcut_style = None
    if distractors == "shortcut":
        bracket = int(np.searchsorted(AGE_BRACKETS, age, side="right") - 1)
        idx = bracket if split == "train" else int(rng.integers(0, len(SHORTCUT_STYLES)))
        shortcut_style = SHORTCUT_STYLES[idx]
        bmp = shape_bitmap(shortcut_style, int(0.10 * w))
        placer.busy[:] = hand | (soft > 0)
        spot = placer.find(bmp.shape[0], bmp.shape[1], prefer=[["tl", "tr", "ml", "mr"][idx]])
        if spot is not None:
            y, x = spot
            burn[y:y + bmp.shape[0], x:x + bmp.shape[1]][bmp] = 0.97
            records.append({"kind": "shortcut_tag", "style": shortcut_style,
                            "box": [x, y, x + bmp.shape[1], y + bmp.shape[0]]})

    # --- imaging chain ---------------------------------------------------------------------------
    atten = (mu_soft * soft + bone) / np.float32(pose.scale) + lead
    blur = float(rng.uniform(0.5, 1.1)) * max(1.0, res / 2.0)
    atten = ndimage.gaussian_filter(atten, blur, truncate=3.0)
    heel_amp = float(rng.uniform(0.0, 0.35))
    heel_dir = float(rng.uniform(0, 2 * np.pi))
    yy = (np.arange(h, dtype=np.float32)[:, None] / h - 0.5)
    xx = (np.arange(w, dtype=np.float32)[None, :] / w - 0.5)
    log_exposure = heel_amp * (np.float32(np.cos(heel_dir)) * xx + np.float32(np.sin(heel_dir)) * yy)
    photons = float(np.exp(rng.uniform(np.log(250), np.log(3000)))) / res
    counts = np.float32(photons) * np.exp(log_exposure - atten)
    counts += np.sqrt(counts) * rng.standard_normal((h, w), dtype=np.float32)
    disp = -np.log(np.maximum(counts, 0.5) / np.float32(photons))
    # window/level like a CR console: background a little above black, bone near the top
    inside = disp[hand] if hand.any() else disp.ravel()
    lo = float(np.quantile(disp[::7, ::7], 0.02)) - float(rng.uniform(0.0, 0.12))
    hi = float(np.quantile(inside[::5], 0.995)) * float(rng.uniform(1.0, 1.25))
    v = np.clip((disp - lo) / max(hi - lo, 1e-3), 0.0, 1.0)
    gamma = float(np.exp(rng.uniform(np.log(0.7), np.log(1.45))))
    v = v ** np.float32(gamma)
    floor = float(rng.uniform(0.0, 0.12))
    v = np.float32(floor) + np.float32(1.0 - floor) * v

    if not field_in.all():  # collimated (unexposed) area reads bright, with a soft penumbra
        level = float(rng.uniform(0.78, 1.0))
        alpha = ndimage.gaussian_filter(field_in.astype(np.float32), 1.0 + res * 0.5)
        outside = np.float32(level) - np.float32(0.08) * (yy + 0.5) * float(rng.uniform(-1, 1))
        outside = outside + 0.01 * rng.standard_normal((h, w), dtype=np.float32)
        v = alpha * v + (1.0 - alpha) * outside
    if burn.any():
        v = np.where(burn > 0, burn, v)
    v = np.clip(v, 0.0, 1.0)
    mask = (hand & field_in).astype(np.uint8) * 255
    film_look: dict = {}
    if distractors == "real":
        v, mask, film_look = real_film_look(v, mask, rng)
    lo_v, hi_v = float(v.min()), float(v.max())
    unit = (v - lo_v) / max(hi_v - lo_v, 1e-6)
    h, w = unit.shape

    meta = {
        "boneage": round(age, 3), "male": bool(male), "sex": "M" if male else "F",
        "height": h, "width": w, "hand": "left" if left else "right",
        "rotation_deg": round(pose.angle_deg, 3), "px_per_mm": round(float(pose.scale), 4),
        "pixel_spacing_mm": round(float(1.0 / pose.scale), 5), "seed": int(seed), "distractor_mode": distractors,
        "split": split, "shortcut_style": shortcut_style,
        **{k: v for k, v in lay.meta.items()},
        "carpal_centres_px": {name: [round(float(c), 1) for c in pose.point(np.array(xy) * lay.meta["hand_scale"])]
                              for name, (xy, _, _) in CARPAL_SHAPE.items()},
        "imaging": {"blur_px": round(blur, 3), "heel": round(heel_amp, 3), "photons": round(photons, 1),
                    "gamma": round(gamma, 3), "kv": round(kv, 3)},
        "distractors": records, "film_look": film_look,
    }
    return Phantom(unit_to_uint16(unit), mask, meta)


def _trabecular_texture(h: int, w: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Band-passed noise around 1.0: the spongy-bone pattern inside the cortex."""
    fine = rng.standard_normal((h, w), dtype=np.float32)
    sm = ndimage.gaussian_filter(fine, sigma, truncate=2.5)
    sm /= max(float(sm[::9, ::9].std()), 1e-6)
    return 1.0 + 0.2 * sm


def _collimation(rng, pose: Pose, lay: HandLayout, h: int, w: int, field_in: np.ndarray, records: list) -> None:
    if rng.random() >= 0.45:
        return
    pts = np.array([pose.point(p) for p in lay.keypoints])
    (kx0, ky0), (kx1, ky1) = pts.min(0), pts.max(0)
    wrist_y = pose.point(np.array([0.0, 0.0]))[1]
    m = 0.025 * min(h, w)
    left = float(rng.uniform(0, max(kx0 - m, 0))) if rng.random() < 0.7 else 0.0
    right = float(rng.uniform(min(kx1 + m, w), w)) if rng.random() < 0.7 else float(w)
    top = float(rng.uniform(0, max(ky0 - m, 0))) if rng.random() < 0.7 else 0.0
    low_min = min(max(wrist_y, ky1) + 0.06 * h, h)
    bottom = float(rng.uniform(low_min, h)) if rng.random() < 0.5 else float(h)
    if left <= 1 and top <= 1 and right >= w - 1 and bottom >= h - 1:
        return
    ys = np.arange(h)[:, None]
    xs = np.arange(w)[None, :]
    field_in &= (xs >= left) & (xs < right) & (ys >= top) & (ys < bottom)
    records.append({"kind": "collimation", "box": [int(left), int(top), int(right), int(bottom)]})


def _random_distractors(rng, placer: _Placer, pose: Pose, lead: np.ndarray, burn: np.ndarray, records: list,
                        h: int, w: int) -> None:
    if rng.random() < 0.6:  # lead L/R marker in a plastic holder
        letter = "L" if pose.left else "R"
        if rng.random() < 0.15:
            letter = "R" if letter == "L" else "L"  # a wrong marker happens too
        side = int(w * rng.uniform(0.06, 0.10))
        spot = placer.find(side, side)
        if spot is not None:
            y, x = spot
            lead[y:y + side, x:x + side] += 0.25
            bmp = text_bitmap(letter, int(side * 0.6))
            by, bx = (side - bmp.shape[0]) // 2, (side - bmp.shape[1]) // 2
            if by >= 0 and bx >= 0:
                lead[y + by:y + by + bmp.shape[0], x + bx:x + bx + bmp.shape[1]][bmp] += 4.0
            records.append({"kind": "lead_marker", "text": letter, "box": [x, y, x + side, y + side]})
    for _ in range(int(rng.choice([0, 1, 1, 2, 3]))):  # burned-in text
        texts = ["L", "R", "PA", "LEFT HAND", "R HAND PA", "BONE AGE", "PORTABLE", "PEDS",
                 f"ACC {int(rng.integers(10000, 99999))}", (f"20{int(rng.integers(10, 24))}-"
                 f"{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}")]
        text = texts[int(rng.integers(len(texts)))]
        bmp = text_bitmap(text, int(h * rng.uniform(0.02, 0.04)))
        boxed = rng.random() < 0.3
        pad = 3 if boxed else 0
        spot = placer.find(bmp.shape[0] + 2 * pad, bmp.shape[1] + 2 * pad)
        if spot is None:
            continue
        y, x = spot
        if boxed:
            burn[y:y + bmp.shape[0] + 2 * pad, x:x + bmp.shape[1] + 2 * pad] = 0.001
        burn[y + pad:y + pad + bmp.shape[0], x + pad:x + pad + bmp.shape[1]][bmp] = float(rng.uniform(0.85, 1.0))
        records.append({"kind": "text", "text": text,
                        "box": [x, y, x + bmp.shape[1] + 2 * pad, y + bmp.shape[0] + 2 * pad]})
    if rng.random() < 0.25:  # radio-opaque ruler with mm ticks
        vertical = rng.random() < 0.6
        length = int((h if vertical else w) * rng.uniform(0.4, 0.75))
        thick = max(int(0.035 * w), 6)
        bh, bw = (length, thick) if vertical else (thick, length)
        spot = placer.find(bh, bw, prefer=["ml", "mr"] if vertical else ["tm"])
        if spot is not None:
            y, x = spot
            lead[y:y + bh, x:x + bw] += 0.35
            step = 10.0 * pose.scale / 5.0  # 2 mm ticks... long ones every 10 mm
            n = int(length / step)
            for i in range(n + 1):
                p = int(i * step)
                tl = thick if i % 5 == 0 else thick // 2
                if vertical:
                    lead[y + p:y + p + 1 + (i % 5 == 0), x:x + tl] += 2.0
                else:
                    lead[y:y + tl, x + p:x + p + 1 + (i % 5 == 0)] += 2.0
            records.append({"kind": "ruler", "box": [x, y, x + bw, y + bh]})
    if rng.random() < 0.2:  # bright film/plate edges
        t = max(int(rng.uniform(0.004, 0.012) * w), 2)
        edges = [e for e in ("top", "bottom", "left", "right") if rng.random() < 0.5] or ["left"]
        for e in edges:
            sl = {"top": np.s_[:t, :], "bottom": np.s_[-t:, :], "left": np.s_[:, :t], "right": np.s_[:, -t:]}[e]
            burn[sl] = 1.0
            box = {"top": [0, 0, w, t], "bottom": [0, h - t, w, h], "left": [0, 0, t, h], "right": [w - t, 0, w, h]}[e]
            records.append({"kind": "frame_edge", "box": box})


def _second_hand(age, male, rng, lay, pose: Pose, h, w, side, hand, soft, bone, tex, mu_c, mu_t, records) -> None:
    """Part of the other hand entering from the side away from the main hand (never touching it)."""
    other = build_hand(float(np.clip(age + rng.normal(0, 3), 0, 240)), male, rng)
    angle = float(np.clip(pose.angle_deg + rng.normal(0, 8), -30, 30))
    busy = ndimage.binary_dilation(hand[::4, ::4], iterations=3).repeat(4, 0).repeat(4, 1)[:h, :w]
    main_pts = np.array([pose.point(p) for p in lay.keypoints])
    # mirror image of the main hand, placed so its inner edge starts past the main hand's outer edge
    p2 = Pose(pose.scale, -angle, not pose.left, np.zeros(2))
    pts2 = np.array([p2.point(p) for p in other.keypoints])
    for extra in (0.03, 0.08, 0.14, 0.22):
        if side > 0:  # main hand shifted right → second hand on the left
            x_edge = main_pts[:, 0].min() - extra * w
            cx = x_edge - pts2[:, 0].max()
        else:
            x_edge = main_pts[:, 0].max() + extra * w
            cx = x_edge - pts2[:, 0].min()
        cy = pose.centre[1] + rng.normal(0, 0.03 * h)
        p2.centre = np.array([cx, cy])
        s2 = np.zeros_like(soft)
        b2 = np.zeros_like(bone)
        _draw_layout(other, p2, s2, b2, tex, mu_c, mu_t)
        vis = s2 > 0
        if not vis.any():
            return
        if not (vis & busy).any():
            np.maximum(soft, s2, out=soft)
            np.maximum(bone, b2, out=bone)
            ys, xs = np.nonzero(vis)
            records.append({"kind": "second_hand", "box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                                                            int(ys.max()) + 1]})
            return
