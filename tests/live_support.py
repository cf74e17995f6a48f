"""Live fixtures: a real Celery worker on the real Redis, a Daphne server (HTTP + websockets) and
Debian's Chromium driven by Playwright. All need committed rows: use them with `transactional_db`."""
from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="session", autouse=True)
def empty_test_broker():
    """Start from an empty test Redis database, so no task left by an earlier run reaches our worker."""
    import redis
    from django.conf import settings

    try:
        redis.Redis.from_url(settings.REDIS_URL).flushdb()
    except redis.RedisError:
        pass


@pytest.fixture
def celery_worker(transactional_db):
    """A real worker thread consuming both queues from the real Redis broker."""
    from boneage.celery import app
    from celery.contrib.testing.worker import start_worker

    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, queues=["cpu", "gpu"],
                      loglevel="WARNING", shutdown_timeout=30) as worker:
        yield worker


@pytest.fixture
def asgi_server_log(tmp_path) -> Path:
    """The log file of the live ASGI server's process (every logger, WARNING and up): a test reads it to show
    that nothing went wrong on the server side."""
    return tmp_path / "asgi-server.log"


@pytest.fixture
def live_asgi_server(transactional_db, settings, asgi_server_log):
    """Daphne serving the whole ASGI app (HTTP, static files and websockets) in a child process."""
    from channels.testing.live import make_application
    from daphne.testing import DaphneProcess
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    from django.db import connection

    process = DaphneProcess("localhost", partial(make_application, static_wrapper=ASGIStaticFilesHandler),
                            setup=partial(use_database, connection.settings_dict["NAME"], asgi_server_log))
    process.start()
    if not process.ready.wait(timeout=30):
        process.terminate()
        raise RuntimeError("the live ASGI server did not start")
    yield f"http://localhost:{process.port.value}"
    process.terminate()
    process.join(timeout=10)


def use_database(name: str, log_file: Path | None = None) -> None:
    """In the server process: use the test database the tests use (channels' own helper prefixes
    `test_` again when the process is forked after pytest-django has already renamed it), and log to log_file."""
    import logging

    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = name
    if log_file is not None:
        handler = logging.FileHandler(log_file)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logging.getLogger().addHandler(handler)


@pytest.fixture(scope="session")
def chromium():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium, request):
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name: str) -> Path:
    """Save a screenshot under test-artifacts/ (kept as a CI artifact and for the README)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def login(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/projects/**")


def clear_artifacts() -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)


def wait_for(predicate, timeout: float = 60.0, what: str = ""):
    """Poll until predicate() is truthy (a worker or server in another thread/process is doing the work)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what or predicate.__doc__ or predicate}")


def in_a_thread(work, *args):
    """Run `work` in a helper thread (it publishes live events: not beside Playwright's loop), closing the thread's
    own database connection after."""
    from django.db import connection

    def run():
        try:
            return work(*args)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()
