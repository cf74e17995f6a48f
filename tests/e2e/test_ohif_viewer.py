"""A stock OHIF 3 (the built viewer the npm registry ships, tests/ohif_support.py) on an origin of its own reads the
platform's DICOMweb with OHIF's own token mechanism: opened at `/viewer?StudyInstanceUIDs=…&token=<API token>` (the link
an integrator gives readers), it sends `Authorization: Bearer <token>` on every request, shows the hand film and the
platform's SEG and SR series in its study browser, and its study list (reached through OHIF's own link, the token
kept) lists the project's studies."""
from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.live_support import screenshot
from tests.ohif_support import app_config, ohif_dist, serve_ohif

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


@pytest.fixture
def ohif(settings, request, project):
    """OHIF served from http://127.0.0.1:<port>, the platform (Daphne) from http://localhost:<port>: two origins. The
    platform allows OHIF's origin for /dicomweb/ only (DICOMWEB_CORS_ORIGINS), set before its server process starts."""
    dist = ohif_dist()
    server, origin = serve_ohif(dist, "")
    settings.DICOMWEB_CORS_ORIGINS = [origin]
    platform = request.getfixturevalue("live_asgi_server")
    server.RequestHandlerClass.func.config_js = app_config(f"{platform}/dicomweb/projects/{project.pk}").encode()
    yield origin, platform
    server.shutdown()


def phantom_film(index: int, sid: str) -> bytes:
    """A phantom hand as ml.phantoms writes it (odd index: DX, even: CR)."""
    from ml.phantoms.dicom import write_dicom
    from ml.phantoms.render import render

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hand.dcm"
        write_dicom(path, render(130.0, True, seed=31 + index, size=512), sid, seed=31, index=index)
        return path.read_bytes()


def test_stock_ohif_on_another_origin_shows_the_study_list_a_film_and_the_platforms_seg_and_sr(ohif, chromium, project, owner):
    from boneage.annotations.actions import do_save_label, do_save_mask
    from boneage.dicomweb.exports import export_seg, export_sr
    from boneage.studies.actions import do_ingest
    from rest_framework.authtoken.models import Token

    origin, platform = ohif
    data = phantom_film(3, "ohif-dx")
    film = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    study = do_ingest(project, owner, data, "hand.dcm").study
    other = pydicom.dcmread(io.BytesIO(phantom_film(4, "ohif-cr")), stop_before_pixels=True)
    do_ingest(project, owner, phantom_film(4, "ohif-cr"), "other.dcm")
    mask = np.zeros((film.Rows, film.Columns), bool)
    mask[film.Rows // 5:, film.Columns // 5: 4 * film.Columns // 5] = True
    do_save_mask(study, mask, source="expert", author=owner)
    do_save_label(study, 130.0, author=owner)
    export_seg(study), export_sr(study)  # as a reader's download makes them: from then on in QIDO/WADO
    token = Token.objects.create(user=owner).key

    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    sent: list[tuple[str, int, bool]] = []
    page.on("requestfinished", lambda r: sent.append((r.url, r.response().status, "authorization" in r.headers))
            if r.url.startswith(platform) and r.method == "GET" else None)

    page.goto(f"{origin}/viewer?StudyInstanceUIDs={film.StudyInstanceUID}&token={token}")
    expect(page.get_by_text("Skip all")).to_be_visible(timeout=60_000)  # OHIF's first-visit tour
    page.get_by_text("Skip all").click()
    assert "token=" not in page.url  # OHIF takes the token out of its address bar
    browser_panel = page.locator("[data-cy=studyBrowser-panel]")
    for series in ("PA HAND", "Hand mask", "Bone age report"):  # the film, the platform's SEG (901) and SR (902)
        expect(browser_panel.get_by_text(series)).to_be_visible()
    expect(page.locator("[data-cy=viewport-overlay-bottom-left]")).to_contain_text("W:")  # the film is on screen
    page.wait_for_timeout(1500)
    canvas = page.locator("[data-cy=viewport-pane] canvas").first
    shown = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("L"), dtype=np.float64)
    screenshot(page, "ohif-film")
    assert shown.std() > 10 and (shown > 60).mean() > 0.05, "the viewport shows no film"
    frames = [(url, status, auth) for url, status, auth in sent if "/frames/" in url]
    assert frames and all(status == 200 and auth for _, status, auth in frames), frames

    page.locator("[data-cy=return-to-work-list]").click()  # OHIF's own link back: same page, token kept
    expect(page.get_by_text("Study List")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"Phantom, ohif-dx .* DX\\SEG\\SR XR HAND BONE AGE"))).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"Phantom, ohif-cr .* CR XR HAND BONE AGE"))).to_be_visible()
    screenshot(page, "ohif-study-list")
    studies = [(url, status, auth) for url, status, auth in sent if url.split("?")[0].endswith("/studies")]
    assert studies and all(status == 200 and auth for _, status, auth in studies), studies
    assert other.StudyInstanceUID != film.StudyInstanceUID
    context.close()
