"""A derivation asked for a bounded size never allocates more (issue 34).

Deriving a study (decode, the 16-bit normalized PNG, the display copy: what the decode child runs, then the
network's work copy from the normalized values: what `ensure_derived_images` runs after it) runs in a subprocess whose address space may grow by at most 1.5 GiB over what the
warmed-up process holds (RLIMIT_AS), on the film the ingest bounds allow that costs the most: MAX_SIDE long at the
largest aspect ratio, whose work copy needs the MAX_SIDE² square canvas. The same limit stops the derivation the
65535 × 1 film once got (a 65535² canvas, 17 GB): the limit bites, and the bounds are what keep deriving inside it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from boneage.studies.ingest.bounds import MAX_ASPECT, MAX_SIDE

from tests.dicom_factory import dicom_bytes, make_dicom_dataset

BUDGET = 1536 * 1024 * 1024  # bytes the derivation may add to the process
ROOT = Path(__file__).resolve().parents[2]

BOUNDED = r"""
import json, resource, sys

import django
import numpy as np

django.setup()
import torch
from django.conf import settings

from boneage.studies.derive import _png_values, work_png
from boneage.studies.ingest.decode import decode_upload
from boneage.studies.isolated_decode import _derive
from boneage.studies.ingest.errors import IngestError
from ml.infer import work_image

torch.set_num_threads(1)


def address_space(key: str = "VmSize") -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(key + ":"))


def derive(data: bytes) -> dict:
    # what the decode child runs, then what its caller runs with the child's normalized PNG: both under one limit
    meta, (normalized, display) = _derive(data, {"max_pixels": settings.UPLOAD_MAX_PIXELS,
                                                 "display_max_side": settings.DISPLAY_MAX_SIDE})
    return {"display_shape": meta["display_shape"], "normalized": len(normalized), "display": len(display),
            "work": len(work_png(_png_values(normalized)))}


small, film, budget, what = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read(), int(sys.argv[3]), sys.argv[4]
derive(small)  # lazy imports, thread pools and allocator arenas come before the limit
base = address_space()
resource.setrlimit(resource.RLIMIT_AS, (base + budget, base + budget))
answer = {"base": base}
if what == "film":
    answer.update(derive(film))
elif what == "refused":
    try:
        decode_upload(film, max_pixels=settings.UPLOAD_MAX_PIXELS)
    except IngestError as error:
        answer["refused"] = error.code
else:  # the derivation ingest let the 65535 x 1 film reach before the bounds: its work copy
    try:
        work_image(np.zeros((1, 65535), np.float32), settings.NETWORK_WORK_SIDE)
        answer["unbounded"] = "made"
    except MemoryError:
        answer["unbounded"] = "MemoryError"
answer["grew"] = max(0, address_space("VmPeak") - base)  # the peak while deriving
print(json.dumps(answer))
"""


def run_bounded(tmp_path, film: bytes, what: str) -> dict:
    small, big = tmp_path / "small.dcm", tmp_path / "film.dcm"
    small.write_bytes(dicom_bytes(rows=64, columns=48))
    big.write_bytes(film)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}",
           "DJANGO_SETTINGS_MODULE": "boneage.settings", "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    done = subprocess.run([sys.executable, "-c", BOUNDED, str(small), str(big), str(BUDGET), what], check=False,
                          cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def widest_film() -> bytes:
    """The costliest film ingest accepts: MAX_SIDE wide at the largest aspect ratio (CR, MONOCHROME1, 12 bits)."""
    rows = int(MAX_SIDE / MAX_ASPECT)
    pixels = (np.arange(rows * MAX_SIDE, dtype=np.uint32) % 4096).astype(np.uint16).reshape(rows, MAX_SIDE)
    return dicom_bytes(make_dicom_dataset(pixels, photometric="MONOCHROME1"))


@pytest.mark.timeout(600)
def test_deriving_the_costliest_film_the_bounds_allow_stays_inside_one_and_a_half_gib(tmp_path):
    from django.conf import settings

    answer = run_bounded(tmp_path, widest_film(), "film")
    print(f"\nderiving a {MAX_SIDE}-px film needed at most {answer['grew'] / 2**20:.0f} MiB")
    rows = int(MAX_SIDE / MAX_ASPECT)
    assert answer["display_shape"] == [round(rows * settings.DISPLAY_MAX_SIDE / MAX_SIDE), settings.DISPLAY_MAX_SIDE]
    assert answer["normalized"] > 0 and answer["display"] > 0 and answer["work"] > 0
    assert answer["grew"] <= BUDGET


@pytest.mark.timeout(600)
def test_the_same_limit_stops_the_work_copy_the_65535_by_1_film_once_got_and_ingest_refuses_that_film(tmp_path):
    film = dicom_bytes(make_dicom_dataset(np.full((1, 65535), 800, np.uint16), photometric="MONOCHROME1"))
    assert run_bounded(tmp_path, film, "unbounded")["unbounded"] == "MemoryError"
    assert run_bounded(tmp_path, film, "refused")["refused"] == "extreme_aspect_ratio"
