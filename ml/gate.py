"""Films the platform should not read as they are (issue 29): blank or noise, not a hand, wrong polarity, turned on its
side or upside down, two hands. Judged from what the pipeline computes anyway, the Canny automask and its quality
score, before any model:

- **blank**: almost no grey levels (a film's spread below `BLANK_SPREAD`) — refused;
- **not a hand**: no hand outline (automask quality below `NO_HAND_QUALITY`) — flagged;
- **polarity**: the inverted film's automask scores clearly better (by `POLARITY_MARGIN`) than the film's own: bright
  background and dark bone (an uninverted MONOCHROME1, a negative) — corrected when sure, else flagged;
- **orientation**: where the forearm leaves the film. A PA hand film shows it at the bottom; a mask that meets one
  other border, and that border alone, says which way the film is turned — corrected (turned fingers-up) when sure,
  else nothing is said (a hand wholly inside the film has no forearm edge to read);
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
POLARITY_MARGIN = 0.15     # the inverted film's quality must beat the film's own by this much
SURE_QUALITY = 0.85        # a correction needs a mask this good after it
SECOND_HAND = 0.6          # a second mask component this large (of the first) is a second hand
EDGE_BAND = 0.02           # the border band (share of the side) a forearm crosses
TURNS = {"bottom": 0, "right": 3, "top": 2, "left": 1}  # np.rot90 k that brings the forearm to the bottom


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
    flipped = automask(1.0 - unit)  # a negative's automask finds its bright background: a poorer outline
    if flipped.quality >= quality + POLARITY_MARGIN:
        inverted = True
        sure = flipped.quality >= SURE_QUALITY
        verdict = "corrected" if sure else "flagged"
        reasons.append(f"{'inverted polarity, corrected' if sure else 'the polarity may be inverted'} (mask quality "
                       f"{result.quality:.2f} as stored, {flipped.quality:.2f} inverted)")
        if sure:
            quality, mask = float(flipped.quality), flipped.mask
    if quality < NO_HAND_QUALITY and not inverted:
        why = f"no hand outline found (mask quality {quality:.2f}): is this a hand radiograph?"
        return FilmCheck("flagged", (why,), quality=quality)
    side, share = forearm_side(mask)
    turns = TURNS[side] if side else 0
    if turns:
        if quality >= SURE_QUALITY:
            verdict = "corrected"
            reasons.append(f"the forearm leaves the film at the {side}: turned fingers-up")
        else:
            verdict = "flagged" if verdict == "read" else verdict
            reasons.append(f"the forearm seems to leave the film at the {side} (mask quality {quality:.2f}): "
                           f"turned or landscape?")
    sizes = _components(mask)
    raw = result.details.get("dominance")  # the components the automask dropped, markers included
    if (len(sizes) > 1 and sizes[1] >= SECOND_HAND * sizes[0]) or (raw is not None and raw < 1 / (1 + SECOND_HAND)):
        verdict = "flagged" if verdict == "read" else verdict
        reasons.append("two hands on one film: the mask keeps the larger; check it is the hand to read")
    return FilmCheck(verdict, tuple(reasons), inverted, turns, side, quality,
                     {"forearm_share": {k: round(v, 3) for k, v in share.items()}})
