"""Derived files of a study: the normalized 16-bit PNG, the display-size 8-bit PNG and the network's input copy.

Made after commit on the cpu queue (so ingest stays close to raw decode speed) or on first view,
whichever comes first; idempotent, atomic, and safe to run twice at once.
"""
from __future__ import annotations

import io
import logging
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image as PILImage

from boneage.core.errors import AppError
from boneage.core.events import publish
from boneage.core.isolation import IsolatedFailure
from boneage.core.pipeline import AutomaskState
from boneage.core.storage import delete_quietly, local_file, png_bytes, save_atomic
from boneage.studies.failures import DERIVE
from boneage.studies.frame import Frame, frame_of
from boneage.studies.ingest.bounds import check_bounds
from boneage.studies.ingest.errors import IngestError
from boneage.studies.isolated_decode import ISOLATION_CODES, DecodedFilm, decode_film
from boneage.studies.models import Image, Study
from ml.imaging import unit_to_uint16

logger = logging.getLogger(__name__)


def read_bytes(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def load_unit(image: Image) -> np.ndarray:
    """The study's pixels as float32 [0, 1], bright bone, from its normalized PNG, in the frame the platform reads
    it (studies.frame); a study not derived yet (or whose normalized file was lost) has its original decoded in
    isolation (studies.isolated_decode), nothing stored: a reader, often in a re-prediction's helper thread, never
    takes the image row's lock that deriving takes."""
    from ml.imaging import load_image

    if image.normalized and default_storage.exists(image.normalized):
        return load_image(local_file(image.normalized))
    return _png_values(_held_to_stored_size(_decode_isolated(image).normalized, image)).astype(np.float32) / 65535.0


def load_work_image(image: Image, side: int):
    """The study's network input at `side` (an ml.infer.WorkImage) from its work copy; None when it has none at that
    size (derived before the copy existed, or another work size): the caller decodes the full image instead."""
    from ml.imaging import load_image
    from ml.infer import WorkImage

    if not image.work or side != settings.NETWORK_WORK_SIDE:
        return None
    square = load_image(local_file(image.work))
    if square.shape != (side, side):
        return None
    return WorkImage(square, image.read_height, image.read_width)


def load_network_input(image: Image, work_side: int):
    """What the predictor of a network with this work size reads for the study: its work copy when it has one at that
    size, else the full image (load_unit)."""
    return load_work_image(image, work_side) or load_unit(image)


def work_png(values: np.ndarray) -> bytes:
    """The network's input copy, made from the normalized image's 16-bit values (`values`, uint16) so that it matches
    what the predictor makes from the normalized PNG. Stored uncompressed: 128 KB at 256 px instead of ~80, and
    inflating it took 1.1 ms against 0.5 (it is read on every re-prediction, on the cores the network needs)."""
    from ml.infer import work_image

    stored = values.astype(np.float32) / 65535.0
    return png_bytes(unit_to_uint16(work_image(stored, settings.NETWORK_WORK_SIDE).square), compress_level=0)


def ensure_work_copy(image: Image) -> str | None:
    """Give a study derived before work copies existed its network-input copy, made from the normalized PNG (the same
    pixels deriving would have written). Returns the copy's name; None when the image has no normalized PNG yet
    (deriving will write both). Safe to run twice at once: the first row update wins, the other file is deleted."""
    if image.work:
        return image.work
    if not image.normalized:
        return None
    from ml.imaging import load_image

    values = unit_to_uint16(load_image(local_file(image.normalized)))
    work = save_atomic(str(PurePosixPath(image.normalized).parent / f"work-{uuid.uuid4().hex[:8]}.png"), work_png(values))
    if Image.objects.filter(pk=image.pk, work="").update(work=work) == 0:
        delete_quietly([work])
        return Image.objects.values_list("work", flat=True).get(pk=image.pk)
    image.work = work
    return work


def _decode_isolated(image: Image, frame: Frame | None = None) -> DecodedFilm:
    """The stored original decoded in a child process with a memory and a time limit, in the image's frame (or
    `frame`); IngestError when it cannot be:
    refused by ingest's checks, or the decoder crashed, hung or ran out of memory (a recorded failure of that kind
    is answered again without a second try: the same file would do the same)."""
    check_bounds(image.height, image.width, max_pixels=settings.UPLOAD_MAX_PIXELS)
    recorded = Study.objects.filter(pk=image.study_id).values_list("automask_error", flat=True).first() or ""
    code, _, detail = recorded.removeprefix(DERIVE).partition(": ")
    if recorded.startswith(DERIVE) and code in ISOLATION_CODES:
        raise IngestError(422, code, detail)
    try:
        frame = frame or frame_of(image)
        return decode_film(read_bytes(image.original), turns=frame.turns, inverted=frame.inverted, hand=frame.hand)
    except IsolatedFailure as failure:
        if failure.status == 503:  # every decoder slot busy: nothing is wrong with the film
            raise
        raise IngestError(failure.status, failure.code, failure.detail) from failure
    except IngestError:
        raise
    except AppError as refusal:  # ingest's own checks, made again in the child
        raise IngestError(refusal.status, refusal.code, refusal.detail) from refusal


def _held_to_stored_size(png: bytes, image: Image, frame: Frame | None = None) -> bytes:
    """The child's normalized PNG, refused unless its header says the stored size, turned as the frame turns it
    (before a pixel is inflated)."""
    turned = (frame or frame_of(image)).turns % 2
    width, height = (image.height, image.width) if turned else (image.width, image.height)
    with PILImage.open(io.BytesIO(png)) as picture:
        if picture.size != (width, height):
            raise IngestError(422, "pixel_decode_failed", f"The decoded film is {picture.size[0]}×{picture.size[1]}, "
                              f"not the stored {image.width}×{image.height}{' turned' if turned else ''}.")
    return png


def _png_values(png: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(png)) as picture:
        return np.asarray(picture, dtype=np.uint16)


def ensure_derived_images(image: Image, *, work_copy: bool = True) -> Image:
    """The image with its derived files; IngestError (recorded on the study) when the original cannot be decoded.
    The original is decoded in a child process (studies.isolated_decode), which makes the normalized and display
    PNGs; the work copy is made here from the normalized values. work_copy=False (the web process's first view):
    without it, since its square canvas costs up to ~1 GB for the largest film ingest allows; the worker's derive
    adds it (ensure_work_copy)."""
    if image.normalized and image.display:
        return image
    frame = frame_of(image)
    try:
        film = _decode_isolated(image, frame)
        _held_to_stored_size(film.normalized, image, frame)
    except IngestError as error:
        record_failure(image.study_id, f"{DERIVE}{error.code}: {error.detail}")
        raise
    names = _save_copies(image, film, work_copy=work_copy)
    with transaction.atomic():
        locked = Image.objects.select_for_update().get(pk=image.pk)
        done, reframed = bool(locked.normalized and locked.display), frame_of(locked) != frame
        if not (done or reframed):
            for field, name in names.items():
                setattr(locked, field, name)
            locked.display_height, locked.display_width = film.display_shape
            locked.value_black, locked.value_white = film.black_white or (None, None)
            locked.save(update_fields=[*names, "display_height", "display_width", "value_black", "value_white"])
    if done or reframed:  # someone else finished first (keep theirs), or the frame changed meanwhile (derive again)
        delete_quietly(list(names.values()))
        return locked if done else ensure_derived_images(locked, work_copy=work_copy)
    return locked


@dataclass(frozen=True)
class FrameCopies:
    """The derived copies of a film made in a new frame (derive_in_frame), written but not yet the image's: the
    caller swaps them in within its transaction, or deletes them (`names`) when it does not."""

    frame: Frame
    names: dict[str, str]             # normalized, display, work → storage name
    display_shape: tuple[int, int]
    black_white: tuple[float, float] | None
    unit: np.ndarray                  # float32 [0, 1] in the new frame: what the automask reads


def derive_in_frame(image: Image, frame: Frame) -> FrameCopies:
    """The normalized, display and work copies of the stored original in `frame`, decoded in isolation from the
    original (never from copies of another frame) and written under new names; nothing on the row changes."""
    film = _decode_isolated(image, frame)
    _held_to_stored_size(film.normalized, image, frame)
    values = _png_values(film.normalized)
    names = _save_copies(image, film, work_copy=True, values=values)
    return FrameCopies(frame, names, film.display_shape, film.black_white, values.astype(np.float32) / 65535.0)


def _save_copies(image: Image, film: DecodedFilm, *, work_copy: bool, values: np.ndarray | None = None) -> dict[str, str]:
    """The decoded film's normalized, display (and work) copies written under new names beside the original; what was
    written is deleted again when a later write fails."""
    folder = PurePosixPath(image.original).parent
    token = uuid.uuid4().hex[:8]
    names: dict[str, str] = {}
    try:
        names["normalized"] = save_atomic(str(folder / f"normalized-{token}.png"), film.normalized)
        names["display"] = save_atomic(str(folder / f"display-{token}.png"), film.display)
        if work_copy:
            work = values if values is not None else _png_values(film.normalized)
            names["work"] = save_atomic(str(folder / f"work-{token}.png"), work_png(work))
    except BaseException:
        delete_quietly(list(names.values()))
        raise
    return names


def swap_in_copies(locked: Image, copies: FrameCopies, *, source: str) -> list[str]:
    """Make `copies` the image's derived files and frame (the caller holds the row's lock, inside its transaction);
    returns the names of the files they replace, for the caller to delete once it commits."""
    old = [name for name in (locked.normalized, locked.display, locked.work) if name]
    for field, name in copies.names.items():
        setattr(locked, field, name)
    locked.display_height, locked.display_width = copies.display_shape
    locked.value_black, locked.value_white = copies.black_white or (None, None)
    locked.turns, locked.inverted, locked.hand = copies.frame.turns, copies.frame.inverted, copies.frame.hand
    locked.frame_source = "" if copies.frame.as_stored else source
    locked.save(update_fields=[*copies.names, "display_height", "display_width", "value_black", "value_white", "turns",
                               "inverted", "hand", "frame_source"])
    return old


def display_as_stored(image: Image) -> bytes:
    """The display PNG of the film as stored, whatever frame the platform reads it in (DICOMweb's rendered image of
    the original instance): the display copy itself when the frame is the stored one, else the original decoded again
    in isolation (the copies of a film read with one hand picked have the other half dark)."""
    if frame_of(image).as_stored:
        with default_storage.open(image.display, "rb") as handle:
            return handle.read()
    return _decode_isolated(image, Frame()).display


def record_failure(study_id: int, detail: str) -> None:
    """A later stage failed for this study: say so on the study (the worklist and API show it), never only in a log."""
    Study.objects.filter(pk=study_id).update(automask_state=AutomaskState.FAILED, automask_error=detail[:2000])


def do_derive(study_id: int) -> bool:
    """The pipeline's first stage (boneage.pipeline): the derived images of a new study. False when there is nothing
    more to do for it: the study is gone (rolled back, deleted) or its images cannot be derived (recorded on the study
    and announced as mask.failed, never lost in a worker log)."""
    image = Image.objects.filter(study_id=study_id).select_related("study").first()
    if image is None:
        return False
    try:
        ensure_work_copy(ensure_derived_images(image))  # a study first viewed in the web has no work copy yet
    except Exception as exc:
        logger.exception("could not derive the images of study %s", study_id)
        # a refusal keeps its code (as ensure_derived_images recorded it); anything else says what was raised
        reason = f"{exc.code}: {exc.detail}" if isinstance(exc, IngestError) else f"{type(exc).__name__}: {exc}"
        detail = f"{DERIVE}{reason}"[:2000]
        record_failure(study_id, detail)
        publish(image.study.project_id, "mask.failed", study=study_id, detail=detail[:500])
        return False
    return True
