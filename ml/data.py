"""Training data: the RSNA/phantom folder layout, a stable 90/10 split, and an augmenting Dataset.

Folder layout: `DIR/labels.csv` (id, boneage, male), `DIR/images/<id>.png|.dcm`, optional
`DIR/masks/<id>.png` (0/255 hand masks: Canny or expert-corrected); a sample without a mask file
trains on the Canny mask of `ml.automask` (as the paper's Mask R-CNN did), computed once per image
file and cached in memory and on disk (`automask_cached`). Images are padded to a square
with background and resized to `work_size`; augmentation (random crop/resize via scale+shift,
rotation, mirror, gamma) is applied jointly to image and mask with one affine grid.
"""
from __future__ import annotations

import csv
import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ml.imaging import load_image

IMAGE_SUFFIXES = (".png", ".dcm", ".dicom", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Sample:
    id: str
    image_path: Path
    mask_path: Path | None
    age_months: float
    male: bool | None


class DataError(ValueError):
    """A data folder or file this code cannot use; the message says which and why."""


def _parse_male(value: str) -> bool | None:
    v = value.strip().lower()
    if v in ("true", "1", "m", "male", "yes"):
        return True
    if v in ("false", "0", "f", "female", "no"):
        return False
    if v in ("", "none", "nan", "unknown"):
        return None
    raise DataError(f"cannot read sex value {value!r}")


# The RSNA Pediatric Bone Age files name their columns differently (issue 30): training `id,boneage,male`; validation
# `Image ID,male,Bone Age (months)`; test `Case ID,Sex` (M/F), with `Ground truth bone age (months)` once released.
ID_COLUMNS = ("id", "Image ID", "Case ID")
AGE_COLUMNS = ("boneage", "Bone Age (months)", "Ground truth bone age (months)")
SEX_COLUMNS = ("male", "Sex")


@dataclass(frozen=True)
class LabelRow:
    id: str
    age_months: float          # nan where the file has no bone age (a test set before its truth is released)
    male: bool | None


@dataclass(frozen=True)
class LabelColumns:
    id: str
    age: str | None
    sex: str | None

    @classmethod
    def of(cls, names: list[str], ages_required: bool = True) -> LabelColumns:
        """The columns of a labels file's header; DataError when it is none of the known layouts."""
        def column(options: tuple[str, ...]) -> str | None:
            return next((c for c in options if c in names), None)
        id_col, age_col = column(ID_COLUMNS), column(AGE_COLUMNS)
        if id_col is None or (age_col is None and ages_required):
            raise DataError(f"columns {names} are none of the known layouts: id,boneage,male (RSNA training); "
                            "Image ID,male,Bone Age (months) (validation); Case ID,Sex[,Ground truth bone age (months)] "
                            "(test)")
        return cls(id_col, age_col, column(SEX_COLUMNS))

    def parse(self, row: dict[str, str], ages_required: bool = True) -> LabelRow:
        """One row; DataError saying what is wrong with it."""
        sid = (row.get(self.id) or "").strip()
        if not sid:
            raise DataError("no id")
        raw = (row.get(self.age) or "").strip() if self.age else ""
        if not raw and ages_required:
            raise DataError(f"id {sid!r} has no bone age (training needs one)")
        try:
            age = float(raw) if raw else math.nan
        except ValueError:
            raise DataError(f"id {sid!r} has non-numeric bone age {raw!r}") from None
        if not math.isfinite(age) and raw:
            raise DataError(f"id {sid!r} has bone age {raw!r}, not a finite number")
        try:
            male = _parse_male(row.get(self.sex) or "") if self.sex else None
        except DataError as error:
            raise DataError(f"id {sid!r}: {error}") from None
        return LabelRow(sid, age, male)


def read_label_rows(path: str | Path, ages_required: bool = True) -> list[LabelRow]:
    """The rows of a labels file in any of the RSNA layouts (or this project's `id,boneage,male`). Raises DataError
    naming the file, the line and the reason; `ages_required=False` reads a blank or absent bone age as nan."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        reader.fieldnames = [n.strip() for n in reader.fieldnames or []]
        try:
            columns = LabelColumns.of(list(reader.fieldnames), ages_required)
        except DataError as error:
            raise DataError(f"{path}: {error}") from None
        rows = []
        for number, row in enumerate(reader, start=2):
            try:
                rows.append(columns.parse(row, ages_required))
            except DataError as error:
                raise DataError(f"{path}, line {number}: {error}") from None
    return rows


def read_folder(root: str | Path, ages_required: bool = True) -> list[Sample]:
    """`labels.csv` (any layout `read_label_rows` knows) + `images/` (+ `masks/`) → samples sorted by id. Raises
    DataError with the reason."""
    root = Path(root)
    labels = root / "labels.csv"
    if not labels.is_file():
        raise DataError(f"{root}: no labels.csv (expected columns id,boneage,male)")
    images = {p.stem: p for p in (root / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in (root / "masks").glob("*.png")}
    samples = []
    for row in read_label_rows(labels, ages_required):
        if row.id not in images:
            raise DataError(f"{root}/images: no image for id {row.id!r}")
        samples.append(Sample(row.id, images[row.id], masks.get(row.id), row.age_months, row.male))
    if not samples:
        raise DataError(f"{labels}: no rows")
    return sorted(samples, key=lambda s: s.id)


def split_ids(ids: list[str], val_fraction: float = 0.1) -> set[str]:
    """Validation ids: a stable function of each id alone (sha1 bucket), so adding data never moves old ids."""
    def bucket(i: str) -> float:
        return int(hashlib.sha1(i.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    val = {i for i in ids if bucket(i) < val_fraction}
    if not val and len(ids) > 1:  # tiny sets: at least one validation id
        val = {min(ids, key=bucket)}
    return val


def fingerprint(samples: list[Sample]) -> str:
    """sha256 over (id, age, sex, has-mask) of the training set, order independent."""
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s.id):
        h.update(f"{s.id}\t{s.age_months:.3f}\t{s.male}\t{s.mask_path is not None}\n".encode())
    return h.hexdigest()


_AUTOMASK_MEMO: dict[tuple[str, int, int, int], np.ndarray] = {}


def _cache_root() -> Path:
    return Path(os.environ.get("BONEAGE_CACHE_DIR") or Path.home() / ".cache" / "boneage")


def mask_cache_dir() -> Path:
    """Disk cache for Canny masks: $BONEAGE_CACHE_DIR/automask (default ~/.cache/boneage/automask)."""
    return _cache_root() / "automask"


def automask_cached(image_path: Path, image: np.ndarray) -> np.ndarray:
    """The `ml.automask` Canny mask (uint8 0/255) of an image file, cached by (path, mtime, size, automask version).

    Falls back to `threshold_mask` if the Canny mask is empty (automask found no hand).
    """
    from ml.automask import VERSION

    st = image_path.stat()
    key = (str(image_path.resolve()), st.st_mtime_ns, st.st_size, VERSION)
    if key in _AUTOMASK_MEMO:
        return _AUTOMASK_MEMO[key]
    name = hashlib.sha1(repr(key).encode()).hexdigest() + ".png"
    cache = mask_cache_dir() / name
    mask = None
    if cache.is_file():
        try:
            with Image.open(cache) as m:
                mask = np.asarray(m.convert("L"))
            if mask.shape != image.shape:
                mask = None
        except (OSError, ValueError):
            mask = None
    if mask is None:
        from ml.automask import automask

        mask = automask(image).mask
        if not (mask > 127).any():
            mask = threshold_mask(image)
        try:  # best effort: a read-only home just means no disk cache
            cache.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".mask-", suffix=".png", dir=cache.parent)
            os.close(fd)
            Image.fromarray(mask).save(tmp, format="PNG")
            os.replace(tmp, cache)
        except OSError:
            pass
    _AUTOMASK_MEMO[key] = mask
    return mask


def threshold_mask(image: np.ndarray) -> np.ndarray:
    """Last-resort hand mask (automask found nothing): Otsu threshold, largest component, holes filled."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    fg = image > threshold_otsu(image) if image.max() > image.min() else np.ones_like(image, bool)
    lab, n = ndimage.label(fg)
    if n > 1:
        fg = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    return (ndimage.binary_fill_holes(fg) * 255).astype(np.uint8)


def to_square(array: np.ndarray, size: int, mode: str) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Pad HxW to a square (bottom/right) and resize to size×size → (array, scale, (pad_h, pad_w))."""
    h, w = array.shape
    side = max(h, w)
    # One float32 canvas (side² × 4 bytes, the largest allocation here: a caller bounds `side`, e.g. the platform's
    # ingest bounds); filled in place, never a second copy in another dtype.
    canvas = np.zeros((side, side), np.float32)
    canvas[:h, :w] = array
    t = torch.from_numpy(canvas)[None, None]
    if side != size:
        t = F.interpolate(t, size=(size, size), mode=mode, **({"antialias": True} if mode == "bilinear" else {}))
    return t[0, 0].numpy(), size / side, (side - h, side - w)


def input_cache_dir() -> Path:
    """Disk cache of the network's inputs (film and mask at the work size): $BONEAGE_CACHE_DIR/inputs."""
    return _cache_root() / "inputs"


def _input_key(sample: Sample, size: int) -> str:
    from ml.automask import VERSION

    parts: list[object] = [size, VERSION]
    for path in (sample.image_path, sample.mask_path):
        if path is not None:
            st = path.stat()
            parts += [str(path.resolve()), st.st_mtime_ns, st.st_size]
    return hashlib.sha1(repr(parts).encode()).hexdigest()


def load_sample_cached(sample: Sample, size: int, cache: Path) -> tuple[Tensor, Tensor]:
    """`load_sample` through a disk cache shared by every process that reads the same films (DataLoader workers, the
    ranks of one machine): one uint16 array [2, size, size] a film (the film, the mask as 0/1), 2 × size² × 2 bytes
    (1 MiB at 512 px), written atomically and read memory-mapped, so nothing is decoded twice and no process holds
    the decoded set in memory (issue 30: 1.5 MiB a film in every rank's memory before)."""
    path = cache / f"{_input_key(sample, size)}.npy"
    try:
        both = np.load(path, mmap_mode="r")
        if both.shape == (2, size, size):
            image = torch.from_numpy(both[0].astype(np.float32) / 65535.0)[None]
            return image, torch.from_numpy(both[1].astype(np.float32))[None]
    except (OSError, ValueError):
        pass  # absent, or another process's file cut short by a kill: make it again
    image, mask = load_sample(sample, size)
    cache.mkdir(parents=True, exist_ok=True)
    both = np.stack([np.round(image[0].numpy() * 65535.0), mask[0].numpy()]).astype(np.uint16)
    with tempfile.NamedTemporaryFile(dir=cache, suffix=".tmp", delete=False) as handle:
        np.save(handle, both)
    os.replace(handle.name, path)
    return torch.from_numpy(both[0].astype(np.float32) / 65535.0)[None], mask


def load_sample(sample: Sample, size: int) -> tuple[Tensor, Tensor]:
    """Image float32 [1, size, size] in [0, 1] and mask float32 [1, size, size] in {0, 1}."""
    image = load_image(sample.image_path)
    if sample.mask_path is not None:
        with Image.open(sample.mask_path) as m:
            mask = np.asarray(m.convert("L"))
        if mask.shape != image.shape:
            raise DataError(f"{sample.mask_path}: mask shape {mask.shape} != image shape {image.shape}")
    else:
        mask = automask_cached(sample.image_path, image)
    img, _, _ = to_square(image, size, "bilinear")
    msk, _, _ = to_square((mask > 127).astype(np.float32), size, "bilinear")
    return torch.from_numpy(np.clip(img, 0, 1))[None], torch.from_numpy((msk > 0.5).astype(np.float32))[None]


def random_affine(image: Tensor, mask: Tensor, gen: torch.Generator, rotate: float = 15.0,
                  scale: tuple[float, float] = (0.85, 1.15), shift: float = 0.08) -> tuple[Tensor, Tensor]:
    """Joint random rotation, zoom (crop/resize), shift and mirror of [1, H, W] image and mask."""
    def u(a: float, b: float) -> float:
        return a + (b - a) * float(torch.rand((), generator=gen))
    angle = math.radians(u(-rotate, rotate))
    s = 1.0 / u(*scale)
    flip = -1.0 if float(torch.rand((), generator=gen)) < 0.5 else 1.0
    cos, sin = math.cos(angle) * s, math.sin(angle) * s
    theta = torch.tensor([[cos * flip, -sin, u(-shift, shift) * 2], [sin * flip, cos, u(-shift, shift) * 2]])
    both = torch.cat([image, mask])[None]
    grid = F.affine_grid(theta[None], list(both.shape), align_corners=False)
    out = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    gamma = math.exp(u(-0.2, 0.2))
    return out[:1].clamp(0, 1) ** gamma, (out[1:] > 0.5).float()


def mask_box(mask: Tensor) -> Tensor:
    """[1, H, W] binary → [4] x0, y0, x1, y1 (whole image when empty)."""
    ys, xs = torch.nonzero(mask[0] > 0.5, as_tuple=True)
    if len(xs) == 0:
        return torch.tensor([0.0, 0.0, mask.shape[-1], mask.shape[-2]])
    return torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()


class HandDataset(Dataset):
    """samples → dict(image [1,S,S], mask [1,S,S], box [4], age, sex ∈ {-1,0,1}, index). Caches decoded images."""

    def __init__(self, samples: list[Sample], size: int, augment: bool, seed: int = 0, cache: bool = True,
                 disk_cache: Path | None = None) -> None:
        """`cache`: decoded films kept in this process's memory (fp16); `disk_cache`: instead, a folder shared by
        every process (`load_sample_cached`), for sets too large to hold in memory in each DataLoader worker."""
        self.samples, self.size, self.augment, self.seed = samples, size, augment, seed
        self.disk_cache = disk_cache
        # The epoch seeds the augmentation. DataLoader workers hold copies of the dataset, and persistent ones keep
        # them between epochs, so a plain attribute set in the main process never reached them (every epoch drew the
        # same augmentation, issue 30): the epoch lives in shared memory that every copy reads.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._cache: dict[int, tuple[Tensor, Tensor]] = {}
        self.cache = cache

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch.fill_(int(value))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if self.disk_cache is not None:
            image, mask = load_sample_cached(self.samples[index], self.size, self.disk_cache)
        elif index in self._cache:
            image, mask = self._cache[index]
            image = image.float()
        else:
            image, mask = load_sample(self.samples[index], self.size)
            if self.cache:
                self._cache[index] = (image.half(), mask)
        if self.augment:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + index)
            image, mask = random_affine(image, mask, gen)
        s = self.samples[index]
        sex = 0.0 if s.male is None else (1.0 if s.male else -1.0)
        return {"image": image, "mask": mask, "box": mask_box(mask), "age": torch.tensor(float(s.age_months)),
                "sex": torch.tensor(sex), "index": torch.tensor(index)}


def collate(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def targets_from_batch(batch: dict[str, Tensor]) -> list[dict[str, Tensor]]:
    """Mask R-CNN targets: one 'hand' instance per image."""
    return [{"boxes": b[None], "labels": torch.ones(1, dtype=torch.int64, device=b.device),
             "masks": m.to(torch.uint8)} for b, m in zip(batch["box"], batch["mask"])]
