"""Films the platform should not read as they are (issue 29): blank or noise, not a hand, wrong polarity, turned on its
side or upside down, two hands. Judged from what the pipeline computes anyway, the Canny automask and its quality
score, before any model:

- **blank**: almost no grey levels (a film's spread below `BLANK_SPREAD`) — refused;
- **not a hand**: no hand outline (automask quality below `NO_HAND_QUALITY`) — flagged;
- **polarity**: the inverted film holds clearly better evidence of a hand (by `POLARITY_MARGIN`) than the film as
  it is: bright background and dark bone (an uninverted MONOCHROME1, a negative) — corrected when sure, else flagged.
  The evidence (`hand_evidence`) is the automask's quality, counted only where the mask is brighter than what
  surrounds it (Canny's outline is the same on a negative, the grey inside it is not) and covers a hand's share of the
  film, and lowered where no fingers show (`fingers_side`);
- **orientation**: which way the fingers point, and where the forearm leaves the film. Rows across a hand's finger
  end cross four or five fingers, rows across its wrist one forearm (`fingers_side`); a mask that meets one border
  alone says where the forearm leaves. Turned fingers-up when the two agree, or the fingers alone are clear on a good
  mask; flagged when they disagree or only a weak cue is there;
- **two hands**: a second component of the hand mask at least `SECOND_HAND` of the first's size — flagged (the
  labeler picks the hand; the automask keeps the larger).

`check_film(unit)` → `FilmCheck` (pure numpy; the automask result can be passed in to avoid computing it twice).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ml.automask import AutomaskResult, automask

BLANK_SPREAD = 0.02        # grey-level spread (p99 − p1 of [0, 1]) below which a film holds nothing
NO_HAND_QUALITY = 0.3      # automask quality below which no hand outline was found
POLARITY_MARGIN = 0.1      # the inverted film's hand evidence must beat the film's own by this much
SURE_POLARITY_GAP = 0.3    # and by this much for the check to correct it
SURE_QUALITY = 0.85        # a correction needs a mask this good after it
SECOND_HAND = 0.6          # a second mask component this large (of the first) is a second hand
EDGE_BAND = 0.02           # the border band (share of the side) a forearm crosses
TURNS = {"bottom": 0, "right": 3, "top": 2, "left": 1}  # np.rot90 k that brings the forearm to the bottom
TURN_WORDS = {1: "90° counter-clockwise", 2: "upside down", 3: "90° clockwise"}  # what np.rot90 k does
OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}
# Fingers: the mean count of mask runs a row (or column) crosses in the third of the mask's box at one side, minus
# that at the opposite side. 80 upright train-part films: fingers at the top on all, score 0.85–2.3, the next side
# 0.41 or more below.
FINGERS_SCORE = 0.8
FINGERS_MARGIN = 0.3
HAND_AREA = (0.04, 0.75)   # the share of the film a hand's mask covers (a marker is less, a background more)
UNFINGERED = 0.75          # evidence kept by a mask that shows no fingers
CHECK_SIDE = 512           # the polarity and finger cues are read at about this size


@dataclass(frozen=True)
class FilmCheck:
    verdict: str                       # "read" | "corrected" | "flagged" | "refused"
    reasons: tuple[str, ...] = ()
    inverted: bool = False             # the film was (or looks) inverted
    turns: int = 0                     # np.rot90 k applied (or suggested) to bring the fingers up
    forearm_side: str | None = None
    quality: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def corrected(self, unit: np.ndarray) -> np.ndarray:
        """The film as the platform should read it: inverted and turned as this check found (a no-op for "read")."""
        out = 1.0 - unit if self.inverted and self.verdict == "corrected" else unit
        return np.rot90(out, self.turns).copy() if self.turns and self.verdict == "corrected" else out

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "reason": self.reason, "inverted": self.inverted, "turns": self.turns,
                "forearm_side": self.forearm_side, "quality": round(self.quality, 3)}


def forearm_side(mask: np.ndarray) -> tuple[str | None, dict[str, float]]:
    """The border the hand mask meets (its share of the mask's border contact per side); None when it meets none, or
    more than one side substantially (a frame, a panel, a diagonal arm through a corner)."""
    m = np.asarray(mask) > 0
    h, w = m.shape
    bh, bw = max(2, round(EDGE_BAND * h)), max(2, round(EDGE_BAND * w))
    contact = {"bottom": float(m[-bh:].sum()), "right": float(m[:, -bw:].sum()),
               "top": float(m[:bh].sum()), "left": float(m[:, :bw].sum())}
    total = sum(contact.values())
    if total == 0:
        return None, {k: 0.0 for k in contact}
    share = {k: v / total for k, v in contact.items()}
    side = max(share, key=lambda k: share[k])
    return (side if share[side] >= 0.9 else None), share


def _runs_by_side(mask: np.ndarray) -> dict[str, float] | None:
    """The mean number of runs of mask a row crosses in the top and bottom thirds of the mask's box, and a column in
    its left and right thirds; None for a mask too small to tell."""
    m = np.asarray(mask) > 0
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    if len(rows) < 12 or len(cols) < 12:
        return None
    m = m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.int8)
    per_row = (np.diff(m, axis=1) == 1).sum(1) + m[:, 0]
    per_col = (np.diff(m, axis=0) == 1).sum(0) + m[0, :]
    kr, kc = max(1, len(per_row) // 3), max(1, len(per_col) // 3)
    return {"top": float(per_row[:kr].mean()), "bottom": float(per_row[-kr:].mean()),
            "left": float(per_col[:kc].mean()), "right": float(per_col[-kc:].mean())}


def fingers_side(mask: np.ndarray) -> tuple[str | None, dict[str, float]]:
    """The side the fingers point to (the side whose rows cross clearly more runs of mask than the opposite side's,
    and clearly more so than any other side), and each side's score; None when no side is clear."""
    runs = _runs_by_side(mask)
    if runs is None:
        return None, {}
    score = {side: runs[side] - runs[OPPOSITE[side]] for side in runs}
    first, second = sorted(score, key=lambda k: score[k], reverse=True)[:2]
    clear = score[first] >= FINGERS_SCORE and score[first] - score[second] >= FINGERS_MARGIN
    return (first if clear else None), score


def _small(a: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil(max(a.shape) / CHECK_SIDE)))
    return a[::step, ::step]


