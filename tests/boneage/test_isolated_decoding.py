"""A stored film is decoded only in a child process with a memory and a time limit (studies.isolated_decode, issue
34): a film whose decode needs more than the limit is a clear 422 on every endpoint that shows it, the study records
why, nothing half-derived is stored, and the web process goes on serving the other studies."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from boneage.core.isolation import IsolatedFailure, Limits, run_isolated
from boneage.studies.actions import IngestFields, do_ingest
from boneage.studies.derive import do_derive
from boneage.studies.models import Image, Study

from tests.dicom_factory import dicom_bytes, make_dicom_dataset

pytestmark = pytest.mark.django_db


def film(rows: int, columns: int):
    pixels = np.zeros((rows, columns), np.uint16)
    pixels[rows // 4: 3 * rows // 4, columns // 4: 3 * columns // 4] = 4000  # the 'bone'
    return make_dicom_dataset(pixels)


def stored_but_not_derived(project, owner, ds) -> Study:
    study = do_ingest(project, owner, dicom_bytes(ds), "hand.dcm", IngestFields(sex="F")).study
    assert not Image.objects.get(study=study).normalized  # deriving comes after commit, on the worker or a first view
    return study


def test_a_film_whose_decode_needs_more_than_the_limit_is_a_422_everywhere_and_the_server_serves_the_others(
        project, owner, member, api_as, settings, temporary_media):
    settings.DECODE_MEMORY_MB = 256  # a 4096 × 5120 film needs about 400 MiB to decode
    big = film(5120, 4096)
    heavy = stored_but_not_derived(project, owner, big)
    light = stored_but_not_derived(project, owner, film(96, 80))
    client = api_as(member)

    response = client.get(f"/api/studies/{heavy.pk}/image/")
    assert response.status_code == 422
    assert response.json()["error"] == "image_undecodable"
    assert "more than its 256 MiB" in response.json()["detail"]
    heavy.refresh_from_db()
    assert heavy.automask_state == "failed"
    assert heavy.automask_error.startswith("could not derive images: decode_out_of_memory: ")
    image = Image.objects.get(study=heavy)
    assert not (image.normalized or image.display or image.work)
    assert [p.name for p in temporary_media.rglob("*.png")] == []  # nothing half-derived

    # the same process answers the next request, and decodes a film inside the limit
    assert client.get(f"/api/studies/{light.pk}/image/").status_code == 200

    # a recorded failure of this kind is answered again without a second decode, even with room for one now
    settings.DECODE_MEMORY_MB = 4096
    dicomweb = (f"/dicomweb/projects/{project.pk}/studies/{big.StudyInstanceUID}/series/{big.SeriesInstanceUID}"
                f"/instances/{big.SOPInstanceUID}/rendered")
    for url in (f"/api/studies/{heavy.pk}/image/", f"/api/studies/{heavy.pk}/thumbnail/", dicomweb):
        again = client.get(url, HTTP_ACCEPT="image/png" if url == dicomweb else "*/*")
        assert again.status_code == 422, url
        assert "more than its 256 MiB" in again.json()["detail"], url
    assert not Image.objects.get(study=heavy).normalized


def test_the_worker_s_derive_of_such_a_film_ends_with_its_reason_recorded_and_says_so_in_words(
        project, owner, member, api_as, settings, temporary_media):
    settings.DECODE_MEMORY_MB = 256
    heavy = stored_but_not_derived(project, owner, film(5120, 4096))
    assert do_derive(heavy.pk) is False
    failure = api_as(member).get(f"/api/studies/{heavy.pk}/").json()["failure"]
    assert failure["stage"] == "derive"
    assert failure["summary"].endswith("Decoding needed more than its 256 MiB of memory and was stopped.")
    assert failure["detail"].startswith("could not derive images: decode_out_of_memory: ")


def test_a_film_inside_the_limits_derives_as_before_with_its_window_readout_and_work_copy(
        project, owner, member, api_as, temporary_media):
    study = stored_but_not_derived(project, owner, film(96, 80))
    assert do_derive(study.pk) is True
    image = Image.objects.get(study=study)
    assert image.normalized and image.display and image.work
    assert (image.display_height, image.display_width) == (96, 80)
    assert (image.value_black, image.value_white) == (0.0, 4000.0)


def test_a_first_view_in_the_web_makes_what_it_shows_and_the_worker_s_derive_adds_the_work_copy(
        project, owner, member, api_as, temporary_media):
    """The work copy's square canvas costs up to ~1 GB for the largest film ingest allows: not in the web process."""
    study = stored_but_not_derived(project, owner, film(96, 80))
    assert api_as(member).get(f"/api/studies/{study.pk}/thumbnail/").status_code == 200
    image = Image.objects.get(study=study)
    assert image.normalized and image.display and not image.work
    assert do_derive(study.pk) is True
    derived = Image.objects.get(study=study)
    assert (derived.normalized, derived.display) == (image.normalized, image.display) and derived.work


def test_frames_of_a_compressed_instance_are_decoded_in_the_child_to_the_raw_pixels(project, member, api_as):
    from pydicom.uid import RLELossless

    from tests.boneage.dicomweb.helpers import read_parts, stow, stow_body

    ds = film(64, 48)
    raw = bytes(ds.PixelData)
    ds.compress(RLELossless)
    client = api_as(member)
    assert stow(client, project, stow_body(("application/dicom", dicom_bytes(ds)))).status_code == 200
    instance = (f"/dicomweb/projects/{project.pk}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}")
    response = client.get(f"{instance}/frames/1", HTTP_ACCEPT='multipart/related; type="application/octet-stream"')
    assert read_parts(response) == [raw]


def test_while_every_decoder_slot_stays_busy_a_first_view_is_a_503_that_says_when_to_come_back(
        project, owner, member, api_as, settings, temporary_media):
    settings.DECODE_CONCURRENCY, settings.DECODE_TIMEOUT_S = 1, 5
    study = stored_but_not_derived(project, owner, film(96, 80))
    held = threading.Thread(target=lambda: pytest.raises(IsolatedFailure, run_isolated, "tests.isolation_children",
                                                         b"", {"what": "hang"}, Limits(256 * 2**20, 8), concurrency=1))
    held.start()  # another request's decoder, stuck on its film, holds the one slot
    try:
        time.sleep(0.5)
        response = api_as(member).get(f"/api/studies/{study.pk}/image/")
    finally:
        held.join()
    assert response.status_code == 503 and response.json()["error"] == "decoder_busy"
    assert response["Retry-After"] == "5"
    assert Study.objects.get(pk=study.pk).automask_error == ""  # nothing is wrong with the film: nothing recorded
    assert api_as(member).get(f"/api/studies/{study.pk}/image/").status_code == 200  # the slot is free again
