"""Browser performance, measured in Debian's Chromium (headless) against the live ASGI server.

Run with `make bench` (or `make bench PYTEST_ARGS="-k browser"`). Each test prints one line and
adds its numbers to test-artifacts/browser-bench.json; docs/benchmarks-browser.md records them.
  - study page → first image on screen (2500×2048 16-bit DICOM study): performance mark `first-image`
  - mask save round trip on that study: PNG encode in the page + POST + 201 (performance measure `mask-save`)
  - brush strokes on the 2048×2500 mask: frames per second from requestAnimationFrame during real mouse input
  - websocket: an event published through the live helper (as a worker does) → the open page, Date.now() delta
"""
from __future__ import annotations

import itertools
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import phantom_dicom
from tests.live_support import ARTIFACTS, login

pytestmark = [pytest.mark.bench, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def record(name: str, values: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "browser-bench.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = values
    path.write_text(json.dumps(data, indent=2))
    print(f"\n[browser-bench] {name}: {values}")


def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@pytest.fixture
def big_study(project, member):
    from boneage.studies.actions import IngestFields, do_ingest
    from boneage.studies.derive import ensure_derived_images

    def make():
        result = do_ingest(project, member, phantom_dicom(120, True, 3, size=2500, width=2048), "big.dcm", IngestFields())
        ensure_derived_images(result.study.image)  # what the cpu worker does right after ingest
        return result.study

    with ThreadPoolExecutor(1) as pool:
        study = pool.submit(make).result()
    assert (study.image.width, study.image.height) == (2048, 2500)
    return study


@pytest.fixture
def member_page(browser_page, live_asgi_server, member):
    login(browser_page, live_asgi_server, member.username, f"{member.username}-Pass-123")
    return browser_page


def open_study(page, base_url, study):
    page.goto(f"{base_url}/studies/{study.pk}/")
    expect(page.locator("#study")).to_have_attribute("data-ready", "1")


def test_study_page_to_first_image_on_screen(live_asgi_server, big_study, member_page):
    page, times = member_page, []
    open_study(page, live_asgi_server, big_study)  # warm-up: server caches, compiled modules
    for _ in range(7):
        page.goto(f"{live_asgi_server}/studies/{big_study.pk}/")
        page.wait_for_function("performance.getEntriesByName('first-image').length > 0")
        times.append(page.evaluate("performance.getEntriesByName('first-image')[0].startTime"))
    record("first_image_ms", {"median": round(statistics.median(times), 1), "max": round(max(times), 1), "n": len(times),
                              "study": "2048x2500 16-bit DICOM, display PNG 1024 px"})
    assert statistics.median(times) < 1000


def test_mask_save_round_trip(live_asgi_server, big_study, member_page):
    page = member_page
    open_study(page, live_asgi_server, big_study)
    page.keyboard.press("b")
    box = page.locator("#viewport").bounding_box()
    for i in range(10):
        x = box["x"] + box["width"] * (0.3 + 0.04 * i)
        page.mouse.move(x, box["y"] + 100)
        page.mouse.down()
        page.mouse.move(x, box["y"] + 300, steps=4)
        page.mouse.up()
        page.keyboard.press("Control+s")
        expect(page.locator("#study")).to_have_attribute("data-dirty", "0")
    times = page.evaluate("performance.getEntriesByName('mask-save').map((m) => m.duration)")
    encode = page.evaluate("performance.getEntriesByName('mask-encode').map((m) => m.duration)")
    record("mask_save_ms", {"median": round(statistics.median(times), 1), "p95": round(p95(times), 1), "n": len(times),
                            "png_encode_median": round(statistics.median(encode), 1), "mask": "2048x2500"})
    assert statistics.median(times) < 300


def test_brush_strokes_frame_rate(live_asgi_server, big_study, member_page):
    page = member_page
    open_study(page, live_asgi_server, big_study)
    page.keyboard.press("b")
    page.evaluate("""() => {
      window.__frames = []; window.__recording = true;
      const tick = (t) => { if (!window.__recording) return; __frames.push(t); requestAnimationFrame(tick); };
      requestAnimationFrame(tick);
    }""")
    box = page.locator("#viewport").bounding_box()
    started = time.perf_counter()
    page.mouse.move(box["x"] + 200, box["y"] + 100)
    page.mouse.down()
    for k in range(8):  # a zig-zag over the hand, 8 × 60 real mouse moves
        page.mouse.move(box["x"] + (600 if k % 2 == 0 else 200), box["y"] + 100 + 70 * (k + 1), steps=60)
    page.mouse.up()
    seconds = time.perf_counter() - started
    frames = page.evaluate("window.__recording = false, __frames")
    gaps = [b - a for a, b in itertools.pairwise(frames)]
    fps = 1000 * len(gaps) / (frames[-1] - frames[0])
    painted = page.evaluate("__editor.frames")
    record("brush_fps", {"fps": round(fps, 1), "p95_frame_ms": round(p95(gaps), 1), "max_frame_ms": round(max(gaps), 1),
                         "paint_frames": painted, "stroke_s": round(seconds, 2), "mask": "2048x2500", "radius_px": 24})
    assert painted > 20 and fps >= 50


def test_websocket_event_reaches_the_open_page(live_asgi_server, project, member_page):
    from boneage.live.events import send_now

    page = member_page
    page.goto(f"{live_asgi_server}/projects/{project.pk}/")
    expect(page.locator("#live-state")).to_have_text("live")
    page.evaluate("""() => { window.__lat = [];
      document.addEventListener('live:event', (e) => { if (e.detail.type === 'bench.ping') __lat.push(Date.now() - e.detail.sent_ms); }); }""")

    def publish(n: int) -> None:  # from another thread, as a worker process would: the same helper, the same Redis layer
        for i in range(n):
            send_now(project.pk, {"type": "bench.ping", "i": i, "sent_ms": time.time() * 1000})
            time.sleep(0.02)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(publish, 100).result()
    page.wait_for_function("__lat.length >= 100", timeout=20_000)
    latencies = page.evaluate("__lat")
    record("websocket_ms", {"median": round(statistics.median(latencies), 1), "p95": round(p95(latencies), 1),
                            "max": round(max(latencies), 1), "n": len(latencies)})
    assert p95(latencies) < 200
