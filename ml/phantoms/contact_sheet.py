"""Contact sheet for docs/phantoms.png: ages 1, 3, 6, 10, 13, 16 y, girls and boys, plus distractor examples.

    python -m ml.phantoms.contact_sheet [--out docs/phantoms.png] [--tile 300]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from PIL import Image, ImageDraw

from ml.phantoms.render import _font, render

AGES_Y = (1, 3, 6, 10, 13, 16)


def tile(image: np.ndarray, side: int) -> Image.Image:
    img = Image.fromarray((image >> 8).astype(np.uint8))
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    canvas = Image.new("L", (side, side), 0)
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return canvas


def build(side: int = 300, seed: int = 3) -> Image.Image:
    rows = [("girls", False, "none"), ("boys", True, "none"), ("random distractors", None, "random")]
    label_h = 22
    sheet = Image.new("L", (side * len(AGES_Y), (side + label_h) * len(rows)), 255)
    draw = ImageDraw.Draw(sheet)
    font = _font(15)
    for r, (name, male, mode) in enumerate(rows):
        for c, years in enumerate(AGES_Y):
            m = (c % 2 == 0) if male is None else male
            ph = render(years * 12.0, m, seed=seed * 100 + c + 10 * r, size=768, distractors=mode)
            y = r * (side + label_h)
            sheet.paste(tile(ph.image, side), (c * side, y + label_h))
            text = f"{name.split()[0] if male is not None else ('boy' if m else 'girl')} {years} y, " \
                   f"{ph.meta['n_carpals']} carpals"
            draw.text((c * side + 4, y + 3), text, fill=0, font=font)
    return sheet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.phantoms.contact_sheet")
    ap.add_argument("--out", default="docs/phantoms.png")
    ap.add_argument("--tile", type=int, default=300)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)
    build(args.tile, args.seed).save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
