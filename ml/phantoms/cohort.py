"""Write a cohort of phantoms as an RSNA-style folder (labels.csv + PNGs) or as DICOM files."""
from __future__ import annotations

import csv
import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ml.phantoms.render import DISTRACTOR_MODES, Phantom, render

FORMATS = ("rsna", "dicom")
FIRST_ID = 1000
META_COLUMNS = ("id", "boneage", "male", "split", "hand", "rotation_deg", "px_per_mm", "height", "width",
                "n_carpals", "carpals_ossified", "epiphysis_stages", "distractor_mode", "shortcut_style",
                "distractors", "seed", "format", "photometric", "modality")


@dataclass
class CohortResult:
    out_dir: Path
    n: int
    n_male: int
    fmt: str
    distractors: str
    seconds: float
    images_per_s: float
    ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"wrote {self.n} phantoms ({self.n_male} male, {self.n - self.n_male} female, fmt={self.fmt}, "
                f"distractors={self.distractors}) to {self.out_dir} in {self.seconds:.1f} s "
                f"({self.images_per_s:.1f} images/s)")


def sample_subject(seed: int, index: int) -> tuple[float, bool, int]:
    """(bone age in whole months 0–228, male, render seed) for image `index` of cohort `seed`."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index), 0xB0E])
    rng = np.random.default_rng(ss)
    age = float(rng.integers(0, 229))
    male = bool(rng.random() < 0.5)
    render_seed = int(ss.generate_state(2, np.uint64)[1] >> np.uint64(1))
    return age, male, render_seed


def write_png16(path: Path, image: np.ndarray) -> None:
    Image.fromarray(image.astype(np.uint16)).save(path, compress_level=1)


def write_mask(path: Path, mask: np.ndarray) -> None:
    Image.fromarray(mask.astype(np.uint8)).save(path, compress_level=1)


def generate_cohort(out_dir, n: int, seed: int, *, fmt: str = "rsna", distractors: str = "none",
                    size: int | None = 512, progress: bool = True) -> CohortResult:
    """Write `n` phantoms to `out_dir`: labels.csv (id,boneage,male), images/, masks/, meta.csv.

    Deterministic per seed: the same arguments give byte-identical files. In "shortcut" mode the
    even-numbered images form the train half (tag style = age bracket) and the odd ones the test half.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if distractors not in DISTRACTOR_MODES:
        raise ValueError(f"distractors must be one of {DISTRACTOR_MODES}, got {distractors!r}")
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    iterator = range(int(n))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="phantoms", unit="img")
    labels, metas, ids = [], [], []
    n_male = 0
    for i in iterator:
        age, male, rseed = sample_subject(seed, i)
        split = "train" if i % 2 == 0 else "test"
        sid = str(FIRST_ID + i)
        ph = render(age, male, rseed, size=size, distractors=distractors, split=split)
        extra: dict = {"photometric": "", "modality": ""}
        if fmt == "rsna":
            write_png16(out / "images" / f"{sid}.png", ph.image)
        else:
            from ml.phantoms.dicom import write_dicom

            extra = write_dicom(out / "images" / f"{sid}.dcm", ph, sid, seed=seed, index=i)
        write_mask(out / "masks" / f"{sid}.png", ph.mask)
        n_male += male
        ids.append(sid)
        labels.append((sid, int(age), "True" if male else "False"))
        m = ph.meta
        metas.append({
            "id": sid, "boneage": int(age), "male": "True" if male else "False", "split": split,
            "hand": m["hand"], "rotation_deg": m["rotation_deg"], "px_per_mm": m["px_per_mm"],
            "height": m["height"], "width": m["width"], "n_carpals": m["n_carpals"],
            "carpals_ossified": ";".join(m["carpals_ossified"]),
            "epiphysis_stages": json.dumps(m["epiphysis_stages"], sort_keys=True),
            "distractor_mode": distractors, "shortcut_style": m["shortcut_style"] or "",
            "distractors": json.dumps(m["distractors"]), "seed": rseed, "format": fmt, **extra,
        })
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "boneage", "male"])
        w.writerows(labels)
    with open(out / "meta.csv", "w", newline="") as fh:
        dw = csv.DictWriter(fh, fieldnames=list(META_COLUMNS), lineterminator="\n")
        dw.writeheader()
        dw.writerows(metas)
    secs = time.perf_counter() - t0
    return CohortResult(out, int(n), n_male, fmt, distractors, secs, int(n) / max(secs, 1e-9), ids)


def study_dates(seed: int, index: int, age_months: float) -> tuple[dt.date, dt.date]:
    """(study date, birth date) consistent with the age; deterministic."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), 0xDA7E])
    study = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 9)))
    birth = study - dt.timedelta(days=round(age_months * 30.4375))
    return study, birth


__all__ = ["CohortResult", "Phantom", "generate_cohort", "sample_subject", "study_dates"]
