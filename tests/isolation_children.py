"""A child for tests/boneage/core/test_isolation.py that does, for real, what a bad decoder does: crash, hang,
allocate without end, refuse, or print over its answer (boneage.core.isolation)."""
from __future__ import annotations

import ctypes
import os
import time
from typing import Any

from boneage.core.errors import AppError
from boneage.core.isolation import Answer, serve


def work(data: bytes, params: dict[str, Any]) -> Answer:
    what = params["what"]
    if what == "crash":
        ctypes.string_at(0)  # reads address 0: SIGSEGV, as a native decoder's bad pointer does
    if what == "hang":
        time.sleep(3600)
    if what == "allocate":
        held = [bytearray(64 * 2**20) for _ in range(int(params["chunks"]))]  # 64 MiB at a time, kept
        return {"held_mib": 64 * len(held)}, []
    if what == "oom_score":
        with open("/proc/self/oom_score_adj") as score:
            return {"oom_score_adj": int(score.read())}, []
    if what == "refuse":
        raise AppError(422, "not_a_film", "This is not a film.")
    if what == "chatter":  # a library that prints to stdout, from Python and from C
        print("decoding…", flush=True)
        os.write(1, b"native chatter\n")
    return {"length": len(data)}, [data[::-1], b"second"]


if __name__ == "__main__":
    serve(work)
