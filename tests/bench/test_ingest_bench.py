"""Ingest throughput for 2500×2048 16-bit DICOM through the REST API, as a ratio to raw decode.

Run with `make bench`. Baseline in the same run: pydicom.dcmread + pixel_array on the same bytes.
Two sets: uncompressed (decode is little more than a memory copy) and JPEG 2000 lossless.
"""
from __future__ import annotations

import io
import statistics
import time

import numpy as np
import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom.uid import JPEG2000Lossless

from tests.dicom_factory import dicom_bytes, make_dicom_dataset

pytestmark = [pytest.mark.bench, pytest.mark.django_db]


def hand_like(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.normal(800, 40, (2500, 2048)).clip(0, 4095)
    image[600:2200, 500:1600] += 1800
    return image.clip(0, 4095).astype(np.uint16)


def compressed(seed: int) -> bytes:
    ds = make_dicom_dataset(hand_like(seed))
    ds.compress(JPEG2000Lossless)
    return dicom_bytes(ds)


def measure(client, project, files: list[bytes], label: str) -> float:
    decode_times, ingest_times = [], []
    for data in files:
        started = time.perf_counter()
        pydicom.dcmread(io.BytesIO(data)).pixel_array  # noqa: B018 — the decode is what is timed
        decode_times.append(time.perf_counter() - started)
    for index, data in enumerate(files):
        upload = SimpleUploadedFile(f"{label}-{index}.dcm", data)
        started = time.perf_counter()
        response = client.post(f"/api/projects/{project.pk}/studies/", {"file": upload}, format="multipart")
        ingest_times.append(time.perf_counter() - started)
        assert response.status_code == 201, response.content
    decode, ingest = sum(decode_times), sum(ingest_times)
    print(f"\n{label}: {len(files)} files of 2500x2048 16-bit ({len(files[0]) / 1e6:.1f} MB each)")
    print(f"  raw decode   {len(files) / decode:7.1f} files/s  (median {statistics.median(decode_times) * 1e3:.1f} ms)")
    print(f"  API ingest   {len(files) / ingest:7.1f} files/s  (median {statistics.median(ingest_times) * 1e3:.1f} ms)")
    print(f"  ratio ingest/decode = {ingest / decode:.2f}  (target <= 2.0)")
    return ingest / decode


def test_ingest_throughput_against_raw_decode(api_as, project, owner):
    client = api_as(owner)
    uncompressed_ratio = measure(client, project, [dicom_bytes(make_dicom_dataset(hand_like(i))) for i in range(20)],
                                 "uncompressed")
    j2k_ratio = measure(client, project, [compressed(100 + i) for i in range(5)], "JPEG 2000 lossless")
    # Regression guards, not the target: see docs/benchmarks.md for why uncompressed cannot reach 2x.
    assert j2k_ratio < 2.0
    assert uncompressed_ratio < 40
