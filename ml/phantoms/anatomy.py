"""Hand skeleton that carries age: bone sizes, carpal ossification and epiphysis stages.

Everything here is in millimetres in a *hand frame*: x points towards the thumb, y points distally
(towards the finger tips), the origin is the centre of the distal radius articular surface.  The
layout is for a left hand seen postero-anteriorly (the standard bone-age view); the renderer mirrors
it for right hands.

Timings are a simplified synthesis of the Greulich & Pyle / Tanner-Whitehouse literature, in months
of *bone age*.  Girls mature earlier: each centre has its own female timing.  Per-individual jitter
is small (a few per cent in log-time), because the label *is* the bone age: the skeleton is what
defines it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# --- carpal ossification onsets (months; boys, girls) -------------------------------------------
CARPAL_ONSET: dict[str, tuple[float, float]] = {
    "capitate": (3.0, 2.0),
    "hamate": (4.0, 3.0),
    "triquetrum": (30.0, 21.0),
    "lunate": (44.0, 32.0),
    "scaphoid": (66.0, 52.0),
    "trapezium": (68.0, 54.0),
    "trapezoid": (72.0, 56.0),
    "pisiform": (138.0, 112.0),
}
CARPALS = tuple(CARPAL_ONSET)

# adult (male) centre (x, y), semi-axes (a along x', b along y'), axis angle in degrees, overlap-add?
CARPAL_SHAPE: dict[str, tuple[tuple[float, float], tuple[float, float], float]] = {
    "capitate": ((1.0, 18.5), (5.2, 9.0), 0.0),
    "hamate": ((-9.0, 17.5), (5.2, 8.0), 12.0),
    "triquetrum": ((-12.5, 8.5), (5.0, 4.2), -30.0),
    "pisiform": ((-14.0, 6.0), (3.6, 3.3), 0.0),
    "lunate": ((-2.5, 7.0), (5.6, 5.0), 0.0),
    "scaphoid": ((10.0, 8.5), (4.6, 8.6), -50.0),
    "trapezium": ((17.0, 19.5), (5.2, 5.6), 20.0),
    "trapezoid": ((9.0, 21.5), (4.0, 5.0), 0.0),
}

# --- epiphysis stage timings (months, boys): onset, reaches metaphysis width, caps, fusion starts, fused
# Girls: onset/width times x0.78, cap/fusion times x0.87 (girls fuse ~14-16 y, boys ~15-17.5 y).
EPI_TIMING: dict[str, tuple[float, float, float, float, float]] = {
    "radius": (12.0, 84.0, 156.0, 192.0, 210.0),
    "ulna": (78.0, 124.0, 168.0, 186.0, 204.0),
    "PP": (17.0, 84.0, 150.0, 180.0, 197.0),   # proximal phalanges 2-5
    "MC": (22.0, 90.0, 156.0, 180.0, 198.0),   # metacarpals 2-5 (distal epiphysis)
    "MP": (30.0, 96.0, 156.0, 179.0, 196.0),   # middle phalanges 2-5
    "DP": (36.0, 100.0, 150.0, 170.0, 186.0),  # distal phalanges: fuse first
    "MC1": (30.0, 96.0, 156.0, 180.0, 198.0),  # thumb metacarpal (proximal epiphysis)
    "PP1": (24.0, 90.0, 150.0, 180.0, 197.0),
    "DP1": (28.0, 96.0, 150.0, 170.0, 186.0),
}
FEMALE_EARLY = 0.78
FEMALE_LATE = 0.87

# --- rays: MC base (x, y), MC angle (deg, + = towards thumb), lengths, shaft radii, soft radius -----
# lengths (adult male, mm): MC, PP, MP (None for thumb), DP
RAYS: dict[int, dict[str, Any]] = {
    1: {"base": (22.0, 25.0), "angle": 38.0, "lengths": (44.0, 31.0, None, 24.0), "radii": (4.6, 4.4, None, 3.3),
            "spread": 1.18, "soft": 9.5},
    2: {"base": (10.5, 30.0), "angle": 8.0, "lengths": (67.0, 40.0, 23.0, 17.0), "radii": (3.9, 4.1, 3.4, 2.8),
            "spread": 1.6, "soft": 8.2},
    3: {"base": (0.5, 31.0), "angle": 1.0, "lengths": (64.0, 44.0, 28.0, 19.0), "radii": (3.8, 4.2, 3.6, 2.9),
            "spread": 1.6, "soft": 8.6},
    4: {"base": (-9.5, 29.0), "angle": -6.0, "lengths": (57.0, 41.0, 27.0, 19.0), "radii": (3.3, 3.8, 3.3, 2.8),
            "spread": 1.6, "soft": 8.1},
    5: {"base": (-18.0, 26.0), "angle": -13.0, "lengths": (52.0, 33.0, 19.0, 17.0), "radii": (3.2, 3.4, 2.9, 2.6),
            "spread": 1.5, "soft": 7.2},
}
BONE_KINDS = ("MC", "PP", "MP", "DP")

# relative hand length vs age (boys); girls follow age/0.9 up to their smaller adult size
_GROWTH_AGE = np.array([0, 12, 24, 48, 72, 96, 120, 144, 168, 192, 228], dtype=float)
_GROWTH_REL = np.array([0.34, 0.43, 0.49, 0.57, 0.64, 0.70, 0.75, 0.81, 0.90, 0.97, 1.0])


def hand_growth(age_months: float, male: bool) -> float:
    """Hand length relative to an adult man (1.0 = ~195 mm from radius to middle finger tip)."""
    if male:
        return float(np.interp(age_months, _GROWTH_AGE, _GROWTH_REL))
    return 0.92 * float(np.interp(age_months / 0.9, _GROWTH_AGE, _GROWTH_REL))


def epiphysis_stage(age_months: float, timing: tuple[float, ...], male: bool, jitter: float = 1.0) -> float:
    """Continuous stage in [0, 5]: <1 absent, 1 appears, 2 as wide as the metaphysis, 3 caps, 4 fusing, 5 fused."""
    t = np.array(timing, dtype=float)
    if not male:
        t[:2] *= FEMALE_EARLY
        t[2:] *= FEMALE_LATE
    t *= jitter
    if age_months < t[0]:
        # below onset: a negative-ish value that still grows with age (never visible)
        return float(max(0.0, age_months / t[0]) * 0.99)
    return float(np.interp(age_months, t, [1.0, 2.0, 3.0, 4.0, 5.0]))


def carpal_onset(name: str, male: bool) -> float:
    boys, girls = CARPAL_ONSET[name]
    return boys if male else girls


@dataclass
class Tube:
    """A long bone's ossified diaphysis: a tapered, capped cylinder with a cortical shell."""

    name: str
    a: np.ndarray  # proximal end point (mm)
    b: np.ndarray  # distal end point (mm)
    r_a: float  # end radius at a
    r_m: float  # shaft radius
    r_b: float  # end radius at b
    k_a: float = 1.0  # end flatness (1 round, >1 flatter)
    k_b: float = 1.0
    medulla: float = 0.55  # medullary radius / outer radius at mid shaft


