"""STOW-RS parts that are not films (SEG, SR, KO, PR): never ingested as radiographs to label. Each is kept beside the
film of its study that it references (or, referencing none, the study's first film) and served with that study in
QIDO/WADO; the platform's own SEG/SR coming back (a PACS pushing a whole study) are already stored. Where there is
no film to keep it with, or the project de-identifies, it is skipped — a success with the reason, never a failure
that would fail a PACS's whole push."""
from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

import pydicom
from django.conf import settings
from django.db import IntegrityError, transaction
from pydicom.dataset import Dataset

from boneage.audit.actions import do_record
from boneage.core.storage import delete_quietly, save_atomic
from boneage.dicomweb.models import RECEIVED, DerivedObject
from boneage.studies.ingest.elements import check_uid
from boneage.studies.ingest.errors import IngestError, refusing
from boneage.studies.models import Project, Study

KEPT_KINDS = ("seg", "sr", "ko", "pr")
MAX_REFERENCE_DEPTH = 8
NAMES = {"seg": "segmentation", "sr": "structured report", "ko": "key-object selection", "pr": "presentation state",
         "other": "non-image object"}


@dataclass(frozen=True)
class Received:
    """What became of one non-image part: stored now, stored before (`already`), or skipped with a reason."""

    obj: DerivedObject | None = None
    study_instance_uid: str = ""
    already: bool = False
    skipped: str = ""  # a reason code when nothing was kept
    detail: str = ""


def receive_object(project: Project, user, data: bytes, kind: str) -> Received:
    """Keep one non-image DICOM object with its study; IngestError for what cannot be read or addressed."""
    if len(data) > settings.UPLOAD_MAX_BYTES:
        raise IngestError(413, "file_too_large",
                          f"The file is {len(data):,} bytes; the limit is {settings.UPLOAD_MAX_BYTES:,} bytes.")
    with refusing(422, "unreadable_dicom", "The DICOM file cannot be parsed"):
        ds = pydicom.dcmread(io.BytesIO(data))
        uids = {keyword: check_uid(ds, keyword) for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
        references = referenced_instances(ds)
    missing = [keyword for keyword, value in uids.items() if not value]
    if missing:
        raise IngestError(422, "missing_uid", f"The instance has no {' and no '.join(missing)}: a DICOM instance must "
                          "carry its Study, Series and SOP Instance UIDs. Nothing was stored.")
    study_uid, series_uid, sop_uid = uids["StudyInstanceUID"], uids["SeriesInstanceUID"], uids["SOPInstanceUID"]
    existing = DerivedObject.objects.filter(study__project=project, sop_instance_uid=sop_uid).select_related("study").first()
    if existing is not None:  # the platform's own SEG/SR (or an object received before) coming back
        return Received(existing, existing.study.study_instance_uid, already=True)
    what = NAMES[kind]
    if kind not in KEPT_KINDS:
        return Received(skipped="not_kept", detail=f"A {what} ({_class_name(ds)}) is not a radiograph and this platform "
                        "keeps only segmentations, reports, key-object selections and presentation states.")
    if project.deidentify:
        return Received(skipped="deidentified_project", detail=f"This project de-identifies on ingest: a received {what} "
                        "would keep the identity its film lost, so it is not kept.")
    film = _film_of(project, study_uid, references)
    if film is None:
        return Received(skipped="no_film", detail=f"No film of study {study_uid} is in this project: a {what} is kept "
                        "with the film it belongs to. Store the film first.")
    return Received(_store(project, user, film, kind, data, series_uid, sop_uid), study_uid)


def referenced_instances(ds: Dataset, depth: int = 0) -> list[str]:
    """Every ReferencedSOPInstanceUID in the object, in order (SEG: source images; SR/KO: evidence; PR: images)."""
    found: list[str] = []
    if depth > MAX_REFERENCE_DEPTH:
        return found
    for element in ds:
        if element.keyword == "ReferencedSOPInstanceUID" and element.value:
            found.append(str(element.value))
        elif element.VR == "SQ":
            for item in element.value:
                found.extend(referenced_instances(item, depth + 1))
    return found


def _film_of(project: Project, study_uid: str, references: list[str]) -> Study | None:
    films = Study.objects.filter(project=project, study_instance_uid=study_uid,
                                 image__media_type="application/dicom").order_by("id")
    return films.filter(sop_instance_uid__in=references).first() or films.first()


def _store(project: Project, user, film: Study, kind: str, data: bytes, series_uid: str, sop_uid: str) -> DerivedObject:
    name = save_atomic(f"studies/{project.pk}/derived/received-{uuid.uuid4().hex}.dcm", data)
    try:
        with transaction.atomic():
            obj = DerivedObject.objects.create(study=film, kind=kind, source_key=f"{RECEIVED}{sop_uid}",
                                               series_instance_uid=series_uid, sop_instance_uid=sop_uid, file=name)
            do_record("dicom_object.received", obj, actor=user, project=project, study=film,
                      after={"kind": kind, "sop_instance_uid": sop_uid, "series_instance_uid": series_uid})
        return obj
    except IntegrityError:  # the same object arrived at the same moment: that one is kept
        delete_quietly([name])
        found = DerivedObject.objects.filter(study=film, sop_instance_uid=sop_uid).first()
        if found is None:
            raise
        return found
    except BaseException:
        delete_quietly([name])
        raise


def _class_name(ds: Dataset) -> str:
    name = getattr(ds.get("SOPClassUID"), "name", None) or str(ds.get("SOPClassUID", "unknown"))
    return "".join(ch if ch.isprintable() else "?" for ch in name)[:80]
