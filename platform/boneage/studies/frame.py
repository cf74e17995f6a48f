"""The frame the platform reads a film in (issue 29): the stored film, inverted when its polarity is wrong, then turned
fingers-up by np.rot90 k (counter-clockwise quarter turns). The original file is never changed; its derived copies
(normalized, display, work) are made in this frame, and so are the masks, boxes and attention maps drawn on them. What
must refer to the original's pixel grid (the DICOM SEG) turns back with `to_stored`; DICOMweb's rendered image of a
film read in another frame is decoded from the original again.

Two hands on one film: a labeler picks the one to read (`hand`, the left or right half of the film as read, after
the turn); the copies keep the film's size with the other half dark, so the automask and the network see that hand
only and every coordinate stays the film's.

Set by the automask stage when the film check (ml.gate) is sure ("corrected"), or by a labeler
(annotations.frame.do_set_frame): "read as stored" undoes it, a flagged suggestion can be applied by hand.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# what np.rot90 k does to the film (ml.gate.TURN_WORDS says the same of its suggestions)
TURN_WORDS = {1: "90° counter-clockwise", 2: "upside down", 3: "90° clockwise"}
HANDS = ("", "left", "right")  # which half of the film (as read) holds the hand to read; "": the whole film


@dataclass(frozen=True)
class Frame:
    turns: int = 0
    inverted: bool = False
    hand: str = ""

    def __post_init__(self) -> None:
        if self.turns not in (0, 1, 2, 3):
            raise ValueError(f"turns is a number of quarter turns, 0 to 3, not {self.turns!r}")
        if self.hand not in HANDS:
            raise ValueError(f"hand is 'left', 'right' or '', not {self.hand!r}")

    @property
    def as_stored(self) -> bool:
        return self.turns == 0 and not self.inverted and not self.hand

    def to_read(self, array: np.ndarray, white: float = 1.0) -> np.ndarray:
        """A stored-frame array (grey levels 0..white) in this frame: inverted first, then turned. Geometry only (a
        mask): the picked hand does not blank it (`keep_hand` does, for pixels)."""
        out = white - array if self.inverted else array
        return np.ascontiguousarray(np.rot90(out, self.turns)) if self.turns else out

    def other_half(self, width: int) -> slice | None:
        """The columns (of the film as read, `width` wide) that are not the picked hand; None when none is picked."""
        if not self.hand:
            return None
        return slice(width // 2, width) if self.hand == "left" else slice(0, width // 2)

    def to_stored(self, mask: np.ndarray) -> np.ndarray:
        """A mask (or any geometry-only array) drawn in this frame, on the original's grid: turned back. Polarity
        does not move a pixel."""
        return np.ascontiguousarray(np.rot90(mask, -self.turns)) if self.turns else mask

    def words(self) -> str:
        """What was done, in words: "turned 90° clockwise and inverted"; "" when nothing."""
        parts = ([f"turned {TURN_WORDS[self.turns]}"] if self.turns else []) + (["inverted"] if self.inverted else [])
        if self.hand:
            parts.append(f"keeping only the hand on the {self.hand} half")
        return " and ".join(parts)


def frame_of(image) -> Frame:
    """The frame a studies.models.Image is read in."""
    return Frame(int(image.turns or 0), bool(image.inverted), image.hand or "")


def describe(image) -> dict:
    """The frame as the API and the study page state it: what was done, by whom, and in words."""
    frame = frame_of(image)
    source = image.frame_source or ""
    if frame.as_stored:
        sentence = "The platform reads the film as stored."
    else:
        who = ("the film check was sure" if source == "film_check"
               else "a labeler chose it (see the history)" if source == "person" else "")
        upright = " (fingers-up, bright bone)" if frame.turns or frame.inverted else ""
        sentence = f"The platform reads this film {frame.words()}{upright}{f': {who}' if who else ''}."
    return {"turns": frame.turns, "inverted": frame.inverted, "hand": frame.hand, "source": source,
            "as_stored": frame.as_stored,
            "sentence": sentence, "read_width": image.read_width, "read_height": image.read_height}