def _inside_minus_around(unit: np.ndarray, mask: np.ndarray) -> float | None:
    """The median grey inside the mask (3 px in) minus that of a ring 3–25 px outside it: positive for a hand on a
    correctly shown film, negative for the same outline on a negative; None for a mask too small to tell."""
    inner = ndimage.binary_erosion(mask, iterations=3)
    outside = ndimage.distance_transform_edt(~mask)
    ring = (outside > 3) & (outside <= 25)
    if inner.sum() < 50 or ring.sum() < 50:
        return None
    return float(np.median(unit[inner]) - np.median(unit[ring]))


def hand_evidence(unit: np.ndarray, result: AutomaskResult) -> float:
    """How much the automask of this film, as shown, looks like a hand on a correctly shown film: its quality where the
    mask is brighter than its surround and covers a hand's share of the film, lowered by `UNFINGERED` where no fingers
    show; 0 otherwise."""
    mask = _small(np.asarray(result.mask) > 0)
    if not HAND_AREA[0] <= float(mask.mean()) <= HAND_AREA[1]:
        return 0.0
    contrast = _inside_minus_around(_small(unit), mask)
    if contrast is None or contrast <= 0.02:
        return 0.0
    return float(result.quality) * (1.0 if fingers_side(mask)[0] else UNFINGERED)


def _components(mask: np.ndarray) -> list[int]:
    lab, n = ndimage.label(np.asarray(mask) > 0)
    if not n:
        return []
    return sorted((int(v) for v in ndimage.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))), reverse=True)


def check_film(unit: np.ndarray, result: AutomaskResult | None = None) -> FilmCheck:
    """One film (float [0, 1], bright bone expected) → what the platform should do before reading it."""
    unit = np.asarray(unit, np.float32)
    p1, p99 = np.quantile(unit[::4, ::4], [0.01, 0.99])
    if float(p99 - p1) < BLANK_SPREAD:
        return FilmCheck("refused", (f"a blank film: its grey levels span {float(p99 - p1):.3f} of the range",))
    result = result or automask(unit)
    reasons: list[str] = []
    verdict, inverted, quality, mask = "read", False, float(result.quality), result.mask
    flipped = automask(1.0 - unit)  # a negative's automask on the inverted film finds a bright hand on dark
    own, other = hand_evidence(unit, result), hand_evidence(1.0 - unit, flipped)
    if other >= own + POLARITY_MARGIN:
        inverted = True
        sure = other >= SURE_QUALITY and own <= other - SURE_POLARITY_GAP
        verdict = "corrected" if sure else "flagged"
        reasons.append(f"{'the film is inverted (a negative): read it inverted' if sure else 'the polarity may be inverted'}"
                       f" (hand evidence {own:.2f} as stored, {other:.2f} inverted)")
        if sure:
            quality, mask = float(flipped.quality), flipped.mask
    if quality < NO_HAND_QUALITY and not inverted:
        why = f"no hand outline found (mask quality {quality:.2f}): is this a hand radiograph?"
        return FilmCheck("flagged", (why,), quality=quality)
    side, share = forearm_side(mask)
    fingers, score = fingers_side(_small(np.asarray(mask) > 0))
    if fingers:  # the fingers are the clearer cue: a fingertip touching the top border is no forearm there
        turns = TURNS[OPPOSITE[fingers]]
        agree = side is None or side == OPPOSITE[fingers]
        if turns and agree and (quality >= SURE_QUALITY or side is not None):
            verdict = "corrected" if verdict != "flagged" else verdict
            reasons.append(f"the fingers point to the {fingers}: turn the film {TURN_WORDS[turns]} to read it fingers-up")
        elif turns:
            verdict = "flagged"
            reasons.append(f"the fingers seem to point to the {fingers} (mask quality {quality:.2f}"
                           f"{f', the forearm at the {side}' if side else ''}): turned or landscape? It would read "
                           f"fingers-up turned {TURN_WORDS[turns]}")
    else:
        turns = TURNS[side] if side else 0
        if turns:  # unsure: a correction of the polarity is not applied either ("corrected" means sure of all)
            verdict = "flagged"
            reasons.append(f"the forearm seems to leave the film at the {side} and no fingers show clearly (mask "
                           f"quality {quality:.2f}): turned or landscape?")
    sizes = _components(mask)
    raw = result.details.get("dominance")  # the components the automask dropped, markers included
    if (len(sizes) > 1 and sizes[1] >= SECOND_HAND * sizes[0]) or (raw is not None and raw < 1 / (1 + SECOND_HAND)):
        verdict = "flagged"
        reasons.append("two hands on one film: the mask keeps the larger; check it is the hand to read")
    return FilmCheck(verdict, tuple(reasons), inverted, turns, side, quality,
                     {"forearm_share": {k: round(v, 3) for k, v in share.items()},
                      "fingers_score": {k: round(v, 2) for k, v in score.items()},
                      "hand_evidence": {"stored": round(own, 3), "inverted": round(other, 3)}})
