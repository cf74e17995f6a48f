"""The shapes a hand film never has are refused at ingest, from the header, with their reason (issue 34).

A 65535 × 1 CR film was once accepted and its first image request grew the web server to 15 GB until the kernel
killed it. Ingest now holds every film's declared shape against boneage.studies.ingest.bounds before a pixel is
decoded, through the upload API and STOW alike, and a refused file leaves nothing but its IngestRecord.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from boneage.studies.ingest.bounds import MAX_ASPECT, MAX_FRAMES, MAX_SIDE, MIN_SIDE
from boneage.studies.models import Image, IngestRecord, Study
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from tests.boneage.dicomweb.helpers import stow, stow_body
from tests.dicom_factory import make_dicom_dataset

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore::UserWarning")]


def written(ds) -> bytes:
    """A Part 10 file, explicit VR little endian, written as a broken modality would: without pydicom's checks."""
    ds.preamble = b"\0" * 128
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False, implicit_vr=False, little_endian=True)
    return buffer.getvalue()


def film(rows: int, columns: int, **kwargs) -> bytes:
    """A CR film whose pixel data really is rows × columns (MONOCHROME1, 12 bits in 16)."""
    return written(make_dicom_dataset(np.full((rows, columns), 800, np.uint16), photometric="MONOCHROME1", **kwargs))


def declared(**elements) -> bytes:
    """A small real film whose header declares something else: refused before its short pixel data is looked at."""
    ds = make_dicom_dataset(rows=64, columns=48)
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return written(ds)


