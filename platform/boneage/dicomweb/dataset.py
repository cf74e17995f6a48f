"""A project as an RSNA-style dataset zip, streamed: labels.csv (`id,boneage,male` like the Kaggle file),
images/<id>.png (16-bit, bright bone) and masks/<id>.png (the current mask, 0/255). Only labeled studies.

A study whose stored files are gone (a lost disk, a bucket's object deleted by hand) or whose film can no longer be
read is left out of the images and of labels.csv, and named in skipped.csv with the reason: the download completes
with everything else instead of breaking off part-way (its headers were sent long before)."""
from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Iterator

from django.conf import settings
from django.core.files.storage import default_storage

from boneage.annotations.actions import current_label
from boneage.dicomweb.exports import current_mask
from boneage.studies.derive import ensure_derived_images
from boneage.studies.ingest.errors import IngestError
from boneage.studies.models import Project, Study


class _Sink(io.RawIOBase):
    """A write-only, unseekable stream: zipfile then writes data descriptors, so the zip can be streamed."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def labeled_studies(project: Project) -> list[Study]:
    return list(project.studies.filter(age_labels__isnull=False).distinct().select_related("image").order_by("id"))


def dataset_id(study: Study, *, deidentify: bool) -> str:
    """The RSNA id when the study has one, else its number; de-identified: a salted hash, nothing else."""
    if deidentify:
        return hashlib.sha256(f"{settings.SECRET_KEY}:{study.project_id}:{study.pk}".encode()).hexdigest()[:16]
    return study.external_id or str(study.pk)


def rsna_zip(project: Project, *, deidentify: bool = False) -> Iterator[bytes]:
    sink = _Sink()
    rows = io.StringIO()
    table = csv.writer(rows, lineterminator="\n")
    table.writerow(["id", "boneage", "male"])
    skipped_rows = io.StringIO()
    skipped = csv.writer(skipped_rows, lineterminator="\n")
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for study in labeled_studies(project):
            label = current_label(study)
            if label is None:
                continue
            sid = dataset_id(study, deidentify=deidentify)
            try:
                files = _study_files(study, sid)
            except (OSError, IngestError) as error:
                skipped.writerow([sid, _why(error)])
                continue
            for name, data in files:
                archive.writestr(name, data)
            table.writerow([sid, f"{label.months:g}", {"M": "True", "F": "False"}.get(study.sex, "")])
            yield sink.take()
        archive.writestr("labels.csv", rows.getvalue())
        if skipped_rows.tell():
            archive.writestr("skipped.csv", "id,reason\n" + skipped_rows.getvalue())
    yield sink.take()


def _study_files(study: Study, sid: str) -> list[tuple[str, bytes]]:
    """The study's image and mask, all read before any is written: a study is in the zip whole or not at all."""
    image = ensure_derived_images(study.image, work_copy=False)
    with default_storage.open(image.normalized, "rb") as handle:
        files = [(f"images/{sid}.png", handle.read())]
    mask = current_mask(study)
    if mask is not None:
        with default_storage.open(mask.mask, "rb") as handle:
            files.append((f"masks/{sid}.png", handle.read()))
    return files


def _why(error: Exception) -> str:
    if isinstance(error, IngestError):
        return f"its film can no longer be read ({error.code})"
    return "a stored file of it is gone from storage"
