"""Work on untrusted bytes runs in a child that may fail alone (boneage.core.isolation, issue 34): a child that
crashes, hangs or allocates without end ends with a reason, and the process that asked goes on as before."""
from __future__ import annotations

import threading
import time

import pytest
from boneage.core.errors import AppError
from boneage.core.isolation import IsolatedFailure, Limits, run_isolated

CHILD = "tests.isolation_children"
ROOMY = Limits(memory_bytes=512 * 2**20, seconds=30)


def run(what: str, data: bytes = b"film", limits: Limits = ROOMY, **params) -> tuple[dict, list[bytes]]:
    return run_isolated(CHILD, data, {"what": what, **params}, limits)


def test_a_child_answers_its_header_and_its_blobs_byte_for_byte():
    data = bytes(range(256)) * 1000
    meta, blobs = run("echo", data)
    assert meta == {"length": len(data)}
    assert blobs == [data[::-1], b"second"]


def test_what_a_library_prints_on_stdout_never_mixes_into_the_answer():
    meta, blobs = run("chatter")
    assert meta == {"length": 4} and blobs == [b"mlif", b"second"]


def test_a_child_that_crashes_is_a_decode_crashed_that_names_the_signal_and_the_caller_goes_on():
    with pytest.raises(IsolatedFailure) as crashed:
        run("crash")
    assert crashed.value.status == 422 and crashed.value.code == "decode_crashed"
    assert "SIGSEGV" in crashed.value.detail
    assert run("echo")[0] == {"length": 4}  # the caller, and its next child, are fine


def test_a_child_that_hangs_is_stopped_at_its_time_limit():
    started = time.monotonic()
    with pytest.raises(IsolatedFailure) as hung:
        run("hang", limits=Limits(memory_bytes=ROOMY.memory_bytes, seconds=3))
    assert hung.value.code == "decode_timed_out" and "3 s" in hung.value.detail
    assert time.monotonic() - started < 15


def test_a_child_that_allocates_past_its_limit_is_out_of_memory_and_one_under_it_is_answered():
    with pytest.raises(IsolatedFailure) as exhausted:
        run("allocate", chunks=64, limits=Limits(memory_bytes=256 * 2**20, seconds=30))  # asks for 4 GiB
    assert exhausted.value.code == "decode_out_of_memory" and "256 MiB" in exhausted.value.detail
    assert run("allocate", chunks=2, limits=Limits(memory_bytes=256 * 2**20, seconds=30))[0] == {"held_mib": 128}


def test_a_refusal_in_the_child_reaches_the_caller_with_its_own_status_code_and_sentence():
    with pytest.raises(AppError) as refused:
        run("refuse")
    assert not isinstance(refused.value, IsolatedFailure)
    assert (refused.value.status, refused.value.code, refused.value.detail) == (422, "not_a_film", "This is not a film.")


def test_when_every_slot_stays_busy_the_next_caller_is_told_to_come_back_with_a_503():
    """One slot, held by a hanging child: the second caller waits its limit, then is answered 503 decoder_busy with
    when to ask again, instead of starting a child over the process's memory budget."""
    slow = Limits(memory_bytes=ROOMY.memory_bytes, seconds=4)
    first: list[BaseException] = []

    def hang() -> None:
        try:
            run_isolated(CHILD, b"", {"what": "hang"}, slow, concurrency=1)
        except IsolatedFailure as failure:
            first.append(failure)

    holder = threading.Thread(target=hang)
    holder.start()
    time.sleep(0.5)
    with pytest.raises(IsolatedFailure) as busy:
        run_isolated(CHILD, b"", {"what": "echo"}, Limits(memory_bytes=ROOMY.memory_bytes, seconds=1), concurrency=1)
    holder.join()
    assert busy.value.status == 503 and busy.value.code == "decoder_busy" and busy.value.extra == {"retry_after": 1}
    assert [f.code for f in first] == ["decode_timed_out"]  # type: ignore[attr-defined]
    assert run_isolated(CHILD, b"", {"what": "echo"}, slow, concurrency=1)[0] == {"length": 0}  # the slot is free



def test_the_child_is_the_first_the_kernel_ends_when_memory_runs_out():
    meta, _ = run("oom_score")
    assert meta == {"oom_score_adj": 1000}
