"""The DICOM node with real peers on loopback: dcmtk's echoscu and storescu talk to the node started here on a free
port (dicomweb.node.serve, as `manage.py dicom_node` serves it); the called AE title picks the project."""
from __future__ import annotations

import asyncio
import re
import shutil
import subprocess

import pytest
from boneage.core.events import project_group
from boneage.dicomweb.models import DerivedObject
from boneage.studies.actions import do_create_project
from boneage.studies.models import IngestRecord, Study
from pydicom.uid import generate_uid

from tests.boneage.dicomweb.test_stow_non_image_objects import film, foreign_seg, foreign_sr, part10
from tests.dicom_factory import dicom_bytes, make_dicom_dataset

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(not shutil.which("storescu"), reason="dcmtk is not installed (apt-get install dcmtk)")]


@pytest.fixture
def outsider_project(outsider):
    return do_create_project(outsider, "Someone else's hands")


def echoscu(port: int, called: str) -> subprocess.CompletedProcess:
    return subprocess.run(["echoscu", "-aet", "MODALITY1", "-aec", called, "127.0.0.1", str(port)],
                          capture_output=True, text=True, timeout=30, check=False)


def storescu(port: int, called: str, *files) -> subprocess.CompletedProcess:
    """One association for all files, proposing the classes of the files sent (-R: storescu's default list has no
    room for SEG); -d logs each C-STORE's response: its status and its Error Comment."""
    return subprocess.run(["storescu", "-d", "-R", "-aet", "MODALITY1", "-aec", called, "127.0.0.1", str(port),
                           *map(str, files)], capture_output=True, text=True, timeout=60, check=False)


def statuses(result: subprocess.CompletedProcess) -> list[str]:
    """The DIMSE status of each C-STORE response, as storescu -d prints it: '0x0000', '0xa900', ..."""
    return re.findall(r"DIMSE Status\s*:\s*(0x[0-9a-f]{4})", result.stdout + result.stderr)


def error_comments(result: subprocess.CompletedProcess) -> list[str]:
    return re.findall(r"LO \[([^]]*)\]\s*#\s*\d+, 1 ErrorComment", result.stdout + result.stderr)


def write_films(folder, count: int, **kwargs) -> list:
    paths = []
    for number in range(count):
        path = folder / f"film{number}.dcm"
        path.write_bytes(dicom_bytes(**kwargs))
        paths.append(path)
    return paths


def test_echoscu_is_answered_on_a_projects_ae_title(node_port, project):
    result = echoscu(node_port, project.ae_title)
    assert result.returncode == 0, result.stderr


def test_storescu_sends_several_films_in_one_association_and_they_become_studies_of_the_called_project(
        node_port, project, outsider_project, tmp_path):
    films = write_films(tmp_path, 3)
    result = storescu(node_port, project.ae_title, *films)
    assert result.returncode == 0, result.stderr
    assert statuses(result) == ["0x0000"] * 3
    assert (result.stdout + result.stderr).count("Requesting Association") == 1
    studies = Study.objects.filter(project=project)
    assert studies.count() == 3 and {study.source for study in studies} == {"dimse"}
    records = IngestRecord.objects.filter(project=project, channel="dimse")
    assert [record.outcome for record in records] == ["accepted"] * 3
    assert all(re.fullmatch(r"MODALITY1 at 127\.0\.0\.1:\d+", record.sender) for record in records)
    assert not Study.objects.filter(project=outsider_project).exists()


def test_a_film_sent_again_is_already_stored_and_other_bytes_under_its_uid_are_a_conflict(node_port, project, tmp_path):
    uid = generate_uid()
    first, changed = tmp_path / "first.dcm", tmp_path / "changed.dcm"
    first.write_bytes(dicom_bytes(sop_uid=uid))
    changed.write_bytes(dicom_bytes(sop_uid=uid, sex="M"))
    storescu(node_port, project.ae_title, first)
    again = storescu(node_port, project.ae_title, first, changed)
    assert statuses(again) == ["0x0000", "0xc000"]
    assert error_comments(again)[0].startswith("uid_conflict: Study ")
    assert Study.objects.filter(project=project).count() == 1
    assert list(IngestRecord.objects.filter(project=project).order_by("id").values_list("outcome", flat=True)) == [
        "accepted", "already_stored", "conflict"]


def test_a_file_without_its_study_and_series_uids_fails_with_the_reason_and_nothing_is_stored(node_port, project, tmp_path):
    ds = make_dicom_dataset()
    del ds.StudyInstanceUID, ds.SeriesInstanceUID
    path = tmp_path / "no-uids.dcm"
    path.write_bytes(dicom_bytes(ds))
    result = storescu(node_port, project.ae_title, path)
    assert statuses(result) == ["0xc000"]
    assert error_comments(result) == ["missing_uid: The instance has no StudyInstanceUID and no Series~"]
    assert not Study.objects.filter(project=project).exists()
    assert IngestRecord.objects.get(project=project).reason == "missing_uid"


