"""The platform reads a film the check is sure of corrected, fingers-up and bright bone (issue 29; studies.frame,
annotations.frame): the network's work copy, the labeler's image and the automatic mask are in the corrected frame,
the stored original is untouched, the DICOM SEG still lies on the original's grid, and a labeler can undo it ("read as
stored") or apply a flagged suggestion by hand, each change in the audit history. A film the check only flags is read
as stored."""
from __future__ import annotations

import hashlib
import io
from pathlib import PurePosixPath

import highdicom as hd
import numpy as np
import pytest
from boneage.annotations.actions import do_automask, latest_mask
from boneage.annotations.models import MaskRevision
from boneage.audit.models import AuditEvent
from boneage.modeling.models import ModelVersion, Prediction
from boneage.studies.actions import IngestFields, do_ingest
from boneage.studies.derive import do_derive, work_png
from boneage.studies.ingest.decode import decode_upload
from boneage.studies.models import Study
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from ml.imaging import unit_to_uint16
from ml.phantoms import render
from tests.dicom_factory import dicom_bytes, make_dicom_dataset, png_bytes

pytestmark = pytest.mark.django_db

WHITE = 65535


def upright() -> np.ndarray:
    return render(100, False, seed=11, size=320).image  # uint16, fingers up, 320×245


def two_hands() -> np.ndarray:
    return np.concatenate([upright(), render(120, True, seed=12, size=320).image], axis=1)


def ingest(project, owner, data: bytes, name: str) -> Study:
    result = do_ingest(project, owner, data, name, IngestFields(sex="F"))
    assert result.study is not None, result.error
    assert do_derive(result.study.pk) and do_automask(result.study.pk)
    return Study.objects.select_related("image").get(pk=result.study.pk)


def stored_values(data: bytes) -> np.ndarray:
    """The uploaded film decoded as ingest decodes it, in its own (stored) frame, as the normalized PNG's uint16."""
    return unit_to_uint16(decode_upload(data, max_pixels=10**8).unit)


def png_values(name: str) -> np.ndarray:
    with default_storage.open(name, "rb") as handle:
        return np.asarray(PILImage.open(io.BytesIO(handle.read())))


def stored_bytes(study: Study) -> bytes:
    with default_storage.open(study.image.original, "rb") as handle:
        return handle.read()


def frame_events(study: Study) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(study=study, verb="study.frame_set").order_by("created_at", "id"))


def test_a_film_on_its_side_that_the_check_is_sure_of_is_read_fingers_up_and_its_original_is_untouched(
        project, owner, member, api_as):
    data = png_bytes(np.rot90(upright()).copy())  # fingers to the left
    study = ingest(project, owner, data, "turned.png")
    image = study.image
    assert study.film_check["verdict"] == "corrected"
    assert (image.turns, image.inverted, image.frame_source) == (3, False, "film_check")
    # the labeler's image, the network's work copy and the mask are all in the corrected frame
    normalized = png_values(image.normalized)
    assert np.array_equal(normalized, np.rot90(stored_values(data), 3))
    assert (image.read_height, image.read_width) == normalized.shape == (320, 245)
    assert png_values(image.display).shape == (image.display_height, image.display_width) == (320, 245)
    with default_storage.open(image.work, "rb") as handle:
        assert handle.read() == work_png(normalized)
    mask = latest_mask(study)
    assert mask.source == "canny" and mask.turns == 3 and png_values(mask.mask).shape == (320, 245)
    # the stored original is never modified
    assert stored_bytes(study) == data and hashlib.sha256(data).hexdigest() == study.checksum
    # the API and the page say what was done, and the audit history has it, made by the system
    body = api_as(member).get(f"/api/studies/{study.pk}/").json()
    assert body["frame"]["turns"] == 3 and "turned 90° clockwise" in body["frame"]["sentence"]
    assert "the film check was sure" in body["frame"]["sentence"] and body["image_url"].endswith(image.copies_token)
    page = api_as(member).get(f"/studies/{study.pk}/").content.decode()
    assert "turned 90° clockwise (fingers-up, bright bone): the film check was sure" in page
    assert 'data-width="245" data-height="320"' in page and 'id="frame-as-stored"' in page
    (event,) = frame_events(study)
    assert event.actor is None and event.after["source"] == "film_check" and event.before["words"] == "as stored"


