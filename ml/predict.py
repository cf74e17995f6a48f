"""python -m ml.predict --ckpt CKPT --data DIR --out CSV  →  CSV columns id,pred_months,std_months,outside,outside_reason.

`outside` (`true|false`): the reading is outside the model's experience at the version's threshold (ml.ood);
`outside_reason` says why in words (empty when inside; "no reference: …" for a checkpoint without one)."""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from ml.checkpoint import CheckpointError, resolve_checkpoint
from ml.data import DataError, read_folder
from ml.imaging import load_image
from ml.infer import Predictor


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.predict", description="Predict bone age for a data folder.")
    ap.add_argument("--ckpt", required=True, help="checkpoint written by ml.train, or `starter` (the shipped weights)")
    ap.add_argument("--data", required=True, help="folder with labels.csv and images/ (boneage may be blank)")
    ap.add_argument("--out", required=True, help="CSV to write: id,pred_months,std_months,outside,outside_reason")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        predictor = Predictor(resolve_checkpoint(args.ckpt))
        samples = read_folder(args.data, ages_required=False)
        rows, errors, flagged = [], [], 0
        for i in range(0, len(samples), args.batch_size):
            chunk = samples[i:i + args.batch_size]
            preds = predictor.predict_batch([load_image(s.image_path) for s in chunk], [s.male for s in chunk],
                                            with_attention=False)
            for s, p in zip(chunk, preds):
                rows.append((s.id, f"{p.age_months:.2f}", f"{p.std_months:.2f}", "true" if p.outside else "false",
                             p.outside_reason))
                flagged += p.outside
                if not np.isnan(s.age_months):
                    errors.append(abs(p.age_months - s.age_months))
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "pred_months", "std_months", "outside", "outside_reason"])
            writer.writerows(rows)
    except (CheckpointError, DataError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mae = f", MAE {np.mean(errors):.2f} months vs labels.csv" if errors else ""
    known = "" if predictor.ood_reference is not None else " (this checkpoint has no reference: not judged)"
    print(f"predicted {len(rows)} images in {time.perf_counter() - t0:.1f}s{mae}, {flagged} outside the model's "
          f"experience{known} → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