def test_an_object_without_pixels_under_an_image_class_fails_as_not_matching_its_class(node_port, project, tmp_path):
    ds = make_dicom_dataset()
    del ds.PixelData
    path = tmp_path / "no-pixels.dcm"
    path.write_bytes(dicom_bytes(ds))
    result = storescu(node_port, project.ae_title, path)
    assert statuses(result) == ["0xa900"]
    assert error_comments(result)[0].startswith("no_pixel_data: This DICOM object (Computed Radiography")
    assert not Study.objects.filter(project=project).exists()


def test_an_unknown_called_ae_title_is_rejected_and_no_project_is_written(node_port, project, outsider_project, tmp_path):
    echo = echoscu(node_port, "NO_SUCH_PROJECT")
    assert echo.returncode != 0 and "Called AE Title Not Recognized" in echo.stdout + echo.stderr
    store = storescu(node_port, "NO_SUCH_PROJECT", *write_films(tmp_path, 1))
    assert "Called AE Title Not Recognized" in store.stdout + store.stderr
    assert not Study.objects.exists() and not IngestRecord.objects.exists()


def test_a_film_for_the_outsiders_title_goes_only_to_the_outsiders_project(node_port, project, outsider_project, tmp_path):
    storescu(node_port, outsider_project.ae_title, *write_films(tmp_path, 1))
    assert Study.objects.filter(project=outsider_project).count() == 1
    assert not Study.objects.filter(project=project).exists()


def test_a_whole_study_push_stores_the_film_and_keeps_its_seg_and_sr_with_it(node_port, project, tmp_path):
    source = film()
    paths = {"film.dcm": part10(source), "seg.dcm": part10(foreign_seg(source)), "sr.dcm": part10(foreign_sr(source))}
    for name, data in paths.items():
        (tmp_path / name).write_bytes(data)
    result = storescu(node_port, project.ae_title, *(tmp_path / name for name in paths))
    assert statuses(result) == ["0x0000"] * 3, result.stdout + result.stderr
    study = Study.objects.get(project=project)
    assert sorted(DerivedObject.objects.filter(study=study).values_list("kind", flat=True)) == ["seg", "sr"]


def test_a_report_whose_film_is_not_here_is_a_warning_that_says_why_and_nothing_is_kept(node_port, project, tmp_path):
    path = tmp_path / "sr.dcm"
    path.write_bytes(part10(foreign_sr(film())))
    result = storescu(node_port, project.ae_title, path)
    assert statuses(result) == ["0xb006"]
    assert error_comments(result) == ["not kept: no_film"]
    assert not DerivedObject.objects.exists() and not Study.objects.exists()


def test_a_film_stored_by_dimse_is_announced_on_the_projects_socket(node_port, project, tmp_path):
    from channels.layers import get_channel_layer

    films = write_films(tmp_path, 1)

    async def listen_while_storing() -> dict:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(project_group(project.pk), channel)
        await asyncio.get_running_loop().run_in_executor(None, lambda: storescu(node_port, project.ae_title, *films))
        while True:
            message = (await asyncio.wait_for(layer.receive(channel), 10))["event"]
            if message["type"] == "study.ingested":
                return message

    message = asyncio.run(listen_while_storing())
    assert message["study"] == Study.objects.get(project=project).pk


def test_a_film_larger_than_the_upload_limit_is_out_of_resources_and_nothing_is_stored(node_port, project, tmp_path,
                                                                                       settings):
    settings.UPLOAD_MAX_BYTES = 4096  # the node runs in this process: it reads the same settings
    result = storescu(node_port, project.ae_title, *write_films(tmp_path, 1))  # 64 × 48 at 16 bits: 6 KB and more
    assert statuses(result) == ["0xa700"]
    assert error_comments(result)[0].startswith("file_too_large: The file is ")
    assert not Study.objects.filter(project=project).exists()


def test_a_de_identifying_project_stores_the_film_without_the_patients_identity(node_port, owner, tmp_path):
    import pydicom
    from django.core.files.storage import default_storage

    private = do_create_project(owner, "Private hands", deidentify=True)
    result = storescu(node_port, private.ae_title, *write_films(tmp_path, 1))
    assert statuses(result) == ["0x0000"]
    with default_storage.open(Study.objects.get(project=private).image.original, "rb") as stored:
        ds = pydicom.dcmread(stored)
    assert ds.PatientID != "PID-42" and str(ds.PatientName) != "Doe^Jane"


def test_the_command_refuses_a_port_that_is_not_one_and_a_port_another_program_holds(node_port):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=r"--port 70000 is not a TCP port \(1–65535\)"):
        call_command("dicom_node", "--port", "70000")
    with pytest.raises(CommandError, match=f"cannot listen on 127.0.0.1:{node_port}: .*in use"):
        call_command("dicom_node", "--port", str(node_port), "--bind", "127.0.0.1")