def test_a_negative_the_check_is_sure_of_is_read_inverted(project, owner, member, api_as):
    data = png_bytes((WHITE - upright()).astype(np.uint16))
    study = ingest(project, owner, data, "negative.png")
    image = study.image
    assert study.film_check["verdict"] == "corrected" and (image.turns, image.inverted) == (0, True)
    assert np.array_equal(png_values(image.normalized), WHITE - stored_values(data))
    assert stored_bytes(study) == data
    assert "inverted" in api_as(member).get(f"/api/studies/{study.pk}/").json()["frame"]["sentence"]


def test_the_seg_export_of_a_film_read_turned_refers_to_the_original_pixel_grid(project, owner, member, api_as):
    source = make_dicom_dataset(np.rot90(upright(), -1).copy(), bits_stored=16)  # fingers to the right
    study = ingest(project, owner, dicom_bytes(source), "turned.dcm")
    assert (study.image.turns, study.image.inverted) == (1, False)
    mask = png_values(latest_mask(study).mask) > 127
    assert mask.shape == (320, 245) and (source.Rows, source.Columns) == (245, 320)
    response = api_as(member).get(f"/api/studies/{study.pk}/export/seg/")
    assert response.status_code == 200
    seg = hd.seg.segread(io.BytesIO(response.content))
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])
    assert pixels.shape[1:3] == (245, 320) and np.array_equal(pixels[0, :, :, 0] > 0, np.rot90(mask, -1))
    # DICOMweb's rendered image of the instance shows it as stored too
    rendered = api_as(member).get(f"/dicomweb/projects/{project.pk}/studies/{source.StudyInstanceUID}/series/"
                                  f"{source.SeriesInstanceUID}/instances/{source.SOPInstanceUID}/rendered",
                                  HTTP_ACCEPT="image/png")
    assert rendered.status_code == 200
    shown = np.asarray(PILImage.open(io.BytesIO(rendered.content)))
    assert shown.shape == (245, 320) and np.array_equal(shown, np.rot90(png_values(study.image.display), -1))


