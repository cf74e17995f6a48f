"""SEG and SR exports of a study: made once per set of inputs with highdicom, stored, then served as
new series of the study. A study ingested as PNG/JPEG has no DICOM source to reference: 409."""
from __future__ import annotations

import functools
import io

import highdicom as hd
import numpy as np
import pydicom
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from PIL import Image as PILImage
from pydicom.uid import generate_uid

from boneage.annotations.actions import current_label
from boneage.annotations.models import LabelSource, MaskRevision, MaskSource
from boneage.core.errors import AppError
from boneage.core.storage import delete_quietly, save_atomic
from boneage.dicomweb.models import DerivedObject
from boneage.dicomweb.objects import Algorithm, Reading, Verification, make_bone_age_report, make_seg, mask_outline
from boneage.modeling.actions import latest_prediction
from boneage.modeling.intervals import reading_interval
from boneage.studies.frame import Frame
from boneage.studies.models import Study


class ExportError(AppError):
    """A SEG/SR export refused (boneage.core.errors)."""


def source_dataset(study: Study) -> pydicom.Dataset:
    if study.image.media_type != "application/dicom":
        raise ExportError(409, "no_dicom_source", f"Study {study.pk} was uploaded as {study.image.media_type}; a SEG or "
                          "SR must reference a DICOM image, so it can only be made for DICOM studies.")
    with default_storage.open(study.image.original, "rb") as handle:
        source = pydicom.dcmread(handle)
    sop_class = str(source.get("SOPClassUID", "") or "")
    if sop_class not in _referable_sop_classes():
        shown = "".join(ch if ch.isprintable() else "?" for ch in sop_class)[:80]
        raise ExportError(409, "unsupported_source", f"Study {study.pk}'s SOP class {shown!r} is not one a DICOM SEG or SR "
                          "can reference (highdicom knows no IOD for it).")
    return source


@functools.cache
def _referable_sop_classes() -> frozenset[str]:
    """The SOP classes highdicom copies a source's patient and study modules from (an unknown one is a KeyError deep
    inside it: a 500 for a film ingest accepted)."""
    from highdicom._standard_utils import get_sop_class_iod_map

    return frozenset(get_sop_class_iod_map())


def current_mask(study: Study) -> MaskRevision | None:
    """The gold mask (newest expert or review revision), else the newest automatic one (Canny or model)."""
    revisions = study.mask_revisions.order_by("-created_at", "-id")
    gold = revisions.filter(source__in=[MaskSource.EXPERT, MaskSource.REVIEW]).first()
    return gold or revisions.first()


def export_seg(study: Study) -> DerivedObject:
    revision = current_mask(study)
    if revision is None:
        raise ExportError(409, "no_mask", f"Study {study.pk} has no hand mask yet (the automask runs after ingest).")
    key = f"mask:{revision.pk}"
    found = _existing(study, "seg", key)
    if found is not None:
        return found
    source = source_dataset(study)
    with default_storage.open(revision.mask, "rb") as handle:
        mask = np.asarray(PILImage.open(handle).convert("L")) > 127
    # the mask is drawn in the frame the platform reads the film in (studies.frame); the SEG refers to the original
    # image's pixel grid, so it is turned back (polarity moves no pixel)
    mask = Frame(revision.turns).to_stored(mask)
    algorithm = _mask_algorithm(study, revision)
    series_uid, sop_uid = _uids(study, "seg", key)
    seg = make_seg(source, mask, series_uid=series_uid, sop_uid=sop_uid, created=revision.created_at,
                   algorithm=algorithm)
    return _store(study, "seg", key, seg, series_uid, sop_uid)


def _mask_algorithm(study: Study, revision: MaskRevision) -> Algorithm | None:
    """Who made the mask when no person did: the Canny automask or the model (by its version)."""
    if revision.source == MaskSource.CANNY:
        return Algorithm("Canny automask", "1")
    if revision.source == MaskSource.MODEL:
        prediction = latest_prediction(study)
        return Algorithm("Bone age segmentation subnet", prediction.model_version.name if prediction else "unknown")
    return None