@dataclass
class Ellipsoid:
    """A carpal bone or epiphysis: a (super-)ellipsoid with a cortical rim."""

    name: str
    c: np.ndarray  # centre (mm)
    a: float  # semi-axis along `axis`
    b: float  # semi-axis perpendicular
    axis: np.ndarray  # unit vector of the a semi-axis
    p: float = 2.0  # superellipse exponent (2 = ellipse; larger = squarer, more mature)
    add: bool = False  # overlap adds (pisiform over triquetrum) instead of union


@dataclass
class Soft:
    """Soft tissue: a tapered capsule whose thickness profile is an ellipse chord."""

    a: np.ndarray
    b: np.ndarray
    r_a: float
    r_b: float
    depth: float = 0.85  # thickness at the axis / (2 r)


@dataclass
class HandLayout:
    bones: list[Tube | Ellipsoid] = field(default_factory=list)
    soft: list[Soft] = field(default_factory=list)
    keypoints: list[np.ndarray] = field(default_factory=list)  # what must stay on the canvas
    polys: list[tuple[np.ndarray, float]] = field(default_factory=list)  # (points mm, thickness mm) slabs
    meta: dict = field(default_factory=dict)


def _unit(deg: float) -> np.ndarray:
    """Direction in the hand frame for an angle from +y (positive = towards the thumb, +x)."""
    r = np.deg2rad(deg)
    return np.array([np.sin(r), np.cos(r)])


def _perp(u: np.ndarray) -> np.ndarray:
    return np.array([-u[1], u[0]])


