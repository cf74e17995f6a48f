"""Actions on projects and studies: `check_*` validate, `do_*` change rows and emit events on commit."""
from __future__ import annotations

import hashlib
import io
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.db import IntegrityError, transaction

from boneage.audit.actions import do_record
from boneage.core.errors import AppError
from boneage.core.events import publish
from boneage.core.signals import study_deleting, study_ingested
from boneage.core.storage import delete_quietly, list_files, save_atomic
from boneage.studies.ae_titles import check_ae_title
from boneage.studies.ingest.decode import Decoded, check_instance_uids, decode_upload
from boneage.studies.ingest.errors import IngestError, describe, refusing
from boneage.studies.models import Image, IngestOutcome, IngestRecord, Membership, Project, Role, Study

MAX_AGE_MONTHS = 240.0


@dataclass(frozen=True)
class IngestFields:
    """Optional form fields of an upload; when given they win over the DICOM tags."""

    sex: str | None = None
    chronological_age_months: float | None = None
    bone_age_months: float | None = None
    external_id: str = ""


@dataclass
class IngestResult:
    status: int  # 201 new, 200 already stored, 409 conflict, 4xx rejected
    outcome: str
    record: IngestRecord
    study: Study | None = None
    error: IngestError | None = None


def check_ingest_fields(data: Mapping) -> IngestFields:
    sex = (data.get("sex") or "").strip().upper() or None
    if sex is not None and sex not in ("M", "F"):
        raise IngestError(400, "invalid_field", f"sex must be M or F, not {data.get('sex')!r}.")
    return IngestFields(
        sex=sex,
        chronological_age_months=_months_field(data, "chronological_age_months"),
        bone_age_months=_months_field(data, "bone_age_months"),
        external_id="".join(ch for ch in str(data.get("external_id") or "") if ch.isprintable())[:64],
    )


def _months_field(data: Mapping, name: str) -> float | None:
    raw = data.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise IngestError(400, "invalid_field", f"{name} must be a number of months, not {raw!r}.")
    if not 0 <= value <= MAX_AGE_MONTHS:
        raise IngestError(400, "invalid_field", f"{name} must be between 0 and {MAX_AGE_MONTHS:g} months, not {value:g}.")
    return value


def check_age_range(min_months: float, max_months: float) -> None:
    if not 0 <= min_months < max_months <= MAX_AGE_MONTHS:
        raise MembershipError(400, "invalid_age_range", f"The age range must lie within 0–{MAX_AGE_MONTHS:g} months "
                              f"with its minimum below its maximum, not {min_months:g}–{max_months:g}.")


def do_create_project(user, name: str, *, description: str = "", deidentify: bool = False,
                      min_age_months: float = 0.0, max_age_months: float = MAX_AGE_MONTHS) -> Project:
    check_age_range(min_age_months, max_age_months)
    with transaction.atomic():
        project = Project.objects.create(name=name, description=description, deidentify=deidentify, created_by=user,
                                         min_age_months=min_age_months, max_age_months=max_age_months)
        Membership.objects.create(project=project, user=user, role=Role.ADMIN)
        do_record("project.created", project, actor=user, project=project, after={"name": name})
    return project


class MembershipError(AppError):
    """A project or membership change refused (boneage.core.errors)."""


def _lock_memberships(project: Project) -> None:
    """Serialize membership changes of one project, so two admins cannot demote each other at once."""
    Project.objects.select_for_update().filter(pk=project.pk).first()


def _check_keeps_an_admin(project: Project, membership: Membership, new_role: str | None) -> None:
    if membership.role != Role.ADMIN or new_role == Role.ADMIN:
        return
    if not Membership.objects.filter(project=project, role=Role.ADMIN).exclude(pk=membership.pk).exists():
        doing = "removed" if new_role is None else f"made {new_role}"
        raise MembershipError(409, "last_admin", f"{membership.user.username} is the last admin of {project.name} and "
                              f"cannot be {doing}: make someone else admin first.")


