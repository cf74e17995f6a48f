"""STOW-RS: each film goes through the upload ingest (dedupe, conflicts, limits, de-identification), each SEG/SR/KO/PR
is kept with its study (dicomweb.received); the answer lists stored instances in ReferencedSOPSequence (a skipped
non-image object there too, with a WarningReason and why) and refused ones, with why, in FailedSOPSequence."""
from __future__ import annotations

import io
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset

from boneage.dicomweb.multipart import Part
from boneage.dicomweb.received import receive_object
from boneage.studies.actions import do_ingest
from boneage.studies.ingest.elements import non_image_kind
from boneage.studies.ingest.errors import IngestError

# PS3.4 failure reasons: out of resources, duplicate SOP instance, cannot understand, processing failure.
REASON_OUT_OF_RESOURCES, REASON_DUPLICATE, REASON_CANNOT_UNDERSTAND, REASON_PROCESSING = 0xA700, 0x0111, 0xC000, 0x0110
# PS3.18 Table 10.5.3-3 warning: "Elements Discarded" — the closest code for a part accepted but not kept.
WARNING_DISCARDED = 0xB006
_REASONS = {413: REASON_OUT_OF_RESOURCES, 409: REASON_DUPLICATE, 415: REASON_CANNOT_UNDERSTAND,
            400: REASON_CANNOT_UNDERSTAND, 422: REASON_CANNOT_UNDERSTAND}


@dataclass
class StowOutcome:
    status: int  # 200 all stored, 202 some refused, 409 none stored
    response: Dataset


def store_parts(project, user, parts: list[Part], *, study_uid: str, retrieve_base: str) -> StowOutcome:
    """Films go through the upload ingest; SEG/SR/KO/PR are kept with their study (dicomweb.received). A skipped
    non-image part is a success with a warning: a PACS pushing a whole study must not fail for it."""
    response = Dataset()
    stored, failed, warned = [], [], 0
    for number, part in enumerate(parts, start=1):
        data = with_preamble(part.data)
        sop_class, sop_uid, part_study, modality = _identity(data)
        error = _check_part(part, part_study, study_uid)
        kind = non_image_kind(sop_class, modality) if error is None else None
        if kind is not None:
            try:
                received = receive_object(project, user, data, kind)
            except IngestError as refused:
                failed.append(_failed_item(sop_class, sop_uid, refused, number))
                continue
            item = _referenced(sop_class, sop_uid)
            if received.obj is not None:
                item.RetrieveURL = (f"{retrieve_base}/studies/{received.study_instance_uid}/series/"
                                    f"{received.obj.series_instance_uid}/instances/{received.obj.sop_instance_uid}")
            else:
                warned += 1
                item.WarningReason = WARNING_DISCARDED
                item.TextValue = f"part {number}: skipped: {received.skipped}: {received.detail}"[:1024]
            stored.append(item)
            continue
        study = None
        if error is None:
            result = do_ingest(project, user, data, f"stow-part-{number}.dcm", channel="dicomweb", source="dicomweb")
            error, study = result.error, result.study
        if error is not None or study is None:
            failed.append(_failed_item(sop_class, sop_uid, error or IngestError(500, "not_stored", "Not stored."), number))
            continue
        item = _referenced(sop_class, study.sop_instance_uid)
        item.RetrieveURL = (f"{retrieve_base}/studies/{study.study_instance_uid}/series/{study.series_instance_uid}"
                            f"/instances/{study.sop_instance_uid}")
        stored.append(item)
    if stored:
        response.ReferencedSOPSequence = stored
        if study_uid:
            response.RetrieveURL = f"{retrieve_base}/studies/{study_uid}"
    if failed:
        response.FailedSOPSequence = failed
    status = 200 if not failed and not warned else (202 if stored else 409)
    return StowOutcome(status, response)


def _referenced(sop_class: str, sop_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_uid
    return item


def with_preamble(data: bytes) -> bytes:
    """pydicom (so dicomweb-client) writes a dataset read without a preamble as File Meta + dataset, no
    preamble: the Part 10 form is the same bytes after 128 zero bytes and 'DICM'. Only a part that starts
    with a File Meta element (group 0002, explicit VR) is re-wrapped; nothing is parsed by force."""
    if data[:2] == b"\x02\x00" and data[4:6].isalpha() and data[4:6].isupper():
        return bytes(128) + b"DICM" + data
    return data


def _check_part(part: Part, part_study: str, study_uid: str) -> IngestError | None:
    media_type = part.content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/dicom":
        return IngestError(415, "unsupported_media_type", f"The part is {media_type}; STOW-RS parts must be application/dicom.")
    if study_uid and part_study and part_study != study_uid:
        return IngestError(400, "wrong_study", f"The instance belongs to study {part_study}, not to {study_uid} named in the URL.")
    return None


def _identity(data: bytes) -> tuple[str, str, str, str]:
    """SOP class, SOP instance and study UIDs and the modality when the part's header reads as DICOM (never forced)."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True,
                             specific_tags=["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Modality"])
        return (str(ds.get("SOPClassUID", "")), str(ds.get("SOPInstanceUID", "")), str(ds.get("StudyInstanceUID", "")),
                str(ds.get("Modality", "") or ""))
    except Exception:  # noqa: BLE001 — any unreadable header: the ingest then says exactly why
        return "", "", "", ""


def _failed_item(sop_class: str, sop_uid: str, error: IngestError, number: int) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class or None
    item.ReferencedSOPInstanceUID = sop_uid or None
    item.FailureReason = _REASONS.get(error.status, REASON_PROCESSING)
    # The reason in words (PS3.18 allows more attributes in the item): "part 2: file_too_large: ..."
    item.TextValue = f"part {number}: {error.code}: {error.detail}"[:1024]
    return item
