"""A study the pipeline stopped on says why, in words, on the worklist and the study (issue 32, row 12): before, its
derive failure was only sent as mask.failed, which no page listened to."""
from __future__ import annotations

import numpy as np
import pytest
from boneage.studies.actions import IngestFields, do_ingest
from boneage.studies.derive import do_derive
from boneage.studies.failures import failure_of
from boneage.studies.models import Image
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from tests.dicom_factory import png_bytes

pytestmark = pytest.mark.django_db


def a_study_whose_stored_film_is_damaged(project, owner):
    """A PNG stored by ingest, whose original file was later overwritten with a broken one, not yet derived."""
    pixels = np.zeros((96, 80), np.uint8)
    pixels[20:80, 20:60] = 200
    study = do_ingest(project, owner, png_bytes(pixels), "hand.png", IngestFields(sex="F")).study
    image = Image.objects.get(study=study)
    default_storage.delete(image.original)
    default_storage.save(image.original, ContentFile(png_bytes(pixels)[:60]))  # the file cut short on disk
    Image.objects.filter(pk=image.pk).update(normalized="", display="", work="")
    return study


def test_a_study_whose_derive_failed_says_why_on_its_worklist_row_and_its_own_record(project, owner, member, api_as):
    study = a_study_whose_stored_film_is_damaged(project, owner)
    assert do_derive(study.pk) is False
    client = api_as(member)

    row = client.get(f"/api/worklist-rows/{study.pk}/").json()
    assert row["failure"]["stage"] == "derive"
    assert row["failure"]["summary"].startswith("The stored film could not be read, so it has no images, mask or "
                                                "prediction")
    assert row["failure"]["detail"].startswith("could not derive images: ")
    listed = client.get(f"/api/projects/{project.pk}/worklist/").json()["results"]
    assert [r["failure"]["stage"] for r in listed if r["id"] == study.pk] == ["derive"]
    assert client.get(f"/api/studies/{study.pk}/").json()["failure"] == row["failure"]

    page = client.get(f"/studies/{study.pk}/").content.decode()
    assert "Processing stopped." in page and "The stored film could not be read" in page


def test_a_study_that_went_through_has_no_failure(project, owner, member, api_as):
    pixels = np.zeros((96, 80), np.uint8)
    pixels[20:80, 20:60] = 200
    study = do_ingest(project, owner, png_bytes(pixels), "hand.png", IngestFields(sex="F")).study
    assert do_derive(study.pk) is True
    assert api_as(member).get(f"/api/worklist-rows/{study.pk}/").json()["failure"] is None


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize("recorded,stage,says", [
    ("could not derive images: image_undecodable: The image data ends before its last row.", "derive",
     "prediction: The image data ends before its last row."),
    ("could not derive images: OSError: Truncated File Read", "derive", "mask or prediction."),
    ("could not predict: ValueError: expected one 2-D grey image", "predict", "The model could not read this film"),
    ("RuntimeError: the Canny thresholds found no edge", "automask", "draw the mask by hand"),
])
def test_each_stage_is_said_in_a_sentence_and_no_exception_text_reaches_it(recorded, stage, says):
    failure = failure_of("failed", recorded)
    assert failure is not None and failure.stage == stage and says in failure.summary
    assert "Error" not in failure.summary and failure.detail == recorded
    assert failure_of("done", recorded) is None