def do_set_role(project: Project, user, role: str, *, actor=None) -> Membership:
    """Add `user` with `role`, or change their role; the last admin cannot be demoted (MembershipError)."""
    if role not in Role.values:
        raise MembershipError(400, "unknown_role", f"Unknown role {role!r}; the roles are: {', '.join(Role.values)}.")
    with transaction.atomic():
        _lock_memberships(project)
        membership = Membership.objects.filter(project=project, user=user).select_related("user").first()
        before = membership.role if membership else None
        if membership is None:
            membership = Membership.objects.create(project=project, user=user, role=role)
        elif membership.role != role:
            _check_keeps_an_admin(project, membership, role)
            membership.role = role
            membership.save(update_fields=["role"])
        if before != role:
            do_record("membership.role_changed", membership, actor=actor, project=project,
                      before={"user": user.username, "user_id": user.pk, "role": before},
                      after={"user": user.username, "user_id": user.pk, "role": role})
    return membership


def do_remove_member(project: Project, user, *, actor=None) -> None:
    """End `user`'s membership; the last admin cannot be removed (MembershipError)."""
    with transaction.atomic():
        _lock_memberships(project)
        membership = Membership.objects.filter(project=project, user=user).select_related("user").first()
        if membership is None:
            raise MembershipError(404, "not_a_member", f"{user.username} is not a member of {project.name}.")
        _check_keeps_an_admin(project, membership, None)
        do_record("membership.removed", membership, actor=actor, project=project,
                  before={"user": user.username, "user_id": user.pk, "role": membership.role},
                  after={"user": user.username, "user_id": user.pk, "role": None})
        membership.delete()


PROJECT_EDITABLE = ("name", "description", "min_age_months", "max_age_months", "auto_promote", "promotion_min_held_out",
                    "promotion_confidence", "promotion_min_gain_months", "interval_level", "ae_title")


def do_update_project(project: Project, changes: Mapping, *, actor=None) -> Project:
    """Change the project's name, description, age range or promotion gate (validated values, e.g.
    ProjectUpdateSerializer's)."""
    changes = {key: value for key, value in changes.items() if key in PROJECT_EDITABLE and getattr(project, key) != value}
    check_age_range(changes.get("min_age_months", project.min_age_months), changes.get("max_age_months", project.max_age_months))
    # Names are unique per owner: another team's project of that name is none of this admin's business.
    if "name" in changes and Project.objects.filter(name=changes["name"], created_by=project.created_by) \
            .exclude(pk=project.pk).exists():
        raise MembershipError(400, "name_taken", "You already have a project with this name.")
    if "ae_title" in changes:
        changes["ae_title"] = check_project_ae_title(project, changes["ae_title"])
    if not changes:
        return project
    with transaction.atomic():
        before = {key: getattr(project, key) for key in changes}
        for key, value in changes.items():
            setattr(project, key, value)
        project.save(update_fields=sorted({"settings" if key == "interval_level" else key for key in changes}))
        do_record("project.updated", project, actor=actor, project=project, before=before, after=dict(changes))
    return project


def check_project_ae_title(project: Project, raw: str) -> str:
    """A valid AE title no other project holds (the DICOM node routes by it), stripped; MembershipError otherwise."""
    try:
        title = check_ae_title(raw)
    except ValueError as invalid:
        raise MembershipError(400, "invalid_ae_title", str(invalid)) from invalid
    if Project.objects.filter(ae_title=title).exclude(pk=project.pk).exists():
        raise MembershipError(400, "ae_title_taken", f"The AE title {title} is taken by another project: each project "
                              "needs its own, since the DICOM node stores by it.")
    return title


def do_ingest(
    project: Project,
    user,
    data: bytes,
    file_name: str,
    fields: IngestFields = IngestFields(),
    *,
    channel: str = "api",
    source: str = "upload",
    sender: str = "",
) -> IngestResult:
    """Validate, store and register one file. Never raises for a bad file: the result says why. `sender` names who
    sent it when no user did (the DICOM node's calling AE title and peer address); the ingest record keeps it."""
    started = time.perf_counter()
    file_name = clean_file_name(file_name)
    try:
        if len(data) > settings.UPLOAD_MAX_BYTES:
            raise IngestError(
                413, "file_too_large",
                f"The file is {len(data):,} bytes; the limit is {settings.UPLOAD_MAX_BYTES:,} bytes.",
            )
        decoded = decode_upload(data, max_pixels=settings.UPLOAD_MAX_PIXELS, pixels=False)
        check_instance_uids(decoded)
        with refusing(422, "deidentification_failed", "The file cannot be de-identified"):
            stored_bytes = _maybe_deidentify(project, decoded, data, fields)
        return _store(project, user, decoded, stored_bytes, file_name, fields, channel, source, started, sender)
    except IngestError as error:
        record = _record(project, user, file_name, data, channel, IngestOutcome.REJECTED, started,
                         reason=error.code, detail=error.detail, sender=sender)
        return IngestResult(error.status, IngestOutcome.REJECTED, record, error=error)
    except Exception as exc:  # a bug, not a bad file: still leave the attempt on record, then answer 500
        _record(project, user, file_name, data, channel, IngestOutcome.REJECTED, started,
                reason="internal_error", detail=describe(exc), sender=sender)
        raise