def export_sr(study: Study) -> DerivedObject:
    label = current_label(study)
    prediction = latest_prediction(study)
    if label is None and prediction is None:
        raise ExportError(409, "no_bone_age", f"Study {study.pk} has neither a label nor a model prediction to report.")
    verified = label is not None and label.source in (LabelSource.EXPERT, LabelSource.REVIEW)
    revision = current_mask(study)
    key = (f"label:{label.pk if label else '-'};prediction:{prediction.pk if prediction else '-'};"
           f"level:{study.project.interval_level:g};{'final' if verified else 'preliminary'};"
           f"outline:{revision.pk if revision else '-'}")
    found = _existing(study, "sr", key)
    if found is not None:
        return found
    readings = []
    if label is not None:
        readings.append(Reading(label.months, reader=_person_name(label.author) if label.author else f"{label.source}^"))
    if prediction is not None:  # the interval every page states (the project's level, conformal, clipped)
        interval = reading_interval(prediction.age_months, prediction.std_months, prediction.model_version.metrics,
                                    study.project, prediction.outside)
        readings.append(Reading(prediction.age_months, std_months=prediction.std_months,
                                interval=(interval.low, interval.high), interval_level=interval.level,
                                outside_reason=prediction.outside_reason if prediction.outside else "",
                                algorithm=Algorithm("Bone age residual attention network", prediction.model_version.name)))
    created = max(x.created_at for x in (label, prediction) if x is not None)
    series_uid, sop_uid = _uids(study, "sr", key)
    verification = None
    if verified and label is not None:  # an expert's or a reviewer's value: they verified it
        verification = Verification(observer=readings[0].reader, organization=_organization(study),
                                    when=label.created_at)
    source = source_dataset(study)
    sr = make_bone_age_report(source, readings, series_uid=series_uid, sop_uid=sop_uid, created=created,
                              verification=verification,
                              outline=_hand_outline(study, source) if revision is not None else None)
    return _store(study, "sr", key, sr, series_uid, sop_uid)


def _hand_outline(study: Study, source: pydicom.Dataset) -> np.ndarray | None:
    """The current mask's outline in the film's own pixel grid, read from the study's SEG (made if need be), so the
    SR's region and the SEG's segment are the same pixels."""
    seg = hd.seg.segread(io.BytesIO(read_bytes(export_seg(study))))
    mask = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])[0, :, :, 0] > 0
    return mask_outline(mask)


def derived_files_of_deleted_study(sender, study: Study, **kwargs) -> list[str]:
    """core.signals.study_deleting: the study's SEG/SR files, removed once its deletion commits."""
    return list(DerivedObject.objects.filter(study=study).values_list("file", flat=True))


def read_bytes(obj: DerivedObject) -> bytes:
    with default_storage.open(obj.file, "rb") as handle:
        return handle.read()


def _organization(study: Study) -> str:
    """The verifying organization (type 1): the project, as the team whose expert or reviewer read it."""
    return f"{study.project.name} (bone age platform)"[:64]


def _person_name(user) -> str:
    if user.last_name or user.first_name:
        return f"{user.last_name}^{user.first_name}"
    return f"{user.username}^"


def _uids(study: Study, kind: str, key: str) -> tuple[str, str]:
    """One series per kind and study; one instance per inputs. Derived from the study, so stable."""
    root = f"{study.project_id}:{study.instance_key}:{kind}"
    return generate_uid(entropy_srcs=[root]), generate_uid(entropy_srcs=[root, key])


def _existing(study: Study, kind: str, key: str) -> DerivedObject | None:
    return DerivedObject.objects.filter(study=study, kind=kind, source_key=key).first()


def _store(study: Study, kind: str, key: str, ds, series_uid: str, sop_uid: str) -> DerivedObject:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    name = save_atomic(f"studies/{study.project_id}/derived/{sop_uid}.dcm", buffer.getvalue())
    try:
        with transaction.atomic():
            return DerivedObject.objects.create(study=study, kind=kind, source_key=key, series_instance_uid=series_uid,
                                                sop_instance_uid=sop_uid, file=name)
    except IntegrityError:  # a concurrent export of the same inputs won: same UID, same file name
        found = _existing(study, kind, key)
        if found is None:
            delete_quietly([name])
            raise
        return found