def raster(width: int, height: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("L", (width, height), 90).save(buffer, format=fmt)
    return buffer.getvalue()


DICOM_SHAPES = [
    pytest.param(lambda: film(1, 65535), "extreme_aspect_ratio", "65535×1", id="the 65535x1 CR film"),
    pytest.param(lambda: film(65535, 1), "extreme_aspect_ratio", "1×65535", id="one pixel wide, 65535 tall"),
    pytest.param(lambda: film(400, 1), "extreme_aspect_ratio", "1×400", id="one pixel wide"),
    pytest.param(lambda: film(300, 30), "extreme_aspect_ratio", "30×300", id="ten times taller than wide"),
    pytest.param(lambda: film(4, 4), "absurd_dimensions", f"at least {MIN_SIDE}", id="four pixels a side"),
    pytest.param(lambda: declared(Rows=40000, Columns=40000), "absurd_dimensions", f"at most {MAX_SIDE}",
                 id="huge dimensions"),
    pytest.param(lambda: declared(Rows=9000, Columns=6000), "absurd_dimensions", f"at most {MAX_SIDE}",
                 id="a side over the bound"),
    pytest.param(lambda: declared(Rows=65535, Columns=65535), "absurd_dimensions", "65535×65535",
                 id="65535 square"),
    pytest.param(lambda: declared(Rows=0, Columns=48), "absurd_dimensions", "48×0", id="no rows"),
    pytest.param(lambda: declared(NumberOfFrames=1000), "too_many_frames", "1,000 frames", id="a thousand frames"),
    pytest.param(lambda: declared(Rows=5000, Columns=6000, SamplesPerPixel=3, PhotometricInterpretation="RGB",
                                  PlanarConfiguration=0, BitsAllocated=32, BitsStored=32, HighBit=31),
                 "decoded_too_large", "360,000,000 bytes", id="decodes to 360 MB"),
    pytest.param(lambda: declared(BitsAllocated=64), "invalid_element", "BitsAllocated", id="64 bits allocated"),
    pytest.param(lambda: declared(BitsStored=40), "invalid_element", "BitsStored", id="more bits stored than allocated"),
]
RASTER_SHAPES = [
    pytest.param(lambda: raster(65535, 1, "PNG"), "extreme_aspect_ratio", "65535×1", id="a 65535x1 PNG"),
    pytest.param(lambda: raster(1, 40, "PNG"), "extreme_aspect_ratio", "1×40", id="a one-pixel-wide PNG"),
    pytest.param(lambda: raster(6, 6, "PNG"), "absurd_dimensions", f"at least {MIN_SIDE}", id="a 6-pixel PNG"),
    pytest.param(lambda: raster(9000, 1200, "JPEG"), "absurd_dimensions", f"at most {MAX_SIDE}", id="a 9000-px JPEG"),
    pytest.param(lambda: raster(3000, 200, "JPEG"), "extreme_aspect_ratio", f"at most {MAX_ASPECT:g}",
                 id="a 15:1 JPEG"),
]


def assert_nothing_written(project, media_root, code: str) -> None:
    assert not Study.objects.filter(project=project).exists() and not Image.objects.exists()
    files = [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []
    assert files == []
    assert list(IngestRecord.objects.filter(project=project).values_list("outcome", "reason")) == [("rejected", code)]


@pytest.mark.parametrize("make,code,said", DICOM_SHAPES + RASTER_SHAPES)
def test_a_members_upload_of_a_shape_no_hand_film_has_is_refused_with_its_reason_and_nothing_is_written(
        api_as, project, member, temporary_media, make, code, said):
    response = api_as(member).post(f"/api/projects/{project.pk}/studies/",
                                   {"file": SimpleUploadedFile("film", make())}, format="multipart")
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["error"] == code and said in body["detail"], body
    assert_nothing_written(project, temporary_media, code)


@pytest.mark.parametrize("make,code,said", DICOM_SHAPES)
def test_a_stow_of_a_shape_no_hand_film_has_is_refused_with_its_reason_and_nothing_is_written(
        api_as, project, member, temporary_media, make, code, said):
    import pydicom

    response = stow(api_as(member), project, stow_body(("application/dicom", make())))
    assert response.status_code == 409, response.content
    failed = pydicom.Dataset.from_json(response.json()).FailedSOPSequence
    assert len(failed) == 1 and failed[0].FailureReason == 0xC000  # cannot understand
    assert f": {code}: " in failed[0].TextValue and said in failed[0].TextValue
    assert_nothing_written(project, temporary_media, code)


def test_the_shapes_a_hand_film_has_are_accepted_up_to_the_bounds(api_as, project, member):
    client = api_as(member)
    for rows, columns in [(MIN_SIDE, MIN_SIDE), (8 * 40, 40), (40, 8 * 40)]:
        response = client.post(f"/api/projects/{project.pk}/studies/",
                               {"file": SimpleUploadedFile("film.dcm", film(rows, columns))}, format="multipart")
        assert response.status_code == 201, response.content
    multi = make_dicom_dataset(np.full((16, 16), 700, np.uint16))
    multi.NumberOfFrames = MAX_FRAMES  # 64 frames: the first is kept
    multi.PixelData = np.full((MAX_FRAMES, 16, 16), 700, np.uint16).tobytes()
    response = client.post(f"/api/projects/{project.pk}/studies/",
                           {"file": SimpleUploadedFile("frames.dcm", written(multi))}, format="multipart")
    assert response.status_code == 201, response.content
    assert Study.objects.filter(project=project).count() == 4


def test_a_study_stored_before_the_bounds_is_refused_when_derived_never_decoded(api_as, project, owner, outsider):
    """The stored row's shape is checked before the file is read: a 65535 × 1 film from before answers a 422."""
    client = api_as(owner)
    response = client.post(f"/api/projects/{project.pk}/studies/",
                           {"file": SimpleUploadedFile("film.dcm", film(64, 48))}, format="multipart")
    study = Study.objects.get(pk=response.json()["id"])
    Image.objects.filter(study=study).update(width=65535, height=1)  # what ingest let in before the bounds
    for url in (f"/api/studies/{study.pk}/image/", f"/api/studies/{study.pk}/thumbnail/"):
        served = client.get(url)
        assert served.status_code == 422 and served.json()["error"] == "image_undecodable"
        assert "65535×1" in served.json()["detail"] and f"at most {MAX_ASPECT:g} times" in served.json()["detail"]
        assert api_as(outsider).get(url).status_code == 404
    study.refresh_from_db()
    assert study.automask_state == "failed" and "extreme_aspect_ratio" in study.automask_error
    assert not Image.objects.get(study=study).display  # nothing was derived
