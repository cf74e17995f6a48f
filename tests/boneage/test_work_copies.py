"""Studies derived before work copies existed get theirs from `derive_work_copies`: the same pixels deriving writes,
once, and a file that cannot be read is named while the others still get theirs."""
from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db(transaction=True)


def stored_pixels(name: str) -> np.ndarray:
    from django.core.files.storage import default_storage
    from PIL import Image as PILImage

    with default_storage.open(name, "rb") as handle:
        return np.asarray(PILImage.open(io.BytesIO(handle.read())))


def ingest(project, owner, seed: int):
    from boneage.studies.actions import IngestFields, do_ingest
    from boneage.studies.derive import ensure_derived_images

    from ml.phantoms import render
    from tests.dicom_factory import png_bytes

    result = do_ingest(project, owner, png_bytes(render(90, True, seed=seed, size=160).image), f"h{seed}.png",
                       IngestFields(sex="M"))
    assert result.study is not None, result.error
    return ensure_derived_images(result.study.image)


def test_an_older_study_gets_the_work_copy_deriving_would_have_written(project, owner, temporary_media):
    from boneage.studies.models import Image

    image = ingest(project, owner, 1)
    derived_copy = stored_pixels(image.work)
    Image.objects.filter(pk=image.pk).update(work="")  # as if derived before the copy existed

    out = io.StringIO()
    call_command("derive_work_copies", stdout=out)
    restored = Image.objects.get(pk=image.pk)
    assert restored.work and np.array_equal(stored_pixels(restored.work), derived_copy)
    assert "wrote 1 work copy" in out.getvalue()


def test_running_it_again_writes_nothing_and_leaves_no_extra_file(project, owner, temporary_media):
    from boneage.studies.models import Image

    image = ingest(project, owner, 2)
    (temporary_media / image.work).unlink()
    Image.objects.filter(pk=image.pk).update(work="")
    call_command("derive_work_copies", stdout=io.StringIO())
    folder = (temporary_media / image.original).parent
    files = sorted(p.name for p in folder.iterdir())
    out = io.StringIO()
    call_command("derive_work_copies", stdout=out)
    assert "wrote 0 work copies" in out.getvalue()
    assert sorted(p.name for p in folder.iterdir()) == files
    assert sum(name.startswith("work-") for name in files) == 1


def test_an_unreadable_normalized_file_is_named_and_the_others_still_get_theirs(project, owner, temporary_media):
    from boneage.studies.models import Image

    broken, fine = ingest(project, owner, 3), ingest(project, owner, 4)
    Image.objects.filter(pk__in=[broken.pk, fine.pk]).update(work="")
    (temporary_media / broken.normalized).write_bytes(b"not a png")
    out, err = io.StringIO(), io.StringIO()
    call_command("derive_work_copies", stdout=out, stderr=err)
    assert f"study {broken.study_id}: cannot read" in err.getvalue()
    assert Image.objects.get(pk=fine.pk).work and not Image.objects.get(pk=broken.pk).work
    assert "wrote 1 work copy, 1 failed" in out.getvalue()
