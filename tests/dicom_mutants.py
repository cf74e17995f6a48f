"""Hostile DICOM for the ingest fuzz tests: pydicom's bundled files and seeded mutants of them.

Only the files on disk are used (pydicom can fetch more from the internet; we never do). A mutant is
a pure function of (seed, index): the same run always makes the same files.
"""
from __future__ import annotations

import io
import os
import random
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pydicom
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

SEED_MAX_BYTES = 200_000  # mutants come from small files: the fuzz budget goes to variety, not to big decodes
ODD_TRANSFER_SYNTAXES = [
    "", "1.2.3.4", "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2", "01.2.840", "1.2.840.10008.1.2.4.201", "9" * 70, "abc",
]
ABSURD_VALUES = {
    "Rows": [0, 1, 65535], "Columns": [0, 1, 65535], "BitsAllocated": [0, 7, 12, 64, 65535],
    "BitsStored": [0, 17, 255, 65535], "HighBit": [0, 99], "SamplesPerPixel": [0, 2, 3, 4, 65535],
    "PixelRepresentation": [2, 65535], "NumberOfFrames": ["0", "-1", "1A", "999999", "3"],
    "PhotometricInterpretation": ["", "HSV", "RGB", "YBR_FULL_422", "PALETTE COLOR", "X" * 40, "MONOCHROME1"],
    "Modality": ["", "X" * 20, "ct", "CR\\DX", "DX"], "PixelSpacing": ["abc", "0\\0", "-1\\1", "1e999\\1", ""],
    "RescaleSlope": ["1e308", "-0", "nan", "abc"], "RescaleIntercept": ["1e308", "abc"],
    "WindowCenter": ["abc", "1e308"], "WindowWidth": ["0", "-5", "abc"],
    "SOPInstanceUID": ["1." * 40 + "1", "abc", "1.02.3", ""], "StudyInstanceUID": ["9" * 70, "1..2"],
    "SeriesInstanceUID": ["1.2.x"], "PatientAge": ["999Y", "abc", "-01Y"], "PatientSex": ["Q", "\x00"],
    "PatientBirthDate": ["99999999", "20250231"], "StudyDate": ["00000000"],
}
MUTATIONS = ("bit_flips", "truncate", "absurd_value", "transfer_syntax", "wrong_length", "garbage_value",
             "deep_sequence", "pixel_data_length")


@dataclass(frozen=True)
class Mutant:
    name: str
    kind: str
    data: bytes


def bundled_files() -> list[str]:
    """pydicom's test files that are on this disk, sorted (a stable order for seeded choices)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sorted(path for path in get_testdata_files() if os.path.isfile(path))


def seed_corpus() -> list[tuple[str, bytes]]:
    """The small bundled DICOM Part 10 files with pixel data (the ones a mutant can start from)."""
    seeds = []
    for path in bundled_files():
        if os.path.getsize(path) <= SEED_MAX_BYTES:
            with open(path, "rb") as handle:
                data = handle.read()
            if data[128:132] == b"DICM" and b"\xe0\x7f\x10\x00" in data:  # has (7FE0,0010) Pixel Data
                seeds.append((os.path.basename(path), data))
    return seeds


def mutants(count: int, seed: int) -> Iterator[Mutant]:
    corpus = seed_corpus()
    for index in range(count):
        rng = random.Random(seed * 1_000_003 + index)
        name, data = corpus[rng.randrange(len(corpus))]
        kind = MUTATIONS[index % len(MUTATIONS)]
        yield Mutant(f"{index:05d}-{kind}-{name}", kind, mutate(data, kind, rng))


def mutate(data: bytes, kind: str, rng: random.Random) -> bytes:
    if kind == "bit_flips":
        mutable = bytearray(data)
        for _ in range(rng.choice([1, 2, 8, 64])):
            position = rng.randrange(132, len(mutable))  # keep the DICM marker: past it is where parsers live
            mutable[position] ^= 1 << rng.randrange(8)
        return bytes(mutable)
    if kind == "truncate":
        return data[: rng.randrange(132, len(data))]
    if kind == "wrong_length":
        mutable = bytearray(data)
        for _ in range(rng.choice([1, 3])):
            position = rng.randrange(132, max(133, len(mutable) - 4))
            mutable[position:position + 4] = struct.pack("<I", rng.choice([0, 1, 3, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF,
                                                                            rng.randrange(1 << 32)]))
        return bytes(mutable)
    return _mutate_dataset(data, kind, rng)


def _mutate_dataset(data: bytes, kind: str, rng: random.Random) -> bytes:
    """Mutations of a parsed dataset, written back without validation (as a broken modality would)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
            if kind == "absurd_value":
                for keyword in rng.sample(sorted(ABSURD_VALUES), rng.choice([1, 2, 3])):
                    setattr(ds, keyword, rng.choice(ABSURD_VALUES[keyword]))
            elif kind == "transfer_syntax":
                choice = rng.choice(ODD_TRANSFER_SYNTAXES + [None])
                if choice is None:
                    if "TransferSyntaxUID" in ds.file_meta:
                        del ds.file_meta.TransferSyntaxUID
                else:
                    ds.file_meta.TransferSyntaxUID = choice
            elif kind == "garbage_value":
                elements = [e for e in ds if e.VR in ("CS", "LO", "SH", "UI", "DS", "IS", "PN", "DA", "AS")]
                for element in rng.sample(elements, min(len(elements), 3)):
                    element.value = "".join(chr(rng.randrange(0, 256)) for _ in range(rng.choice([1, 17, 65, 200])))
            elif kind == "deep_sequence":
                item = Dataset()
                for _ in range(rng.choice([3, 9, 40])):
                    outer = Dataset()
                    outer.ReferencedImageSequence = Sequence([item])
                    item = outer
                ds.ReferencedImageSequence = item.ReferencedImageSequence
            elif kind == "pixel_data_length" and "PixelData" in ds:
                pixels = bytes(ds.PixelData)
                ds.PixelData = pixels[: rng.randrange(0, max(1, len(pixels)))] if rng.random() < 0.5 else pixels * 2
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=False)
            return buffer.getvalue()
        except Exception:  # noqa: BLE001 — a dataset pydicom cannot write becomes a bit-flip mutant instead
            return mutate(data, "bit_flips", rng)
