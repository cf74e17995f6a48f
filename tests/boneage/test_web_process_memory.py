"""The web process boots without the network (issue 34: a web process below 1 GiB).

Daphne loads `boneage.asgi`, which loads the URL configuration and through it every view, serializer and action they
import. torch and torchvision alone held ~850 MiB of a booted Daphne's ~1 GiB, imported for three names (the
attention modules', the uncertainty methods', the interval helpers'). The web process imports torch only when a
request needs the network; these tests boot it in a fresh interpreter, as Daphne does, and look.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB_BOOT_MAX_RSS = 512 * 2**20  # half the 1 GiB for the whole web process: room left for its requests

BOOT_LIKE_DAPHNE = r"""
import json, sys

import django

django.setup()
import boneage.asgi  # noqa: E402,F401  what Daphne loads
import boneage.urls  # noqa: E402,F401  what its first request resolves against

with open("/proc/self/status") as status:
    rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
heavy = sorted(name for name in ("torch", "torchvision") if name in sys.modules)
print(json.dumps({"heavy": heavy, "rss": rss}))
"""


def boot_like_daphne() -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}",
           "DJANGO_SETTINGS_MODULE": "boneage.settings"}
    done = subprocess.run([sys.executable, "-c", BOOT_LIKE_DAPHNE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_freshly_booted_web_process_has_not_imported_torch_and_holds_under_half_a_gib():
    booted = boot_like_daphne()
    print(f"\na booted web process holds {booted['rss'] / 2**20:.0f} MiB")
    assert booted["heavy"] == []
    assert booted["rss"] < WEB_BOOT_MAX_RSS