def test_a_member_can_undo_the_correction_and_the_history_says_who(project, owner, member, api_as,
                                                                   django_capture_on_commit_callbacks):
    data = png_bytes(np.rot90(upright()).copy())
    study = ingest(project, owner, data, "turned.png")
    before = study.image
    version = ModelVersion.objects.create(project=project, name="v1", checkpoint="x", sha256="0" * 64, status="active")
    Prediction.objects.create(study=study, model_version=version, age_months=116.5, std_months=5.3)  # on the old frame
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(member).post(f"/api/studies/{study.pk}/frame/", {"turns": 0, "inverted": False}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["as_stored"] and response.json()["sentence"] == "The platform reads the film as stored."
    image = Study.objects.get(pk=study.pk).image
    assert (image.turns, image.inverted, image.frame_source) == (0, False, "")
    assert np.array_equal(png_values(image.normalized), stored_values(data))
    with default_storage.open(image.work, "rb") as handle:
        assert handle.read() == work_png(stored_values(data))
    mask = latest_mask(study)
    assert mask.source == "canny" and mask.turns == 0 and png_values(mask.mask).shape == (245, 320)
    # the copies of the old frame are gone once the change committed; the original is as it was
    assert not any(default_storage.exists(name) for name in (before.normalized, before.display, before.work))
    assert stored_bytes(study) == data
    # the reading made on the turned copies is dropped (the pipeline reads the study again)
    assert not Prediction.objects.filter(study=study).exists()
    by_check, undo = frame_events(study)
    assert by_check.after["source"] == "film_check"
    assert undo.actor == member and (undo.before["turns"], undo.after["turns"]) == (3, 0)
    assert undo.after["words"] == "as stored" and undo.after["source"] == ""
    page = api_as(member).get(f"/studies/{study.pk}/").content.decode()
    assert "The platform reads the film as stored." in page and 'id="frame-suggested"' in page
    assert "Read it turned 90° clockwise" in page


def test_a_persons_mask_turns_with_the_film(project, owner, member, api_as):
    study = ingest(project, owner, png_bytes(np.rot90(upright()).copy()), "turned.png")
    drawn = np.zeros((320, 245), bool)
    drawn[40:300, 30:120] = True  # in the corrected frame, as the labeler saw it
    upload = io.BytesIO(png_bytes(np.where(drawn, 255, 0).astype(np.uint8)))
    upload.name = "mask.png"
    saved = api_as(member).post(f"/api/studies/{study.pk}/masks/", {"file": upload,
                                                                    "base_revision": latest_mask(study).pk})
    assert saved.status_code == 201, saved.content
    assert api_as(member).post(f"/api/studies/{study.pk}/frame/", {"turns": 0, "inverted": False},
                               format="json").status_code == 200
    carried = latest_mask(study)
    assert carried.source == "expert" and carried.turns == 0 and carried.author == member
    assert np.array_equal(png_values(carried.mask) > 127, np.rot90(drawn, -3))
    # a mask made for the old frame is refused now: it no longer fits the film as read
    stale = io.BytesIO(png_bytes(np.where(drawn, 255, 0).astype(np.uint8)))
    stale.name = "mask.png"
    refused = api_as(member).post(f"/api/studies/{study.pk}/masks/", {"file": stale, "base_revision": carried.pk})
    assert refused.status_code == 422 and refused.json()["error"] == "mask_size_mismatch"


def test_an_outsider_cannot_undo_and_a_trainer_may_not(project, owner, outsider, trainer, api_as):
    study = ingest(project, owner, png_bytes(np.rot90(upright()).copy()), "turned.png")
    as_stored = {"turns": 0, "inverted": False}
    assert api_as(outsider).post(f"/api/studies/{study.pk}/frame/", as_stored, format="json").status_code == 404
    assert api_as(trainer).post(f"/api/studies/{study.pk}/frame/", as_stored, format="json").status_code == 403
    image = Study.objects.get(pk=study.pk).image
    assert (image.turns, image.normalized) == (3, study.image.normalized) and len(frame_events(study)) == 1


def test_a_bad_frame_is_refused_with_the_reason(project, owner, member, api_as):
    study = ingest(project, owner, png_bytes(upright()), "plain.png")
    response = api_as(member).post(f"/api/studies/{study.pk}/frame/", {"turns": 5, "inverted": False}, format="json")
    assert response.status_code == 400 and response.json()["error"] == "invalid_frame"
    assert "0 to 3" in response.json()["detail"]


def test_a_flagged_film_is_read_as_stored_and_the_owner_can_apply_its_suggestion_by_hand(project, owner, api_as):
    data = png_bytes(np.rot90(two_hands()).copy())  # two hands, on their side: flagged, with a turn suggested
    study = ingest(project, owner, data, "two-turned.png")
    image = study.image
    assert study.film_check["verdict"] == "flagged" and study.film_check["turns"] == 3
    assert (image.turns, image.inverted, image.frame_source) == (0, False, "")
    assert np.array_equal(png_values(image.normalized), stored_values(data)) and not frame_events(study)
    page = api_as(owner).get(f"/studies/{study.pk}/").content.decode()
    assert "The platform reads the film as stored." in page and 'id="frame-as-stored"' not in page
    assert 'id="frame-suggested" data-turns="3"' in page
    response = api_as(owner).post(f"/api/studies/{study.pk}/frame/", {"turns": 3, "inverted": False}, format="json")
    assert response.status_code == 200 and "a labeler chose it" in response.json()["sentence"]
    image = Study.objects.get(pk=study.pk).image
    assert (image.turns, image.frame_source) == (3, "person")
    assert np.array_equal(png_values(image.normalized), np.rot90(stored_values(data), 3))
    assert MaskRevision.objects.filter(study=study).order_by("-id").first().turns == 3
    (event,) = frame_events(study)
    assert event.actor == owner and event.after["words"] == "turned 90° clockwise"


def test_a_change_that_fails_half_way_leaves_the_study_and_its_files_as_they_were(project, owner, member, api_as,
                                                                                  monkeypatch):
    study = ingest(project, owner, png_bytes(np.rot90(upright()).copy()), "turned.png")
    folder = str(PurePosixPath(study.image.original).parent)
    files_before = set(default_storage.listdir(folder)[1])
    revisions = MaskRevision.objects.filter(study=study).count()

    def refuse(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("boneage.annotations.frame.do_record", refuse)
    response = api_as(member).post(f"/api/studies/{study.pk}/frame/", {"turns": 0, "inverted": False}, format="json")
    assert response.status_code == 500 and response.json()["error"] == "server_error"
    image = Study.objects.get(pk=study.pk).image
    assert (image.turns, image.normalized, image.work) == (3, study.image.normalized, study.image.work)
    assert MaskRevision.objects.filter(study=study).count() == revisions and len(frame_events(study)) == 1
    assert set(default_storage.listdir(folder)[1]) == files_before


def test_with_two_hands_on_one_film_a_member_picks_the_one_read_and_the_automask_sees_only_it(
        project, owner, member, outsider, api_as):
    data = png_bytes(two_hands())  # 320 × 490: the first phantom on the left half, the second on the right
    study = ingest(project, owner, data, "two.png")
    assert study.film_check["verdict"] == "flagged" and "two hands" in study.film_check["reason"]
    page = api_as(member).get(f"/studies/{study.pk}/").content.decode()
    assert 'id="frame-hand-left"' in page and 'id="frame-hand-right"' in page
    pick = {"turns": 0, "inverted": False, "hand": "right"}
    assert api_as(outsider).post(f"/api/studies/{study.pk}/frame/", pick, format="json").status_code == 404
    response = api_as(member).post(f"/api/studies/{study.pk}/frame/", pick, format="json")
    assert response.status_code == 200 and "reads this film keeping only the hand on the right half" in response.json()["sentence"]
    image = Study.objects.get(pk=study.pk).image
    assert (image.hand, image.turns, image.frame_source) == ("right", 0, "person")
    stored, normalized = stored_values(data), png_values(image.normalized)
    half = stored.shape[1] // 2
    assert not normalized[:, :half].any() and np.array_equal(normalized[:, half:], stored[:, half:])
    mask = png_values(latest_mask(study).mask) > 127
    assert mask.shape == stored.shape and not mask[:, :half].any() and mask[:, half:].mean() > 0.05
    assert stored_bytes(study) == data
    (event,) = frame_events(study)
    assert event.actor == member and (event.before["hand"], event.after["hand"]) == ("", "right")
    # "Read the whole film" puts it back
    whole = api_as(member).post(f"/api/studies/{study.pk}/frame/", {"turns": 0, "inverted": False, "hand": ""},
                                format="json")
    assert whole.status_code == 200 and whole.json()["as_stored"]
    assert np.array_equal(png_values(Study.objects.get(pk=study.pk).image.normalized), stored)


def test_the_worklist_row_says_a_film_is_read_corrected_instead_of_asking_to_check_it(project, owner, member, api_as):
    corrected = ingest(project, owner, png_bytes(np.rot90(upright()).copy()), "turned.png")
    flagged = ingest(project, owner, png_bytes(np.rot90(two_hands()).copy()), "two-turned.png")
    rows = {row["id"]: row for row in api_as(member).get(f"/api/projects/{project.pk}/worklist/").json()["results"]}
    assert rows[corrected.pk]["frame"]["source"] == "film_check" and not rows[corrected.pk]["frame"]["as_stored"]
    assert "turned 90° clockwise" in rows[corrected.pk]["frame"]["sentence"]
    assert rows[flagged.pk]["frame"] == {"source": "", "as_stored": True,
                                         "sentence": "The platform reads the film as stored."}
    assert rows[flagged.pk]["film_check"]["verdict"] == "flagged"  # the page asks a labeler to check this one only
