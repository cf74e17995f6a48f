"""Server-rendered pages: the shell that the ES modules in frontend/static fill from the API."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import NotFound, PermissionDenied

from boneage.annotations.models import CHECK_MASK_BELOW
from boneage.modeling.outside import outside_summary
from boneage.modeling.prediction_files import ATTENTION_PARTS
from boneage.review.visibility import blind_view
from boneage.studies.access import (
    CAN_DELETE,
    CAN_INGEST,
    CAN_LABEL,
    CAN_REVIEW,
    CAN_TRAIN,
    check_project,
    check_study,
    visible_projects,
)
from boneage.studies.actions import IngestFields, check_ingest_fields, do_delete_study, do_ingest
from boneage.studies.failures import failure_of
from boneage.studies.frame import Frame, describe, frame_of
from boneage.studies.ingest.errors import IngestError
from boneage.studies.models import Membership

# What each module attends to, as the paper reports it: early modules the whole hand, the Att3_x the carpals.
ATTENTION_MODULES = [
    ("Att1_1", "early, high resolution: the outline of the whole hand"),
    ("Att2_1", "the whole hand: fingers and metacarpals"),
    ("Att2_2", "the whole hand, narrowing to the growth plates"),
    ("Att3_1", "deep: the carpal bones and distal radius"),
    ("Att3_2", "deep: the carpal bones"),
    ("Att3_3", "deepest: the carpal bones, the most age-telling region"),
]


def _project_or_404(user, project_id, roles=None):
    try:
        return check_project(user, project_id, roles) if roles else check_project(user, project_id)
    except NotFound:
        raise Http404("No such project.")


@login_required
def projects_page(request):
    roles = dict(Membership.objects.filter(user=request.user).values_list("project_id", "role"))
    projects = [(project, roles.get(project.pk)) for project in visible_projects(request.user)]
    return render(request, "projects.html", {"projects": projects})


@login_required
def worklist_page(request, project_id: int):
    project, role = _project_or_404(request.user, project_id)
    return render(request, "worklist.html", {"project": project, "role": role, "nav": "worklist",
                                             "outside": outside_summary(project.pk),
                                             "can_ingest": role in CAN_INGEST, "can_label": role in CAN_LABEL,
                                             "can_train": role in CAN_TRAIN,
                                             "labels_hidden": blind_view(project, request.user, role).every_study})


@login_required
def study_page(request, study_id: int):
    try:
        study, role = check_study(request.user, study_id)
    except NotFound:
        raise Http404("No such study.")
    return render(request, "study.html", {"study": study, "project": study.project, "role": role,
                                          "can_label": role in CAN_LABEL, "can_review": role in CAN_REVIEW,
                                          "can_delete": role in CAN_DELETE,
                                          "attention_names": ATTENTION_PARTS, "attention_modules": ATTENTION_MODULES,
                                          "check_mask_below": CHECK_MASK_BELOW,
                                          "frame": describe(study.image), "suggestion": suggested_frame(study),
                                          "two_hands": TWO_HANDS in (study.film_check or {}).get("reason", ""),
                                          "failure": failure_of(study.automask_state, study.automask_error)})


TWO_HANDS = "two hands on one film"  # ml.gate's reason: the labeler picks the hand to read (annotations.frame)


def suggested_frame(study) -> dict | None:
    """The film check's turn or polarity, for a labeler to apply by hand while the film is read as stored (a flagged
    suggestion, or a sure correction someone undid); None when it suggests nothing or the film is already turned."""
    check, now = study.film_check or {}, frame_of(study.image)
    if now.turns or now.inverted or check.get("verdict") not in ("corrected", "flagged"):
        return None
    try:
        frame = Frame(int(check.get("turns") or 0) % 4, bool(check.get("inverted")))
    except (TypeError, ValueError):
        return None
    return None if frame.as_stored else {"turns": frame.turns, "inverted": frame.inverted, "words": frame.words()}


@login_required
def models_page(request, project_id: int):
    project, role = _project_or_404(request.user, project_id)
    return render(request, "models.html", {"project": project, "role": role, "can_train": role in CAN_TRAIN,
                                           "nav": "models", "outside": outside_summary(project.pk)})


@login_required
@require_POST
def upload_form(request, project_id: int):
    """The plain form upload (works without JavaScript): one message per file."""
    try:
        project, _ = _project_or_404(request.user, project_id, CAN_INGEST)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
        return redirect("worklist", project_id=project_id)
    try:
        fields = check_ingest_fields(request.POST)
    except IngestError as error:
        messages.error(request, error.detail)
        fields = None
    for upload in request.FILES.getlist("file") if fields else []:
        result = do_ingest(project, request.user, upload.read(), upload.name, fields or IngestFields(), channel="browser")
        if result.error is not None:
            messages.error(request, f"{upload.name}: {result.error.detail}")
        elif result.study is not None and result.status == 200:
            messages.info(request, f"{upload.name}: already stored as {result.study.display_name}.")
        elif result.study is not None:
            messages.success(request, f"{upload.name}: stored as {result.study.display_name}.")
    return redirect("worklist", project_id=project.pk)


@login_required
@require_POST
def study_delete(request, study_id: int):
    """The study page's delete button (admins; works without JavaScript): back to the worklist with a message."""
    try:
        study, _ = check_study(request.user, study_id, CAN_DELETE)
    except NotFound:
        raise Http404("No such study.")
    except PermissionDenied as exc:
        messages.error(request, str(exc))
        return redirect("study", study_id=study_id)
    name, project_id = study.display_name, study.project_id
    do_delete_study(study, actor=request.user)
    messages.success(request, f"Study {study_id} ({name}) and its files were deleted; its history stays in the project's.")
    return redirect("worklist", project_id=project_id)
