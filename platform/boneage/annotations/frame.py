"""Reading a film in another frame (issue 29): turned fingers-up and/or inverted, or as stored (studies.frame).

The automask stage applies the film check's *sure* corrections itself (annotations.actions.do_automask, through
`reframe`); a labeler undoes one ("read as stored") or applies a flagged suggestion by hand (`do_set_frame`). Either
way the study's derived copies are made again from the untouched original, its mask follows the film (a person's mask
is turned with it, an automatic one is made again on the new copies), and the change, its audit record and the new
mask commit together; the readings made in the old frame are dropped and the study is read again (the
`study_reframed` signal: modeling forgets them, the pipeline predicts on commit). Nothing is half-written: copies made
for a change that does not commit are deleted, and the replaced copies only once it has.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image as PILImage

from boneage.annotations.actions import AnnotationError, do_save_mask
from boneage.annotations.models import MaskRevision, MaskSource
from boneage.audit.actions import do_record
from boneage.core.events import publish
from boneage.core.pipeline import AutomaskState
from boneage.core.signals import study_reframed
from boneage.core.storage import delete_quietly
from boneage.studies.derive import FrameCopies, derive_in_frame, swap_in_copies
from boneage.studies.frame import HANDS, Frame, frame_of
from boneage.studies.models import Image, Study


@dataclass(frozen=True)
class NewMask:
    """The mask the study gets in the new frame: made by the automask on the new copies, or a person's carried over."""

    mask: np.ndarray
    source: str
    quality: float | None
    note: str


def check_frame_request(data: Any) -> Frame:
    """{"turns": 0-3, "inverted": bool, "hand": "" | "left" | "right"} → a Frame, or a 400 that says what is wrong."""
    if not isinstance(data, dict):
        raise AnnotationError(400, "invalid_frame", 'Send {"turns": 0-3, "inverted": true|false, "hand": "" | "left" | '
                              '"right"}.')
    turns, inverted, hand = data.get("turns", 0), data.get("inverted", False), data.get("hand", "")
    if isinstance(turns, bool) or not isinstance(turns, int) or turns not in (0, 1, 2, 3):
        raise AnnotationError(400, "invalid_frame", f"turns is the number of counter-clockwise quarter turns, 0 to 3, "
                              f"not {turns!r}.")
    if not isinstance(inverted, bool):
        raise AnnotationError(400, "invalid_frame", f"inverted is true or false, not {inverted!r}.")
    if hand not in HANDS:
        raise AnnotationError(400, "invalid_frame", f"hand is the half of the film whose hand is read, \"left\" or "
                              f"\"right\", or \"\" for the whole film, not {hand!r}.")
    return Frame(turns, inverted, hand)


def gold_mask(study: Study) -> MaskRevision | None:
    """The newest mask a person made (expert or review), which a change of frame carries over."""
    return (study.mask_revisions.filter(source__in=[MaskSource.EXPERT, MaskSource.REVIEW])
            .order_by("-created_at", "-id").first())


def carried_mask(revision: MaskRevision, frame: Frame) -> np.ndarray:
    """A person's mask, drawn in its own frame, in `frame`: back to the original's grid, then turned as `frame`."""
    with default_storage.open(revision.mask, "rb") as handle:
        mask = np.asarray(PILImage.open(io.BytesIO(handle.read())).convert("L")) >= 128
    return frame.to_read(Frame(revision.turns).to_stored(mask))


def new_mask(study: Study, copies: FrameCopies) -> NewMask:
    from ml.automask import automask

    person = gold_mask(study)
    if person is not None:
        return NewMask(carried_mask(person, copies.frame), person.source, None,
                       f"revision {person.pk} turned with the film")
    result = automask(copies.unit)
    return NewMask(result.mask > 0, MaskSource.CANNY, float(result.quality), "Canny automask")


def reframe(study: Study, copies: FrameCopies, mask: NewMask, *, actor=None, source: str, expect: Image,
            extra: dict | None = None, read_again: bool = True) -> Image:
    """Swap `copies` in as the study's derived files, save `mask` in their frame and record the change, in the caller's
    transaction (opened here when there is none); `expect` is the image row the copies were made from: a row whose
    copies changed meanwhile is a 409. The replaced copies are deleted once it commits; on any failure the new ones
    are, and nothing else changed. read_again: the study is predicted again on commit (the automask stage passes False:
    the pipeline predicts next anyway)."""
    try:
        with transaction.atomic():
            Study.objects.select_for_update().filter(pk=study.pk).first()  # as every mask writer does
            locked = Image.objects.select_for_update().get(pk=expect.pk)
            if (locked.normalized, frame_of(locked)) != (expect.normalized, frame_of(expect)):
                raise AnnotationError(409, "frame_changed", "The film's frame changed while this was made; reload the "
                                      "study and try again.")
            before = {"turns": locked.turns, "inverted": locked.inverted, "hand": locked.hand, "source": locked.frame_source,
                      "words": frame_of(locked).words() or "as stored"}
            replaced = swap_in_copies(locked, copies, source=source)
            after = {"turns": locked.turns, "inverted": locked.inverted, "hand": locked.hand, "source": locked.frame_source,
                     "words": copies.frame.words() or "as stored", **(extra or {})}
            do_record("study.frame_set", study, actor=actor, project=study.project, study=study, before=before,
                      after=after)
            do_save_mask(study, mask.mask, source=mask.source, author=actor, quality=mask.quality, note=mask.note,
                         enforce_base=False, turns=copies.frame.turns)
            publish(study.project_id, "study.frame_set", study=study.pk, turns=locked.turns, inverted=locked.inverted,
                    source=locked.frame_source)
            study_reframed.send(sender=Image, study_id=study.pk, read_again=read_again)
            transaction.on_commit(lambda: delete_quietly(replaced))
    except BaseException:
        delete_quietly(list(copies.names.values()))
        raise
    return locked


def do_set_frame(study: Study, frame: Frame, *, actor) -> Image:
    """A labeler reads the film in `frame`: {"turns": 0, "inverted": false} undoes the film check's correction ("read
    as stored"); another applies a flagged suggestion by hand, or picks one of two hands on the film (`hand`: the
    other half is dark in the copies, so the automask and the network read that hand only). The same frame again
    changes nothing."""
    image = Image.objects.get(study_id=study.pk)
    if study.automask_state != AutomaskState.DONE or not image.normalized:
        raise AnnotationError(409, "film_not_ready", "The film is still being processed (its copies and automatic mask "
                              "are not made yet); try again once its mask shows.")
    if frame_of(image) == frame:
        return image
    copies = derive_in_frame(image, frame)
    try:
        mask = new_mask(study, copies)
    except BaseException:
        delete_quietly(list(copies.names.values()))
        raise
    return reframe(study, copies, mask, actor=actor, source="person", expect=image)