def clean_file_name(name: str | None) -> str:
    """The uploaded name as stored: printable characters only (PostgreSQL refuses NUL), at most 255."""
    cleaned = "".join(ch for ch in (name or "") if ch.isprintable()).strip()
    return (cleaned or "upload")[:255]


def do_reject(project: Project, user, file_name: str, size: int, error: IngestError, *, channel: str) -> IngestRecord:
    """Record a file refused before its bytes were read (e.g. over the size limit)."""
    return IngestRecord.objects.create(
        project=project, user=user if getattr(user, "is_authenticated", False) else None,
        file_name=clean_file_name(file_name), size_bytes=size, channel=channel,
        outcome=IngestOutcome.REJECTED, reason=error.code, detail=error.detail,
    )


def _maybe_deidentify(project: Project, decoded: Decoded, data: bytes, fields: IngestFields) -> bytes:
    if not (project.deidentify and decoded.dataset is not None):
        return data
    from boneage.studies.ingest.deid import deidentify

    age = fields.chronological_age_months if fields.chronological_age_months is not None else decoded.chronological_age_months
    ds = deidentify(decoded.dataset, salt=f"{settings.SECRET_KEY}:{project.pk}", age_months=age)
    decoded.sop_instance_uid = str(ds.SOPInstanceUID)
    decoded.study_instance_uid = str(ds.get("StudyInstanceUID", ""))
    decoded.series_instance_uid = str(ds.get("SeriesInstanceUID", ""))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _store(project, user, decoded: Decoded, data: bytes, file_name, fields: IngestFields, channel, source, started,
           sender="") -> IngestResult:
    checksum = hashlib.sha256(data).hexdigest()
    instance_key = decoded.sop_instance_uid or f"sha256:{checksum}"
    existing = Study.objects.filter(project=project, instance_key=instance_key).first()
    if existing is not None:
        return _duplicate(project, user, existing, checksum, file_name, data, channel, started, sender)

    extension = {"application/dicom": ".dcm", "image/png": ".png", "image/jpeg": ".jpg"}[decoded.media_type]
    original = f"studies/{project.pk}/{uuid.uuid4().hex}/original{extension}"
    try:
        save_atomic(original, data)
        with transaction.atomic():
            study = Study.objects.create(
                project=project,
                instance_key=instance_key,
                sop_instance_uid=decoded.sop_instance_uid,
                study_instance_uid=decoded.study_instance_uid,
                series_instance_uid=decoded.series_instance_uid,
                external_id=fields.external_id,
                sex=fields.sex if fields.sex is not None else decoded.sex,
                chronological_age_months=(
                    fields.chronological_age_months
                    if fields.chronological_age_months is not None
                    else decoded.chronological_age_months
                ),
                source=source,
                original_name=file_name,
                checksum=checksum,
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )
            Image.objects.create(
                study=study, original=original, width=decoded.width, height=decoded.height,
                pixel_spacing_mm=decoded.pixel_spacing_mm, photometric=decoded.photometric,
                bits_stored=decoded.bits_stored, modality=decoded.modality,
                transfer_syntax=decoded.transfer_syntax, media_type=decoded.media_type,
            )
            do_record("study.ingested", study, actor=user, project=project, study=study,
                      after={"file": file_name, "checksum": checksum, "instance_key": instance_key,
                             **({"sender": sender} if sender else {})})
            record = _record(project, user, file_name, data, channel, IngestOutcome.ACCEPTED, started,
                             checksum=checksum, study=study, sender=sender)
            publish(project.pk, "study.ingested", study=study.pk)
            # annotations records the upload's bone age as an import label; the pipeline derives the images on commit
            study_ingested.send(sender=Study, study=study, actor=user, bone_age_months=fields.bone_age_months)
    except IntegrityError:
        # Another upload of the same instance won the race: ours leaves nothing behind (file nor folder).
        delete_quietly([original], folder=True)
        existing = Study.objects.filter(project=project, instance_key=instance_key).first()
        if existing is None:
            raise
        return _duplicate(project, user, existing, checksum, file_name, data, channel, started, sender)
    except BaseException:
        delete_quietly([original], folder=True)
        raise
    return IngestResult(201, IngestOutcome.ACCEPTED, record, study=study)


