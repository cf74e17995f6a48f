"""The import_dicom and import_rsna commands: progress, a summary line, and nothing lost."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from boneage.annotations.models import AgeLabel
from boneage.studies.models import IngestRecord, Study
from django.core.management import CommandError, call_command

from tests.dicom_factory import dicom_bytes, png_bytes

pytestmark = pytest.mark.django_db


def write_rsna(folder, rows, header=("id", "boneage", "male")):
    images = folder / "images"
    images.mkdir(parents=True)
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for study_id, months, male in rows:
            writer.writerow([study_id, months, male])
            (images / f"{study_id}.png").write_bytes(png_bytes(np.full((40, 30), int(study_id) % 250, np.uint8)))
    return folder / "labels.csv", images


def test_import_rsna_turns_boneage_into_an_imported_label_and_male_into_sex(tmp_path, project, capsys):
    csv_path, images = write_rsna(tmp_path, [(1377, 180, "False"), (1378, 12, "True")])
    call_command("import_rsna", str(csv_path), str(images), "--project", project.name)
    studies = {s.external_id: s for s in Study.objects.all()}
    assert studies["1377"].sex == "F" and studies["1378"].sex == "M"
    assert AgeLabel.objects.get(study=studies["1377"]).months == 180
    assert AgeLabel.objects.get(study=studies["1377"]).source == "import"
    assert "accepted 2, already stored 0, conflicts 0, rejected 0" in capsys.readouterr().out


def test_import_rsna_reports_missing_images_and_bad_rows_and_imports_the_rest(tmp_path, project, capsys):
    csv_path, images = write_rsna(tmp_path, [(1, 100, "True"), (2, 50, "maybe")])
    (images / "1.png").unlink()
    with open(csv_path, "a") as handle:
        handle.write("3,abc,True\n")
    (images / "3.png").write_bytes(png_bytes(np.full((40, 30), 3, np.uint8)))
    call_command("import_rsna", str(csv_path), str(images), "--project", project.name)
    out = capsys.readouterr().out
    assert "image_missing ×1" in out and "invalid_row ×2" in out and "accepted 0" in out
    assert Study.objects.count() == 0


def test_import_rsna_reads_the_official_validation_file_by_its_own_column_names(tmp_path, project, capsys):
    csv_path, images = write_rsna(tmp_path, [(1386, 24, "True"), (1387, 150, "False")],
                                  header=("Image ID", "Bone Age (months)", "male"))  # read by name, any order
    call_command("import_rsna", str(csv_path), str(images), "--project", project.name)
    studies = {s.external_id: s for s in Study.objects.all()}
    assert studies["1386"].sex == "M" and AgeLabel.objects.get(study=studies["1387"]).months == 150
    assert "accepted 2" in capsys.readouterr().out


def test_import_rsna_reads_the_test_file_with_its_truth_or_unlabelled_without_it(tmp_path, project):
    csv_path, images = write_rsna(tmp_path / "truth", [(4360, 168.9, "M")],
                                  header=("Case ID", "Ground truth bone age (months)", "Sex"))
    call_command("import_rsna", str(csv_path), str(images), "--project", project.name)
    blind, blind_images = write_rsna(tmp_path / "blind", [(4361, "", "F")], header=("Case ID", "unused", "Sex"))
    call_command("import_rsna", str(blind), str(blind_images), "--project", project.name)
    studies = {s.external_id: s for s in Study.objects.all()}
    assert studies["4360"].sex == "M" and AgeLabel.objects.get(study=studies["4360"]).months == pytest.approx(168.9)
    assert studies["4361"].sex == "F" and not AgeLabel.objects.filter(study=studies["4361"]).exists()


def test_import_rsna_refuses_a_csv_without_the_kaggle_columns(tmp_path, project):
    (tmp_path / "labels.csv").write_text("name,age\nx,1\n")
    (tmp_path / "images").mkdir()
    with pytest.raises(CommandError, match="none of the known layouts"):
        call_command("import_rsna", str(tmp_path / "labels.csv"), str(tmp_path / "images"), "--project", project.name)


def test_import_dicom_walks_folders_recursively_and_rerunning_it_stores_nothing_twice(tmp_path, project, capsys):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.dcm").write_bytes(dicom_bytes())
    (tmp_path / "a" / "b" / "two.dcm").write_bytes(dicom_bytes())
    (tmp_path / "a" / "b" / "notes.txt").write_text("not an image")
    call_command("import_dicom", str(tmp_path / "a"), "--project", project.name)
    call_command("import_dicom", str(tmp_path / "a"), "--project", project.name)
    out = capsys.readouterr().out
    assert "accepted 2, already stored 0, conflicts 0, rejected 1" in out
    assert "accepted 0, already stored 2, conflicts 0, rejected 1" in out
    assert Study.objects.count() == 2 and IngestRecord.objects.filter(reason="unsupported_media_type").count() == 2


def test_import_into_an_unknown_project_is_a_clear_error(tmp_path):
    (tmp_path / "x.dcm").write_bytes(dicom_bytes())
    with pytest.raises(CommandError, match="No project named 'Nope'"):
        call_command("import_dicom", str(tmp_path / "x.dcm"), "--project", "Nope")
