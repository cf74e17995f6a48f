"""The project as an RSNA-style zip: labels.csv like the Kaggle file, images and masks, optionally de-identified."""
from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
from boneage.annotations.actions import do_import_label, do_save_mask
from boneage.studies.actions import IngestFields, do_ingest
from django.core.management import call_command

from tests.dicom_factory import dicom_bytes, png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeled_project(project, owner):
    first = do_ingest(project, owner, dicom_bytes(sex="M"), "a.dcm", IngestFields(external_id="1377")).study
    second = do_ingest(project, owner, png_bytes(np.full((64, 48), 90, np.uint8)), "b.png", IngestFields(sex="F")).study
    do_ingest(project, owner, dicom_bytes(), "unlabeled.dcm")
    do_import_label(first, 180.0)
    do_import_label(second, 42.0)
    mask = np.zeros((64, 48), bool)
    mask[10:50, 10:40] = True
    do_save_mask(first, mask, source="canny")
    return project, first, second


def _zip(content: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(content))


def test_a_trainer_downloads_the_rsna_zip_of_the_labeled_studies(api_as, labeled_project, owner):
    project, _first, second = labeled_project
    response = api_as(owner).get(f"/api/projects/{project.pk}/export/?format=rsna")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["X-Export-Studies"] == "2"
    archive = _zip(b"".join(response.streaming_content))
    rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    assert rows == [{"id": "1377", "boneage": "180", "male": "True"}, {"id": str(second.pk), "boneage": "42", "male": "False"}]
    assert sorted(archive.namelist()) == sorted(["labels.csv", "images/1377.png", f"images/{second.pk}.png", "masks/1377.png"])
    assert archive.read("images/1377.png").startswith(b"\x89PNG")


def test_a_deidentified_export_has_no_rsna_ids_or_study_numbers(api_as, labeled_project, owner):
    project, first, second = labeled_project
    archive = _zip(b"".join(api_as(owner).get(f"/api/projects/{project.pk}/export/?deidentify=1").streaming_content))
    ids = [row["id"] for row in csv.DictReader(io.StringIO(archive.read("labels.csv").decode()))]
    assert len(ids) == 2 and not {"1377", str(first.pk), str(second.pk)} & set(ids)
    assert all(len(i) == 16 for i in ids)


def test_a_labeler_cannot_export_and_an_unknown_format_is_a_400(api_as, labeled_project, owner, member, outsider):
    project, *_ = labeled_project
    assert api_as(member).get(f"/api/projects/{project.pk}/export/").status_code == 403
    assert api_as(outsider).get(f"/api/projects/{project.pk}/export/").status_code == 404
    assert api_as(owner).get(f"/api/projects/{project.pk}/export/?format=coco").json()["error"] == "invalid_format"


def test_the_export_command_writes_the_same_zip(labeled_project, tmp_path, capsys):
    project, *_ = labeled_project
    out = tmp_path / "hands.zip"
    call_command("export_dataset", str(out), "--project", project.name)
    assert "2 labeled studies" in capsys.readouterr().out
    assert "labels.csv" in _zip(out.read_bytes()).namelist()
    assert not list(tmp_path.glob(".*.partial"))


def test_a_study_whose_stored_files_are_gone_is_named_in_skipped_csv_and_the_rest_downloads_whole(
        api_as, labeled_project, owner):
    from django.core.files.storage import default_storage

    project, first, second = labeled_project
    first.image.refresh_from_db()
    for name in (first.image.original, first.image.normalized, first.image.display):  # a lost disk, a deleted object
        if name:
            default_storage.delete(name)
    response = api_as(owner).get(f"/api/projects/{project.pk}/export/?format=rsna")
    archive = _zip(b"".join(response.streaming_content))
    assert archive.testzip() is None  # a whole zip, not one that broke off part-way
    rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    assert rows == [{"id": str(second.pk), "boneage": "42", "male": "False"}]
    assert sorted(archive.namelist()) == sorted(["labels.csv", "skipped.csv", f"images/{second.pk}.png"])
    (skipped,) = list(csv.DictReader(io.StringIO(archive.read("skipped.csv").decode())))
    assert skipped["id"] == "1377"
    assert "gone from storage" in skipped["reason"] or "can no longer be read" in skipped["reason"], skipped


def test_an_export_with_nothing_lost_has_no_skipped_csv(api_as, labeled_project, owner):
    project, *_ = labeled_project
    archive = _zip(b"".join(api_as(owner).get(f"/api/projects/{project.pk}/export/").streaming_content))
    assert "skipped.csv" not in archive.namelist()
