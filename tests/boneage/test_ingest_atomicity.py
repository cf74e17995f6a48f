"""Ingest under concurrency and failure: one row per instance, no orphan files, no half-written rows."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from boneage.studies import actions
from boneage.studies.actions import do_ingest
from boneage.studies.models import Image, IngestRecord, Study
from django.db import connection

from tests.dicom_factory import dicom_bytes


def files_under(root):
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_uploads_of_one_file_make_exactly_one_study(project, owner, temporary_media):
    data = dicom_bytes()
    statuses: list[int] = []
    barrier = threading.Barrier(10)

    def upload():
        barrier.wait()
        try:
            statuses.append(do_ingest(project, owner, data, "same.dcm").status)
        finally:
            connection.close()

    threads = [threading.Thread(target=upload) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 9 + [201]
    assert Study.objects.count() == 1 and Image.objects.count() == 1
    assert len(files_under(temporary_media)) == 1  # only the winner's original stays
    assert IngestRecord.objects.filter(outcome="already_stored").count() == 9


@pytest.mark.django_db(transaction=True)
def test_a_crash_between_file_write_and_commit_leaves_no_orphan(project, owner, temporary_media, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(actions, "do_record", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        do_ingest(project, owner, dicom_bytes(), "hand.dcm")
    assert Study.objects.count() == 0 and Image.objects.count() == 0
    assert files_under(temporary_media) == []


@pytest.mark.django_db(transaction=True)
def test_the_orphan_sweeper_removes_files_that_a_killed_process_left(project, owner, temporary_media):
    from boneage.annotations.actions import do_save_mask
    from boneage.dicomweb.exports import export_seg
    from boneage.studies.derive import ensure_derived_images
    from django.core.management import call_command

    kept = do_ingest(project, owner, dicom_bytes(), "kept.dcm").study
    derived = ensure_derived_images(kept.image)
    mask = do_save_mask(kept, np.pad(np.ones((48, 28), bool), ((8, 8), (10, 10))), source="canny")
    seg = export_seg(kept)  # stored under studies/{p}/derived/, referenced by its DerivedObject
    orphan = temporary_media / "studies" / str(project.pk) / "deadbeef" / "original.dcm"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left by a killed process")
    call_command("sweep_orphans", "--min-age-seconds", "0")
    assert not orphan.exists()
    for name in (derived.original, derived.normalized, derived.display, derived.work, mask.mask, seg.file):
        assert name and (temporary_media / name).exists()


@pytest.mark.django_db(transaction=True)
def test_the_orphan_sweeper_removes_prediction_files_a_task_wrote_after_its_study_was_deleted(
        project, owner, temporary_media):
    import os
    import time

    from boneage.modeling.prediction_files import prediction_file_name, save_derived
    from django.core.management import call_command

    kept = do_ingest(project, owner, dicom_bytes(), "kept.dcm").study
    gone = do_ingest(project, owner, dicom_bytes(), "gone.dcm").study
    kept_files = [save_derived(prediction_file_name(kept, 1, part), b"png") for part in ("mask", "attention-sheet")]
    actions.do_delete_study(gone, actor=owner)
    late = [save_derived(prediction_file_name(gone, 1, part), b"png") for part in ("mask", "attention-sheet")]
    an_hour_ago = time.time() - 7200
    for name in kept_files + late:
        os.utime(temporary_media / name, (an_hour_ago, an_hour_ago))
    young = save_derived(prediction_file_name(gone, 2, "mask"), b"png")  # within the grace period: may be in flight

    call_command("sweep_orphans")

    assert not any((temporary_media / name).exists() for name in late)
    assert all((temporary_media / name).exists() for name in kept_files)
    assert (temporary_media / young).exists()


@pytest.mark.django_db(transaction=True)
def test_a_dry_run_of_the_sweeper_names_the_orphaned_prediction_files_and_removes_none(project, owner, temporary_media):
    import io

    from boneage.modeling.prediction_files import prediction_file_name, save_derived
    from django.core.management import call_command

    gone = do_ingest(project, owner, dicom_bytes(), "gone.dcm").study
    actions.do_delete_study(gone, actor=owner)
    late = save_derived(prediction_file_name(gone, 1, "mask"), b"png")
    out = io.StringIO()
    call_command("sweep_orphans", "--min-age-seconds", "0", "--dry-run", stdout=out)
    assert "would remove 1 unreferenced file(s) under studies/ and predictions/" in out.getvalue()
    assert (temporary_media / late).exists()
