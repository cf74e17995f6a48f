"""Work on untrusted bytes in a child process that may fail alone (issue 34): a pixel decoder that crashes (a native
panic or a segfault), hangs or asks for 15 GB ends that child, never the web server or the worker that asked.

The caller runs `run_isolated(module, data, params, limits)`; the child is `python -m module`, whose `__main__` calls
`serve(work)`: it imports what it needs, then limits its own address space to what it holds plus `limits.memory_bytes`
(RLIMIT_AS) and its CPU time, reads `data` from stdin and writes `work(data, params)`'s answer (a JSON header line, then
the blobs it names by size) to stdout. JSON and raw bytes, never pickle: the child has read hostile bytes, so its
answer is data, not code. The parent kills a child past `limits.seconds` (SIGKILL).
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from boneage.core.errors import AppError

logger = logging.getLogger(__name__)

Answer = tuple[dict[str, Any], list[bytes]]
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Limits:
    memory_bytes: int  # address space the work may add to the child once its imports are in (RLIMIT_AS)
    seconds: float  # wall clock, then the child is killed


class IsolatedFailure(AppError):
    """The child ended without an answer: `code` is out_of_memory, timed_out or crashed, `detail` says how."""


_slots: dict[int, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def _slot(count: int) -> threading.BoundedSemaphore:
    """At most `count` children of this process at once: the process's memory is then bounded by count × the limit."""
    with _slots_lock:
        return _slots.setdefault(count, threading.BoundedSemaphore(count))


def run_isolated(module: str, data: bytes, params: dict[str, Any], limits: Limits, *, concurrency: int = 2) -> Answer:
    """The child's answer (header, blobs); AppError when the work refused the bytes (its own status and code);
    IsolatedFailure when the child ran out of memory, of time, or crashed."""
    slot = _slot(concurrency)
    if not slot.acquire(timeout=limits.seconds):
        raise IsolatedFailure(503, "decoder_busy", f"Every decoder slot of this process stayed busy for "
                              f"{limits.seconds:g} s; try again shortly.", retry_after=int(limits.seconds))
    try:
        return _run(module, data, params, limits)
    finally:
        slot.release()


def _run(module: str, data: bytes, params: dict[str, Any], limits: Limits) -> Answer:
    argument = json.dumps({**params, "memory_bytes": limits.memory_bytes, "cpu_seconds": int(limits.seconds) + 1})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
           # one thread and two malloc arenas: the limit is then spent on pixels, not on per-thread reservations
           "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    mib = limits.memory_bytes // 2**20
    try:
        done = subprocess.run([sys.executable, "-m", module, argument], input=data, capture_output=True, env=env,
                              timeout=limits.seconds, check=False)
    except subprocess.TimeoutExpired:  # subprocess.run has killed and reaped it
        raise IsolatedFailure(422, "decode_timed_out", f"Decoding took longer than {limits.seconds:g} s and was "
                              "stopped.") from None
    header, _, body = done.stdout.partition(b"\n")
    answer = _header(header)
    if done.returncode != 0 or answer is None:
        logger.warning("isolated %s ended with status %s: %s", module, done.returncode, done.stderr[-2000:])
        if done.returncode < 0:
            name = signal.Signals(-done.returncode).name if -done.returncode in signal.valid_signals() else "?"
            if -done.returncode == signal.SIGXCPU:
                raise IsolatedFailure(422, "decode_timed_out", f"Decoding used more than its {limits.seconds:g} s "
                                      f"of CPU and was stopped ({name}).")
            if -done.returncode == signal.SIGKILL:  # not ours: the parent's timeout raises TimeoutExpired instead
                raise IsolatedFailure(422, "decode_crashed", "The decoder was killed (SIGKILL) from outside, as the "
                                      "kernel does when its container runs out of memory.")
            raise IsolatedFailure(422, "decode_crashed", f"The decoder crashed ({name}) on this file.")
        if answer is None:
            raise IsolatedFailure(422, "decode_crashed", f"The decoder ended with status {done.returncode} and no "
                                  "answer.")
    if "refused" in answer:
        refused = answer["refused"]
        raise AppError(int(refused["status"]), str(refused["code"]), str(refused["detail"]))
    if answer.get("out_of_memory"):
        raise IsolatedFailure(422, "decode_out_of_memory", f"Decoding needed more than its {mib} MiB of memory "
                              "and was stopped.")
    sizes = [int(size) for size in answer.get("sizes", [])]
    if sum(sizes) != len(body):
        raise IsolatedFailure(422, "decode_crashed", "The decoder's answer was cut short.")
    blobs, start = [], 0
    for size in sizes:
        blobs.append(body[start:start + size])
        start += size
    return answer.get("meta", {}), blobs


def _header(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# --- the child's side ---------------------------------------------------------------------------------------------


def address_space() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


def serve(work: Callable[[bytes, dict[str, Any]], Answer], *, warm_up: Callable[[], object] | None = None) -> None:
    """The child's main: warm up (lazy imports, allocator arenas), limit itself, read stdin, answer on stdout.

    stdout is kept for the answer alone: anything a library prints goes to stderr."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    params = json.loads(sys.argv[1])
    try:  # should the container's memory run out anyway, the kernel ends this child before the server that asked
        with open("/proc/self/oom_score_adj", "w") as score:
            score.write("1000")
    except OSError:
        pass
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # and it ends with the process that waits for it
    if warm_up is not None:
        warm_up()
    ceiling = address_space() + int(params["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
    cpu = int(params["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # the backstop if the parent is gone
    data = sys.stdin.buffer.read()
    try:
        meta, blobs = work(data, params)
        answer: dict[str, Any] = {"meta": meta, "sizes": [len(blob) for blob in blobs]}
    except MemoryError:
        answer, blobs = {"out_of_memory": True}, []
    except AppError as refusal:
        if isinstance(refusal.__cause__, MemoryError):  # a decoder's refusing() wraps even a MemoryError
            answer, blobs = {"out_of_memory": True}, []
        else:
            answer, blobs = {"refused": {"status": refusal.status, "code": refusal.code, "detail": refusal.detail}}, []
    out.write(json.dumps(answer).encode() + b"\n")
    for blob in blobs:
        out.write(blob)
    out.flush()
