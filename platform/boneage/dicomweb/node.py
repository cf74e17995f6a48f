"""The DICOM node (Storage SCP) on pynetdicom: which presentation contexts it accepts and thin event handlers — the
called AE title picks the project (an unknown one is rejected at association), each C-STORE goes to
dicomweb.dimse.do_store_instance. `manage.py dicom_node` serves it; tests start it on a free port in-process."""
from __future__ import annotations

import logging
from typing import cast

from django.db import close_old_connections, connection
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer

from boneage.dicomweb.dimse import do_store_instance, project_for_called_ae, sender_of

LOG = logging.getLogger("boneage.dicom_node")
VERIFICATION = "1.2.840.10008.1.1"  # C-ECHO
NODE_AE_TITLE = "BONEAGE"  # what the node calls itself in its own logs; peers address projects by theirs

# The films the platform ingests (any image with pixel data; these are the classes hand radiographs come in) and the
# non-image objects a whole-study push brings, which are kept with their film as STOW keeps them.
FILM_CLASSES = (
    uid.ComputedRadiographyImageStorage,
    uid.DigitalXRayImageStorageForPresentation,
    uid.DigitalXRayImageStorageForProcessing,
    uid.SecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    uid.MultiFrameSingleBitSecondaryCaptureImageStorage,
    uid.MultiFrameTrueColorSecondaryCaptureImageStorage,
    uid.XRayRadiofluoroscopicImageStorage,
    uid.VLPhotographicImageStorage,
)
KEPT_CLASSES = (
    uid.SegmentationStorage,
    uid.BasicTextSRStorage,
    uid.EnhancedSRStorage,
    uid.ComprehensiveSRStorage,
    uid.Comprehensive3DSRStorage,  # the platform's own bone-age SR (TID 1500), pushed back by a PACS
    uid.ExtensibleSRStorage,
    uid.KeyObjectSelectionDocumentStorage,
    uid.GrayscaleSoftcopyPresentationStateStorage,
)
_UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian)
_COMPRESSED = (JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessSV1, JPEGLossless, JPEGLSLossless, JPEGLSNearLossless,
               JPEG2000Lossless, JPEG2000, RLELossless)


def accepted_transfer_syntaxes() -> list[UID]:
    """The uncompressed syntaxes, and each compressed one a pixel decoder here reads (ingest would refuse the rest)."""
    from pydicom.pixels import get_decoder

    def decodable(syntax: UID) -> bool:
        try:
            return bool(get_decoder(syntax).is_available)
        except NotImplementedError:
            return False

    return [*_UNCOMPRESSED, *(syntax for syntax in _COMPRESSED if decodable(syntax))]


def build_node() -> AE:
    """The application entity: C-ECHO, and C-STORE of FILM_CLASSES and KEPT_CLASSES in every accepted syntax."""
    ae = AE(ae_title=NODE_AE_TITLE)
    ae.require_called_aet = False  # the called title picks the project: _on_requested rejects unknown ones
    syntaxes = accepted_transfer_syntaxes()
    ae.add_supported_context(VERIFICATION)
    for storage_class in (*FILM_CLASSES, *KEPT_CLASSES):
        ae.add_supported_context(storage_class, syntaxes)
    ae.maximum_pdu_size = 0  # no limit on what peers send in one PDU
    return ae


def serve(host: str, port: int, *, block: bool) -> ThreadedAssociationServer | None:
    """Listen on host:port; block=False returns the running server (tests call its shutdown())."""
    handlers: list = [(evt.EVT_REQUESTED, _on_requested), (evt.EVT_C_ECHO, _on_echo), (evt.EVT_C_STORE, _on_store),
                      (evt.EVT_RELEASED, _on_ended), (evt.EVT_ABORTED, _on_ended)]
    return build_node().start_server((host, port), block=block, evt_handlers=handlers)


def _on_requested(event: Event) -> None:
    """A-ASSOCIATE-RQ: a called AE title that names no project is rejected (permanent, called AE title not
    recognised), said in the log with the titles asked for."""
    request = event.assoc.requestor.primitive
    assert request is not None  # EVT_REQUESTED comes with the A-ASSOCIATE-RQ
    called, calling = str(request.called_ae_title).strip(), str(request.calling_ae_title).strip()
    close_old_connections()
    project = project_for_called_ae(called)
    if project is None:
        LOG.warning("rejected an association from %s at %s: the called AE title %r names no project here",
                    calling, event.assoc.requestor.address, called)
        event.assoc.acse.send_reject(0x01, 0x01, 0x07)  # rejected-permanent, service-user, called-AE not recognized
        event.assoc.kill()  # waits until the rejection is sent, before the server closes the socket
        return
    event.assoc.acceptor.ae_title = called  # each C-STORE finds its project by it


def _on_echo(event: Event) -> int:
    return 0x0000


def _on_store(event: Event) -> Dataset | int:
    """One C-STORE: the bytes as sent (Part 10 with their file meta) to the action; its status back to the peer."""
    close_old_connections()
    project = project_for_called_ae(event.assoc.acceptor.ae_title)
    if project is None:  # the project was deleted during the association
        return _status(0xC000, "the called AE title no longer names a project")
    requestor = event.assoc.requestor
    modality = str(getattr(event.dataset, "Modality", "") or "") if _header_reads(event) else ""
    request = cast(C_STORE, event.request)
    stored = do_store_instance(project, event.encoded_dataset(include_meta=True),
                               sop_class=str(request.AffectedSOPClassUID),
                               sop_instance=str(request.AffectedSOPInstanceUID), modality=modality,
                               sender=sender_of(requestor.ae_title, requestor.address, requestor.port))
    LOG.info("C-STORE from %s into %s: status 0x%04X %s", requestor.ae_title, project.ae_title, stored.status,
             stored.comment)
    return _status(stored.status, stored.comment)


def _header_reads(event: Event) -> bool:
    try:
        event.dataset  # noqa: B018 — decodes the dataset; one that does not decode is for the ingest to refuse
        return True
    except Exception:  # noqa: BLE001
        return False


def _status(code: int, comment: str) -> Dataset | int:
    """A status dataset with its ErrorComment, or the bare code for a plain success."""
    if not comment:
        return code
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment
    return status


def _on_ended(event: Event) -> None:
    connection.close()  # each association runs in its own thread, with its own database connection
