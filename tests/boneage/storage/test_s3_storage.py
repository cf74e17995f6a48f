"""With S3 every stored file lives in the bucket (a real S3 API server, moto's server mode): originals, derived
images, masks, checkpoints, attention maps. Nothing is written under MEDIA_ROOT, downloads stream from the bucket,
a failed ingest leaves no object, and the orphan sweeper works on the bucket too."""
from __future__ import annotations

import numpy as np
import pytest
from boneage.annotations.actions import do_save_mask
from boneage.studies import actions
from boneage.studies.actions import do_ingest
from boneage.studies.derive import ensure_derived_images
from boneage.studies.models import Image, Study
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from ml.phantoms import render
from tests.dicom_factory import dicom_bytes, png_bytes

pytestmark = pytest.mark.django_db


def files_under(root):
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_an_upload_its_derived_images_and_its_mask_live_in_the_bucket_and_nothing_under_media_root(
        s3_storage, temporary_media, project, owner, api_as):
    client = api_as(owner)
    upload = client.post(f"/api/projects/{project.pk}/studies/",
                         {"file": SimpleUploadedFile("hand.png", png_bytes(render(100, 1, seed=8, size=160).image))}, format="multipart")
    assert upload.status_code == 201, upload.content
    study = Study.objects.get(pk=upload.json()["id"])
    image = ensure_derived_images(study.image)
    mask = do_save_mask(study, np.ones((160, 160), dtype=bool), source="expert", author=owner, enforce_base=False)

    keys = s3_storage.keys()
    assert image.original in keys and image.normalized in keys and image.display in keys and image.work in keys
    assert mask.mask in keys
    assert files_under(temporary_media) == []

    served = client.get(f"/api/studies/{study.pk}/image/")
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == s3_storage.read(image.display)


def test_a_crash_between_the_upload_and_the_commit_leaves_no_object_in_the_bucket(
        s3_storage, project, owner, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(actions, "do_record", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        do_ingest(project, owner, dicom_bytes(), "hand.dcm")
    assert Study.objects.count() == 0 and Image.objects.count() == 0
    assert s3_storage.keys() == []


def test_the_orphan_sweeper_removes_unreferenced_objects_from_the_bucket_and_keeps_the_rest(
        s3_storage, project, owner):
    kept = do_ingest(project, owner, dicom_bytes(), "kept.dcm").study
    orphan = f"studies/{project.pk}/deadbeef/original.dcm"
    s3_storage.client.put_object(Bucket=s3_storage.name, Key=orphan, Body=b"left by a killed process")
    call_command("sweep_orphans", "--min-age-seconds", "0")
    remaining = s3_storage.keys()
    assert orphan not in remaining
    assert kept.image.original in remaining
