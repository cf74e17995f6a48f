"""Films shaped like the real ones a team uploads (issue 28): 8-bit PNGs of 1,000–2,600 px, upright, landscape and
tilted on a black canvas, go through the upload API, are derived and masked by the pipeline, and are shown at the
right size and the right way round. The films are phantoms made to those shapes (the real ones stay out of tests)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from boneage.annotations.actions import do_automask
from boneage.studies.derive import do_derive
from boneage.studies.models import Study
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from ml.automask import dice
from ml.phantoms import render
from tests.dicom_factory import png_bytes

pytestmark = pytest.mark.django_db


def real_sized(height: int, width: int, *, turn: int = 0, tilt: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """An 8-bit phantom film and its hand mask at (height, width) px: upright, turned by `turn` quarter turns (a
    landscape film) or tilted by `tilt` degrees onto a black canvas (a crooked scan)."""
    phantom = render(120, True, seed=5, size=320)
    film = Image.fromarray((phantom.image.astype(np.float32) / 65535 * 255).round().astype(np.uint8))
    mask = Image.fromarray(((phantom.mask > 0) * 255).astype(np.uint8))
    if turn:
        film, mask = film.rotate(90 * turn, expand=True), mask.rotate(90 * turn, expand=True)
    if tilt:
        film = film.rotate(tilt, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=0)
        mask = mask.rotate(tilt, resample=Image.Resampling.NEAREST, expand=True, fillcolor=0)
    film = film.resize((width, height), Image.Resampling.BILINEAR)
    mask = mask.resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(film), np.asarray(mask) > 127


def upload_and_process(client, project, film: np.ndarray, name: str) -> Study:
    response = client.post(f"/api/projects/{project.pk}/studies/",
                           {"file": SimpleUploadedFile(name, png_bytes(film)), "sex": "M"}, format="multipart")
    assert response.status_code == 201, response.json()
    study_id = response.json()["id"]
    assert do_derive(study_id) and do_automask(study_id)
    return Study.objects.select_related("image").get(pk=study_id)


def shown(client, url: str) -> Image.Image:
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    return Image.open(io.BytesIO(b"".join(response.streaming_content) if response.streaming else response.content))


@pytest.mark.parametrize("name, height, width, turn, tilt, read_turns", [
    ("upright-2600.png", 2600, 2080, 0, 0.0, 0),
    ("landscape-1000.png", 1000, 1300, 1, 0.0, 3),  # on its side, fingers left: read turned back, fingers-up
    ("tilted-1800.png", 1800, 1500, 0, 17.0, 0),
])
def test_a_real_sized_8_bit_png_is_stored_shown_and_masked_at_its_own_size_and_orientation(
        api_as, project, member, name, height, width, turn, tilt, read_turns):
    client = api_as(member)
    film, hand = real_sized(height, width, turn=turn, tilt=tilt)
    study = upload_and_process(client, project, film, name)
    assert (study.image.width, study.image.height) == (width, height)  # stored as uploaded
    # read fingers-up where the film check is sure of the turn (issue 29, studies.frame); the original is untouched
    assert study.image.turns == read_turns
    film, hand = np.rot90(film, read_turns), np.rot90(hand, read_turns)
    read_height, read_width = film.shape

    display = shown(client, f"/api/studies/{study.pk}/image/")
    scale = settings.DISPLAY_MAX_SIDE / max(width, height)
    assert display.mode == "L" and display.size == (round(read_width * scale), round(read_height * scale))
    # the right way round: the shown film is the uploaded one (as read) made smaller, not turned or mirrored
    expected = np.asarray(Image.fromarray(np.ascontiguousarray(film)).resize(display.size, Image.Resampling.BILINEAR),
                          np.float32)
    assert np.corrcoef(expected.ravel(), np.asarray(display, np.float32).ravel())[0, 1] > 0.98

    revision = study.mask_revisions.order_by("-created_at", "-id").first()
    mask = np.asarray(shown(client, f"/api/masks/{revision.pk}/png/").convert("L")) > 127
    assert mask.shape == (read_height, read_width)
    assert dice(mask, hand) >= 0.85  # the Canny mask lies on the hand at the film's own size