def _duplicate(project, user, existing: Study, checksum, file_name, data, channel, started, sender="") -> IngestResult:
    if existing.checksum == checksum:
        record = _record(project, user, file_name, data, channel, IngestOutcome.ALREADY_STORED, started,
                         checksum=checksum, study=existing, detail=f"Identical to study {existing.pk}.", sender=sender)
        return IngestResult(200, IngestOutcome.ALREADY_STORED, record, study=existing)
    detail = (f"Study {existing.pk} already has instance {existing.instance_key} with different bytes; "
              "the stored file was kept and this upload was not stored.")
    record = _record(project, user, file_name, data, channel, IngestOutcome.CONFLICT, started,
                     checksum=checksum, study=existing, reason="uid_conflict", detail=detail, sender=sender)
    return IngestResult(409, IngestOutcome.CONFLICT, record, study=existing,
                        error=IngestError(409, "uid_conflict", detail))


def _record(project, user, file_name, data, channel, outcome, started, *, checksum="", study=None, reason="", detail="",
            sender=""):
    return IngestRecord.objects.create(
        project=project, user=user if getattr(user, "is_authenticated", False) else None, sender=sender[:128],
        file_name=file_name, size_bytes=len(data), checksum=checksum, channel=channel, outcome=outcome,
        reason=reason, detail=detail.replace("\0", ""), study=study, seconds=time.perf_counter() - started,
    )



def do_delete_study(study: Study, *, actor) -> list[str]:
    """Delete a study with everything made from it (image copies, masks, labels, predictions, review items, SEG/SR
    objects) and, once that commits, its files. Its audit history stays, with a `study.deleted` event that records
    what it was. Returns the storage names of the files removed."""
    with transaction.atomic():
        study = Study.objects.select_for_update(of=("self",)).select_related("image").get(pk=study.pk)
        project = study.project
        files = _own_files(study)
        for _receiver, names in study_deleting.send(sender=Study, study=study):
            files.extend(names or ())
        do_record("study.deleted", study, actor=actor, project=project, study=study,
                  before={"name": study.display_name, "instance_key": study.instance_key, "checksum": study.checksum,
                          "study_instance_uid": study.study_instance_uid, "sop_instance_uid": study.sop_instance_uid},
                  after=None)
        study_id = study.pk
        study.delete()
        publish(project.pk, "study.deleted", study=study_id)
        unique = sorted(set(files))
        transaction.on_commit(lambda: delete_quietly(unique, folder=True))
    return unique


def do_delete_dicom_study(project: Project, study_instance_uid: str, *, actor) -> int:
    """Delete every film of one DICOM study (each film is a platform study) in one transaction; how many."""
    with transaction.atomic():
        studies = list(Study.objects.filter(project=project, study_instance_uid=study_instance_uid).order_by("id"))
        if not studies or not study_instance_uid:
            raise AppError(404, "not_found", f"No study {study_instance_uid} in this project.")
        for study in studies:
            do_delete_study(study, actor=actor)
    return len(studies)


def _own_files(study: Study) -> list[str]:
    """The original and every copy derived beside it (one folder per study: display, normalized, work copies)."""
    image = getattr(study, "image", None)
    if image is None:
        return []
    names = [name for name in (image.original, image.normalized, image.display, image.work) if name]
    folder = str(PurePosixPath(image.original).parent)
    return names + [stored.name for stored in list_files(folder)]
