"""The DICOM instances a project offers over DICOMweb: its DICOM studies' originals plus the SEG/SR
objects made from them. PNG/JPEG studies have no DICOM form and are not listed."""
from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import pydicom
from django.core.files.storage import default_storage

from boneage.core.errors import AppError
from boneage.dicomweb.models import DerivedObject
from boneage.studies.models import Project, Study

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    study_id: int  # the platform's study it belongs to
    study_uid: str
    series_uid: str
    sop_uid: str
    file: str  # storage name of the Part 10 bytes
    kind: str = "original"  # original, seg, sr


def project_entries(project: Project, *, study_uid: str = "", series_uid: str = "", sop_uid: str = "",
                    hides_report: Callable[[int], bool] = lambda study_id: False) -> list[Entry]:
    """Entries narrowed by UID in the database; `hides_report(study id)`: this viewer may not see the study's
    bone-age report (blind review). A study stored before ingest refused instances without their three UIDs
    (`missing_uid`) has no DICOMweb address and is left out; its admins delete it through the API or its page."""
    studies = (Study.objects.filter(project=project, image__media_type="application/dicom").select_related("image")
               .exclude(study_instance_uid="").exclude(series_instance_uid="").exclude(sop_instance_uid=""))
    derived = DerivedObject.objects.filter(study__project=project).select_related("study")
    if study_uid:
        studies, derived = studies.filter(study_instance_uid=study_uid), derived.filter(study__study_instance_uid=study_uid)
    if series_uid:
        studies, derived = studies.filter(series_instance_uid=series_uid), derived.filter(series_instance_uid=series_uid)
    if sop_uid:
        studies, derived = studies.filter(sop_instance_uid=sop_uid), derived.filter(sop_instance_uid=sop_uid)
    entries = [Entry(s.pk, s.study_instance_uid, s.series_instance_uid, s.sop_instance_uid, s.image.original)
               for s in studies.order_by("id")]
    for obj in derived.order_by("id"):
        if obj.kind == "sr" and hides_report(obj.study_id):
            continue
        entries.append(Entry(obj.study_id, obj.study.study_instance_uid, obj.series_instance_uid, obj.sop_instance_uid,
                             obj.file, obj.kind))
    return entries


def file_gone(entry: Entry) -> AppError:
    """410 for an instance whose row is here but whose stored file is lost from storage: never a 500."""
    logger.warning("DICOMweb: study %s lists instance %s but its file %s is gone from storage", entry.study_id,
                   entry.sop_uid, entry.file)
    return AppError(410, "stored_file_missing", f"The stored file of instance {entry.sop_uid} is gone from storage; "
                                                "a project admin can delete the study and store it again.")


def check_stored(entries: Iterable[Entry]) -> None:
    """Raise 410 stored_file_missing for the first entry whose file is gone (before a streamed answer starts)."""
    for entry in entries:
        if not default_storage.exists(entry.file):
            raise file_gone(entry)


def read_bytes(entry: Entry) -> bytes:
    try:
        with default_storage.open(entry.file, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise file_gone(entry) from None


def read_dataset(entry: Entry) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(read_bytes(entry)))


@lru_cache(maxsize=4096)
def _header(file: str) -> pydicom.Dataset:
    # Stored files never change (a new version gets a new name), so their headers can be cached by name.
    with default_storage.open(file, "rb") as handle:
        return pydicom.dcmread(handle, stop_before_pixels=True)


def header(entry: Entry) -> pydicom.Dataset:
    return _header(entry.file)


def readable_headers(entries: Iterable[Entry]) -> Iterator[tuple[pydicom.Dataset, str]]:
    """(header, kind) of each entry whose stored file reads as DICOM; one that does not (its file lost from storage)
    is logged and left out, so one bad file never takes a project's whole search down."""
    for entry in entries:
        try:
            yield header(entry), entry.kind
        except Exception:  # whatever broke the file, the others are still answered
            logger.warning("DICOMweb search left out study %s: its file %s cannot be read", entry.study_id, entry.file,
                           exc_info=True)
