"""A stock OHIF 3 (the built viewer the npm registry ships, tests/ohif_support.py) on an origin of its own reads the
platform's DICOMweb with OHIF's own token mechanism: opened at `/viewer?StudyInstanceUIDs=…&token=<API token>` (the link
an integrator gives readers), it sends `Authorization: Bearer <token>` on every request, shows the hand film and the
platform's SEG and SR series in its study browser, draws the SR on the film (the hand mask's outline and "XR Bone age:
130.00 mo"), and its study list (reached through OHIF's own link, the token kept) lists the project's studies."""
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

# Not in `make test`: in the full suite OHIF 3.13.2 drew nothing for the SR it opened on 5 of 5 loads (a race in its
# loading of the SR's display set, worse under load), and one flaky test blocks every landing. Run it with
# `make bench PYTEST_ARGS="tests/e2e/test_ohif_viewer.py"`.
pytestmark = [pytest.mark.e2e, pytest.mark.bench, pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


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


def phantom_film(index: int, sid: str) -> tuple[bytes, np.ndarray]:
    """A phantom hand as ml.phantoms writes it (odd index: DX, even: CR), and its ground-truth hand mask."""
    from ml.phantoms.dicom import write_dicom
    from ml.phantoms.render import render

    phantom = render(130.0, True, seed=31 + index, size=512)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hand.dcm"
        write_dicom(path, phantom, sid, seed=31, index=index)
        return path.read_bytes(), np.asarray(phantom.mask) > 0


def test_stock_ohif_on_another_origin_shows_the_study_list_a_film_and_the_bone_age_with_the_hand_outline(ohif, chromium, project, owner):
    from boneage.annotations.actions import do_save_label, do_save_mask
    from boneage.dicomweb.exports import export_seg, export_sr
    from boneage.studies.actions import do_ingest
    from rest_framework.authtoken.models import Token

    origin, platform = ohif
    data, mask = phantom_film(3, "ohif-dx")
    film = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    study = do_ingest(project, owner, data, "hand.dcm").study
    do_save_mask(study, mask, source="expert", author=owner)  # the hand's true outline, as an expert would draw it
    do_save_label(study, 130.0, author=owner)
    export_seg(study), export_sr(study)  # as a reader's download makes them: from then on in QIDO/WADO
    token = Token.objects.create(user=owner).key

    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    sent: list[tuple[str, int, bool]] = []
    page.on("requestfinished", lambda r: sent.append((r.url, r.response().status, "authorization" in r.headers))
            if r.url.startswith(platform) and r.method == "GET" else None)

    viewer = f"{origin}/viewer?StudyInstanceUIDs={film.StudyInstanceUID}&token={token}"
    page.goto(viewer)
    expect(page.get_by_text("Skip all")).to_be_visible(timeout=60_000)  # OHIF's first-visit tour
    page.get_by_text("Skip all").click()
    assert "token=" not in page.url  # OHIF takes the token out of its address bar
    browser_panel = page.locator("[data-cy=studyBrowser-panel]")

    # The result: the SR drawn on the film, the hand's outline and its bone age (OHIF cannot show a SEG of a
    # projection radiograph: docs/dicomweb.md, OHIF)
    pane = page.locator("[data-cy=viewport-pane]").first
    label = pane.get_by_text("XR Bone age: 130.00 mo")
    for attempt in range(5):  # OHIF 3.13.2 now and then draws nothing for the SR it opens (a race in its loading of
        if attempt:           # the SR's display set); loaded afresh, it does
            page.goto(viewer)
            expect(browser_panel.get_by_text("Bone age report")).to_be_visible(timeout=60_000)
        page.get_by_text("Bone age report").dblclick()
        try:
            expect(label).to_be_visible(timeout=20_000)
            break
        except AssertionError:
            screenshot(page, f"ohif-sr-not-drawn-{attempt}")
    expect(label).to_be_visible()
    expect(page.locator("[data-cy=viewport-overlay-bottom-left]")).to_contain_text("W:")
    for series in ("PA HAND", "Hand mask", "Bone age report"):  # the film, the platform's SEG (901) and SR (902)
        expect(browser_panel.get_by_text(series)).to_be_visible()
    page.wait_for_timeout(1500)
    canvas = page.locator("[data-cy=viewport-pane] canvas").first
    film_shown = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("L"), dtype=np.float64)
    drawn = np.asarray(Image.open(io.BytesIO(pane.screenshot())).convert("RGB"), dtype=np.int16)
    screenshot(page, "ohif-sr-on-film")
    assert film_shown.std() > 10 and (film_shown > 60).mean() > 0.05, "the viewport shows no film"
    outline = (drawn[..., 1] > 180) & (drawn[..., 0] < 100) & (drawn[..., 2] < 100)  # OHIF draws SR regions green
    assert outline.sum() > 300, f"no outline drawn ({outline.sum()} green pixels)"
    frames = [(url, status, auth) for url, status, auth in sent if "/frames/" in url]
    assert frames and all(status == 200 and auth for _, status, auth in frames), frames

    page.locator("[data-cy=return-to-work-list]").click()  # OHIF's own link back: same page, token kept
    expect(page.get_by_text("Study List")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"Phantom, ohif-dx .* DX\\SEG\\SR XR HAND BONE AGE"))).to_be_visible()
    screenshot(page, "ohif-study-list")
    studies = [(url, status, auth) for url, status, auth in sent if url.split("?")[0].endswith("/studies")]
    assert studies and all(status == 200 and auth for _, status, auth in studies), studies
    context.close()

    # OHIF 3.13.2 reads ?token= on its viewer routes only: its study list opened first sends no credentials (401)
    cold = chromium.new_context()
    page = cold.new_page()
    with page.expect_response(lambda r: r.url.startswith(platform) and "/studies?" in r.url) as first:
        page.goto(f"{origin}/?token={token}")
    assert first.value.status == 401 and "authorization" not in first.value.request.headers
    cold.close()
