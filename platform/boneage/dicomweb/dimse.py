"""The DICOM node's actions (docs/dicomweb.md, "DICOM node"): which project a called AE title names, and one C-STORE
through the same ingest as uploads and STOW — films by studies.actions.do_ingest (dedupe, conflicts,
de-identification, bounds, events on the project socket), SEG/SR/KO/PR kept with their film as STOW keeps them
(dicomweb.received). Each outcome becomes the C-STORE status PS3.4 Annex B gives it, with the reason in its
ErrorComment; dicomweb.node only wires these to pynetdicom."""
from __future__ import annotations

from dataclasses import dataclass

from django.core.files.storage import default_storage

from boneage.dicomweb.received import receive_object
from boneage.studies.actions import do_ingest
from boneage.studies.ingest.elements import non_image_kind
from boneage.studies.ingest.errors import IngestError
from boneage.studies.models import Image, Project

SUCCESS = 0x0000
WARNING_ELEMENTS_DISCARDED = 0xB006  # accepted, not kept: a whole-study push must not fail for it (as STOW)
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
COMMENT_MAX = 64  # ErrorComment is a LO: 64 characters
# The refusals whose object is not the image its SOP class promises; too large is out of resources; any other refusal
# (unreadable, no UIDs, an undecodable transfer syntax, a UID conflict) is "cannot understand".
_NOT_THE_CLASS = {"not_an_image", "no_pixel_data"}


@dataclass(frozen=True)
class Stored:
    """What one C-STORE came to: its DIMSE status and, when it is not a plain success, why (ErrorComment)."""

    status: int
    comment: str = ""


def project_for_called_ae(called_ae_title: str) -> Project | None:
    """The project whose AE title the association called, None when no project has it."""
    return Project.objects.filter(ae_title=called_ae_title.strip()).first()


def sender_of(calling_ae_title: str, address: str, port: int) -> str:
    """Who sent it, as the ingest record keeps it: 'MODALITY1 at 10.0.0.7:40112'."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in calling_ae_title.strip()) or "(no AE title)"
    return f"{shown} at {address}:{port}"


def do_store_instance(project: Project, data: bytes, *, sop_class: str, sop_instance: str, modality: str,
                      sender: str) -> Stored:
    """Store one received instance (Part 10 bytes) into `project`; never raises for a bad instance. Its name in the
    project's upload list is its SOP Instance UID."""
    kind = non_image_kind(sop_class, modality)
    if kind is not None:
        try:
            received = receive_object(project, None, data, kind)
        except IngestError as refused:
            return _refused(refused)
        if received.obj is None:
            return Stored(WARNING_ELEMENTS_DISCARDED, _comment(f"not kept: {received.skipped}"))
        return Stored(SUCCESS)
    data = stored_form(project, sop_instance, data)
    result = do_ingest(project, None, data, f"{sop_instance or 'dimse'}.dcm", channel="dimse", source="dimse", sender=sender)
    if result.error is not None:
        return _refused(result.error)
    return Stored(SUCCESS)


def stored_form(project: Project, sop_instance: str, data: bytes) -> bytes:
    """C-STORE carries the dataset, not the file: the receiver writes a new file meta header (pynetdicom's
    implementation UID and version), so a film sent again by a PACS never has the bytes of the file first stored by
    upload or STOW, and dedupe would call it a conflict. When this project already holds the instance and the stored
    file's dataset is, byte for byte, the one received, the stored file stands for it (dedupe: already stored);
    otherwise the received bytes go to ingest as they are (a changed dataset stays a conflict)."""
    body = dataset_body(data)
    image = Image.objects.filter(study__project=project, study__sop_instance_uid=sop_instance).only("original").first()
    if body is None or image is None or not sop_instance:
        return data
    try:
        with default_storage.open(image.original, "rb") as stored:
            original = stored.read()
    except OSError:
        return data
    return original if dataset_body(original) == body else data


def dataset_body(data: bytes) -> bytes | None:
    """The bytes after a Part 10 file's meta header (preamble, 'DICM', group 0002 by its group length); None when
    the header is not in that form."""
    if data[128:132] != b"DICM" or data[132:138] != b"\x02\x00\x00\x00UL":
        return None
    length = int.from_bytes(data[140:144], "little")
    return data[144 + length:]


def _refused(error: IngestError) -> Stored:
    if error.status == 413:
        status = OUT_OF_RESOURCES
    elif error.code in _NOT_THE_CLASS:
        status = DATASET_DOES_NOT_MATCH_SOP_CLASS
    else:
        status = CANNOT_UNDERSTAND
    return Stored(status, _comment(f"{error.code}: {error.detail}"))


def _comment(text: str) -> str:
    """ErrorComment: the code and the start of the reason, printable, at most 64 characters (the full reason is in
    the project's ingest record)."""
    text = "".join(ch if " " <= ch <= "~" and ch != "\\" else " " for ch in text)
    return text if len(text) <= COMMENT_MAX else text[: COMMENT_MAX - 1] + "~"
