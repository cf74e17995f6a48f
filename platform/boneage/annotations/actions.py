"""Actions on masks and age labels. Revisions are append-only; a stale base revision is a conflict."""
from __future__ import annotations

import io
import logging
import uuid

import numpy as np
from django.db import transaction
from PIL import Image as PILImage

from boneage.annotations.models import LABEL_PRECEDENCE, AgeLabel, LabelSource, MaskRevision, MaskSource
from boneage.audit.actions import do_record
from boneage.core.errors import AppError
from boneage.core.events import publish
from boneage.core.pipeline import AutomaskState
from boneage.core.signals import label_saved, study_changed
from boneage.core.storage import delete_quietly, png_bytes, save_atomic
from boneage.studies.derive import derive_in_frame, load_unit
from boneage.studies.frame import Frame, frame_of
from boneage.studies.models import Image as StudyImage
from boneage.studies.models import Study

logger = logging.getLogger(__name__)


class AnnotationError(AppError):
    """A mask or label refused (boneage.core.errors)."""


def latest_mask(study: Study) -> MaskRevision | None:
    return study.mask_revisions.order_by("-created_at", "-id").first()


def latest_label(study: Study) -> AgeLabel | None:
    return study.age_labels.order_by("-created_at", "-id").first()


def current_label(study: Study) -> AgeLabel | None:
    """The label training uses: the newest of the highest-precedence source (review > expert > import)."""
    labels = list(study.age_labels.all())
    if not labels:
        return None
    return max(labels, key=lambda label: (LABEL_PRECEDENCE[label.source], label.created_at, label.pk))


def check_mask_png(study: Study, data: bytes) -> np.ndarray:
    """A mask upload → bool (H, W) of the study's image size as the platform reads it (turned: studies.frame), or a
    clear 4xx."""
    expected = (study.image.read_height, study.image.read_width)
    try:
        with PILImage.open(io.BytesIO(data)) as image:
            # the header's size first: a mask is decoded only at the study's own (ingest-bounded) size
            if (image.height, image.width) != expected:
                raise AnnotationError(
                    422, "mask_size_mismatch",
                    f"The mask is {image.width}×{image.height} but the image is {expected[1]}×{expected[0]}.",
                )
            image.load()
            array = np.asarray(image.convert("L"))
    except AnnotationError:
        raise
    except Exception as exc:
        raise AnnotationError(415, "invalid_mask", f"The mask must be a PNG image: {exc}") from exc
    return array >= 128


def do_save_mask(study: Study, mask: np.ndarray, *, source: str, author=None, base_revision_id: int | None = None,
                 quality: float | None = None, note: str = "", enforce_base: bool = True,
                 turns: int | None = None) -> MaskRevision:
    """Store a new revision, in the frame the film is read in now (Image.turns, recorded on the revision). With
    enforce_base, a base that is not the newest revision is a 409; a mask made for another frame (`turns`, or the shape
    of the film turned a quarter) is a 409 too: the film was turned since."""
    name = f"studies/{study.project_id}/masks/{study.pk}-{uuid.uuid4().hex[:12]}.png"
    save_atomic(name, png_bytes(np.where(mask, 255, 0).astype(np.uint8), compress_level=6))
    try:
        with transaction.atomic():
            Study.objects.select_for_update().filter(pk=study.pk).first()  # serialize writers of this study
            image = StudyImage.objects.get(study_id=study.pk)
            shape, across = (image.read_height, image.read_width), (image.read_width, image.read_height)
            if (turns is not None and turns != image.turns) or (mask.shape == across != shape):
                raise AnnotationError(409, "film_turned", "The film was turned since this mask was made: the mask "
                                      f"is {mask.shape[1]}×{mask.shape[0]}, the film is read {image.read_width}×"
                                      f"{image.read_height}. Reload the study.")
            newest = latest_mask(study)
            if enforce_base and newest is not None and newest.pk != base_revision_id:
                raise AnnotationError(
                    409, "stale_base_revision",
                    f"The mask changed since you started: your base is revision {base_revision_id}, "
                    f"the newest is {newest.pk} ({newest.source}, by {getattr(newest.author, 'username', 'system')}).",
                    newest_revision=newest.pk,
                )
            revision = MaskRevision.objects.create(
                study=study, parent=newest, author=author if getattr(author, "is_authenticated", False) else None,
                source=source, mask=name, quality=quality, area_fraction=float(mask.mean()), note=note,
                turns=image.turns,
            )
            do_record("mask.saved", revision, actor=author, project=study.project, study=study,
                      before={"revision": newest.pk if newest else None},
                      after={"revision": revision.pk, "source": source, "area_fraction": round(revision.area_fraction, 4)})
            event = "mask.generated" if source == MaskSource.CANNY else "mask.saved"
            publish(study.project_id, event, study=study.pk, revision=revision.pk, source=source)
            transaction.on_commit(lambda: study_changed.send(sender=MaskRevision, study_id=study.pk, reason="mask"))
    except BaseException:
        delete_quietly([name])
        raise
    return revision


def do_import_label(study: Study, months: float, *, actor=None) -> AgeLabel:
    label = AgeLabel.objects.create(study=study, months=months, source=LabelSource.IMPORT,
                                    author=actor if getattr(actor, "is_authenticated", False) else None)
    label_saved.send(sender=AgeLabel, label=label)
    do_record("label.imported", label, actor=actor, project=study.project, study=study, after={"months": months})
    return label


