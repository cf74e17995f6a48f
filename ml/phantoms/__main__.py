"""python -m ml.phantoms --n N --seed S --out DIR [--format rsna|dicom] [--distractors ...] [--size PX|native]"""
from __future__ import annotations

import argparse
import sys

from ml.phantoms.cohort import FORMATS, generate_cohort
from ml.phantoms.render import DISTRACTOR_MODES


def _size(text: str) -> int | None:
    if text.lower() == "native":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must be a number of pixels or 'native', got {text!r}") from None
    if not 64 <= value <= 8192:
        raise argparse.ArgumentTypeError(f"--size must be between 64 and 8192, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ml.phantoms",
        description="Write synthetic hand radiographs with ground truth: DIR/labels.csv (id,boneage,male), "
                    "DIR/images/<id>.png|.dcm, DIR/masks/<id>.png (0/255) and DIR/meta.csv.")
    ap.add_argument("--n", type=_positive, required=True, help="number of phantoms")
    ap.add_argument("--seed", type=int, default=0, help="cohort seed (same seed → identical files)")
    ap.add_argument("--out", required=True, help="output directory (created if missing)")
    ap.add_argument("--format", choices=FORMATS, default="rsna", help="rsna: 16-bit PNG; dicom: CR/DX .dcm")
    ap.add_argument("--distractors", choices=DISTRACTOR_MODES, default="none",
                    help="none | random (markers, text, rulers, collimation, second hand) | shortcut")
    ap.add_argument("--size", type=_size, default=512, help="long side in px, or 'native' (1600–2600 px)")
    ap.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = ap.parse_args(argv)
    try:
        result = generate_cohort(args.out, args.n, args.seed, fmt=args.format, distractors=args.distractors,
                                 size=args.size, progress=not args.no_progress)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