def build_hand(age_months: float, male: bool, rng: np.random.Generator) -> HandLayout:
    """The hand's bones and soft tissue in mm for a bone age, with small individual variation."""
    age = float(np.clip(age_months, 0.0, 240.0))
    lay = HandLayout()
    g = hand_growth(age, male) * float(np.exp(rng.normal(0.0, 0.04)))
    maturity = float(np.clip(age / (190.0 if male else 165.0), 0.0, 1.0))  # 0 newborn .. 1 adult
    chubby = 1.0 + 0.28 * float(np.clip(1.0 - age / 72.0, 0.0, 1.0))  # infants: more soft tissue
    slender = 0.80 + 0.20 * maturity  # young bones are thinner relative to the hand
    medulla = 0.68 - 0.16 * maturity  # cortex thickens with age
    jit = lambda s=0.045: float(np.exp(rng.normal(0.0, s)))  # per-centre timing jitter

    stages: dict[str, float] = {}
    joint = 1.7  # articular space (mm, adult); scaled with g below

    def epiphysis(name: str, kind: str, metaphysis: np.ndarray, outward: np.ndarray, r_meta: float,
                  zone: float, tilt: float = 0.0) -> tuple[float, float]:
        """Add the epiphysis of `name` beyond `metaphysis` (pointing `outward`); return (stage, gap)."""
        s = epiphysis_stage(age, EPI_TIMING[kind], male, jit())
        stages[name] = round(s, 3)
        if s < 1.0:
            return s, zone
        grow = float(np.clip((s - 1.0) / 2.0, 0.0, 1.0))
        if s < 4.0:
            gap = zone * (0.36 * (1.0 - grow) + 0.10)
        else:
            gap = zone * 0.10 * float(np.clip(5.0 - s, 0.0, 1.0))
        height = zone * (0.26 + 0.50 * grow + 0.14 * float(np.clip(s - 3.0, 0.0, 1.0)))
        width = r_meta * (0.30 + 0.70 * float(np.clip(s - 1.0, 0.0, 1.0)) + 0.10 * float(np.clip(s - 2.0, 0.0, 1.0)))
        centre = metaphysis + outward * (gap + height / 2.0)
        axis = _perp(outward)
        if tilt:
            c, sn = np.cos(np.deg2rad(tilt)), np.sin(np.deg2rad(tilt))
            axis = np.array([c * axis[0] - sn * axis[1], sn * axis[0] + c * axis[1]])
        lay.bones.append(Ellipsoid(name + "_epi", centre, width, height / 2.0, axis, p=2.0 + 0.8 * grow))
        return s, gap

    # ---------------- forearm: radius and ulna (epiphyses distal) ----------------
    rad_r = 5.8 * g * slender
    rad_end = 11.2 * g * slender
    rad_zone = 8.5 * g
    tip = np.array([4.5, 0.0]) * g
    up = np.array([0.0, 1.0])
    s_rad, _ = epiphysis("radius", "radius", tip - up * rad_zone, up, rad_end * 0.95, rad_zone, tilt=-14.0)
    fused = s_rad >= 4.5
    lay.bones.append(Tube("radius", np.array([5.5, -150.0]) * g, tip - up * (0.0 if fused else rad_zone),
                          rad_r, rad_r, rad_end, 1.0, 2.6, medulla))
    uln_r = 4.0 * g * slender
    uln_end = 6.0 * g * slender
    uln_zone = 6.5 * g
    utip = np.array([-13.5, -2.5]) * g
    s_uln, _ = epiphysis("ulna", "ulna", utip - up * uln_zone, up, uln_end, uln_zone)
    lay.bones.append(Tube("ulna", np.array([-15.5, -150.0]) * g, utip - up * (0.0 if s_uln >= 4.5 else uln_zone),
                          uln_r, uln_r, uln_end, 1.0, 2.0, medulla))

    # ---------------- carpals ----------------
    ossified = []
    carpal_sizes = {}
    for name in CARPALS:
        onset = carpal_onset(name, male) * jit(0.06)
        (cx, cy), (sa, sb), ang = CARPAL_SHAPE[name]
        if age < onset:
            carpal_sizes[name] = 0.0
            continue
        ossified.append(name)
        span = 120.0 if male else 100.0
        grow = float(np.clip((age - onset) / span, 0.0, 1.0)) ** 0.6
        size = 0.40 + 0.60 * grow
        carpal_sizes[name] = round(size, 3)
        # early centres are round and sit near the middle of the future bone
        a = 1.22 * sa * size * g * slender ** 0.5
        b = 1.22 * (sb * grow + min(sa, sb) * (1 - grow)) * size * g * slender ** 0.5
        angle = ang * grow
        lay.bones.append(Ellipsoid(name, np.array([cx, cy]) * g, a, b, np.array(
            [np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))]), p=2.0 + 1.0 * grow, add=(name == "pisiform")))

    # ---------------- rays ----------------
    tips = {}
    heads = {}
    for ray, spec in RAYS.items():
        base = np.array(spec["base"]) * g
        mc_dir = _unit(spec["angle"] + rng.normal(0.0, 1.5))
        fing_dir = _unit(spec["angle"] * spec["spread"] + rng.normal(0.0, 3.0))
        lengths = [None if L is None else L * g * jit(0.025) for L in spec["lengths"]]
        radii = [None if r is None else r * g * slender for r in spec["radii"]]
        pos = base.copy()
        for i, kind in enumerate(BONE_KINDS):
            L, r = lengths[i], radii[i]
            if L is None or r is None:
                continue
            d = mc_dir if kind == "MC" else fing_dir
            a, b = pos, pos + d * L
            name = f"{kind}{ray}"
            r_base = r * (1.55 if kind != "DP" else 1.35)
            r_head = r * (1.45 if kind == "MC" else (1.25 if kind != "DP" else 1.15))
            k_base, k_head = 2.2, (1.0 if kind == "MC" else 1.6)
            young = float(np.clip(1.0 - age / 36.0, 0.0, 1.0))  # unossified cartilage at bone ends
            epi_at_base = not (kind == "MC" and ray != 1)
            zone = 0.95 * (r_base if epi_at_base else r_head)
            timing_key = (kind + "1") if ray == 1 else kind
            if epi_at_base:
                s, _ = epiphysis(name, timing_key, a + d * zone, -d, r_base * 0.9, zone)
                a_vis = a if s >= 4.5 else a + d * zone
                b_vis = b - d * (0.07 * L * young)
            else:
                s, _ = epiphysis(name, timing_key, b - d * zone, d, r_head * 0.9, zone)
                b_vis = b if s >= 4.5 else b - d * zone
                a_vis = a + d * (0.06 * L * young)
            if kind == "DP":  # distal tuft: the end is a small flat knob
                r_head = r * 1.2
            lay.bones.append(Tube(name, a_vis, b_vis, r_base, r, r_head, k_base, k_head, medulla))
            pos = b + d * joint * g
        tips[ray] = pos
        soft_r = spec["soft"] * g * chubby
        mc_head = base + mc_dir * lengths[0]
        heads[ray] = (base, mc_head)
        lay.soft.append(Soft(mc_head - mc_dir * 4.0 * g, pos + fing_dir * 1.0 * g, soft_r * 1.05, soft_r * 0.9))
        lay.keypoints.append(pos + fing_dir * soft_r)
        if ray > 1:  # palm: a fat capsule along each metacarpal up to the finger web
            web = mc_head + fing_dir * lengths[1] * 0.38
            pr = 11.0 * g * chubby
            lay.soft.append(Soft(base - mc_dir * 6.0 * g, web, pr, pr * 0.95, depth=0.95))
        else:  # thenar eminence and the thumb web
            lay.soft.append(Soft(np.array([12.0, 8.0]) * g, mc_head, 12.5 * g * chubby, 10.0 * g * chubby, 0.95))
            lay.keypoints.append(mc_head + _perp(mc_dir) * -12.0 * g)

    mc1_head = np.array(RAYS[1]["base"]) * g + _unit(RAYS[1]["angle"]) * RAYS[1]["lengths"][0] * g
    mc2_mid = np.array(RAYS[2]["base"]) * g + _unit(RAYS[2]["angle"]) * RAYS[2]["lengths"][0] * g * 0.55
    lay.soft.append(Soft(mc2_mid, mc1_head, 9.0 * g * chubby, 8.0 * g * chubby, 0.7))
    # palm slab: fills the space between the capsules so the envelope has no holes
    mc1_mid = (heads[1][0] + heads[1][1]) / 2.0
    palm = np.array([heads[5][0], heads[5][1], heads[4][1], heads[3][1], heads[2][1], mc1_mid,
                     np.array([12.0, 6.0]) * g, np.array([-14.0, 8.0]) * g])
    lay.polys.append((palm, 2.0 * 10.0 * g * chubby * 0.95))
    # wrist and forearm (goes off the canvas)
    wr = 25.5 * g * chubby ** 0.5
    lay.soft.append(Soft(np.array([-3.0, 22.0]) * g, np.array([-4.0, -40.0]) * g, wr * 1.05, wr, 1.05))
    lay.soft.append(Soft(np.array([-4.0, -40.0]) * g, np.array([-5.0, -170.0]) * g, wr, wr * 1.15, 1.05))
    lay.keypoints += [np.array([-3.0 * g - wr, 0.0]), np.array([-3.0 * g + wr, 0.0])]

    lay.meta = {
        "hand_scale": round(g, 4),
        "carpals_ossified": ossified,
        "n_carpals": len(ossified),
        "carpal_sizes": carpal_sizes,
        "epiphysis_stages": stages,
        "bone_lengths_mm": {b.name: round(float(np.linalg.norm(b.b - b.a)), 2) for b in lay.bones
                            if isinstance(b, Tube) and b.name not in ("radius", "ulna")},
    }
    return lay