def do_save_label(study: Study, months: float, *, author, source: str = LabelSource.EXPERT,
                  base_label_id: int | None = None, enforce_base: bool = True, note: str = "") -> AgeLabel:
    low, high = study.project.min_age_months, study.project.max_age_months
    if not low <= months <= high:
        raise AnnotationError(400, "invalid_label", f"Bone age must be between {low:g} and {high:g} months "
                              f"(this project's age range), not {months:g}.")
    with transaction.atomic():
        Study.objects.select_for_update().filter(pk=study.pk).first()
        newest = latest_label(study)
        if enforce_base and newest is not None and newest.pk != base_label_id:
            raise AnnotationError(
                409, "stale_base_label",
                f"The label changed since you started: your base is label {base_label_id}, the newest is "
                f"{newest.pk} ({newest.months:g} months, {newest.source}).", newest_label=newest.pk,
            )
        before = current_label(study)
        label = AgeLabel.objects.create(study=study, months=months, source=source, base=newest, note=note,
                                        author=author if getattr(author, "is_authenticated", False) else None)
        label_saved.send(sender=AgeLabel, label=label)
        do_record("label.saved", label, actor=author, project=study.project, study=study,
                  before={"months": before.months, "source": before.source} if before else None,
                  after={"months": months, "source": source})
        publish(study.project_id, "label.saved", study=study.pk, label=label.pk, months=months, source=source,
                author_id=label.author_id)  # the project socket hides months from others in blind review
        transaction.on_commit(lambda: study_changed.send(sender=AgeLabel, study_id=study.pk, reason="label"))
    return label


def mask_files_of_deleted_study(sender, study: Study, **kwargs) -> list[str]:
    """core.signals.study_deleting: the study's mask PNGs, removed once its deletion commits."""
    return list(MaskRevision.objects.filter(study=study).values_list("mask", flat=True))


def import_label_on_ingest(sender, study, actor=None, bone_age_months: float | None = None, **kwargs) -> None:
    """Receiver of core.signals.study_ingested: the upload's bone age becomes an import label, in the ingest's
    transaction."""
    if bone_age_months is not None:
        do_import_label(study, bone_age_months, actor=actor)


def do_automask(study_id: int) -> bool:
    """The pipeline's automask stage (boneage.pipeline): the paper's Canny hand mask as revision source=canny.

    True when the mask was made (the next stage may run); False when the study is gone, its mask was already done
    (idempotent: a second run changes nothing) or the automask failed (recorded on the study, mask.failed sent)."""
    with transaction.atomic():
        study = Study.objects.select_for_update(of=("self",)).filter(pk=study_id).select_related("image").first()
        if study is None or study.automask_state == AutomaskState.DONE:
            return False
        study.automask_state = AutomaskState.RUNNING
        study.save(update_fields=["automask_state"])
    try:
        # the automask stage's one way to a new frame (annotations.frame imports this module)
        from boneage.annotations.frame import NewMask, reframe
        from ml.automask import automask
        from ml.gate import check_film

        image = study.image
        unit = load_unit(image)
        result = automask(unit)
        # films the platform should not read as they are (ml.gate): the study says why. A film the check is sure of
        # ("corrected": polarity and turn) is read corrected: its copies are made again from the original in the
        # corrected frame (studies.frame), and the automask reads them; the original is never changed. A flagged film
        # is read as stored (a labeler may apply the suggestion: annotations.frame.do_set_frame).
        try:
            film = check_film(unit, result)
            check = film.to_dict()
        except Exception as exc:  # the check is advice: a film it cannot judge still gets its mask
            logger.exception("film check failed for study %s", study_id)
            film, check = None, {"verdict": "unknown", "reason": f"the film check failed: {type(exc).__name__}"}
        copies = None
        if film is not None and film.verdict == "corrected" and frame_of(image).as_stored:
            copies = derive_in_frame(image, Frame(film.turns % 4, film.inverted))
            try:
                result = automask(copies.unit)
            except BaseException:
                delete_quietly(list(copies.names.values()))
                raise
        with transaction.atomic():  # the mask and "done" commit together, before any on-commit hook runs
            if copies is not None:  # the new copies, the frame's audit record and the mask, or none of them
                reframe(study, copies, NewMask(result.mask > 0, MaskSource.CANNY, float(result.quality),
                                               "Canny automask"), source="film_check", expect=image,
                        extra={"check": check.get("reason", "")}, read_again=False)  # the pipeline goes on
            else:
                do_save_mask(study, result.mask > 0, source=MaskSource.CANNY, quality=float(result.quality),
                             note="Canny automask", enforce_base=False, turns=image.turns)
            Study.objects.filter(pk=study_id).update(automask_state=AutomaskState.DONE, automask_error="",
                                                     film_check=check)
    except Exception as exc:
        logger.exception("automask failed for study %s", study_id)
        Study.objects.filter(pk=study_id).update(automask_state=AutomaskState.FAILED,
                                                 automask_error=f"{type(exc).__name__}: {exc}"[:2000])
        publish(study.project_id, "mask.failed", study=study_id, detail=str(exc)[:500])
        return False
    return True
