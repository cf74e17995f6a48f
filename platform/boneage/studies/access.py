"""Who may see and do what in a project: the membership queries behind boneage.core.access's roles.
Outsiders get 404 (not 403): they must not learn it exists."""
from __future__ import annotations

from collections.abc import Iterable

from rest_framework.exceptions import NotFound, PermissionDenied

from boneage.core.access import ANY_ROLE, CAN_DELETE, CAN_INGEST, CAN_LABEL, CAN_REVIEW, CAN_TRAIN
from boneage.studies.models import Membership, Project, Study

__all__ = ["ANY_ROLE", "CAN_DELETE", "CAN_INGEST", "CAN_LABEL", "CAN_REVIEW", "CAN_TRAIN", "check_project", "check_study",
           "membership_role", "visible_projects"]


def membership_role(user, project_id: int) -> str | None:
    if not user or not user.is_authenticated:
        return None
    return Membership.objects.filter(project_id=project_id, user=user).values_list("role", flat=True).first()


def visible_projects(user):
    return Project.objects.filter(memberships__user=user).distinct()


def check_project(user, project_id, roles: Iterable[str] = ANY_ROLE, *, missing: str = "No such project.") -> tuple[Project, str]:
    """The project and the user's role, or NotFound for outsiders and PermissionDenied for the wrong role.

    `missing` is the 404 text: an object looked up by its own id passes its own ("No such study."), so an
    outsider gets the same answer for someone else's id as for an id that does not exist.
    """
    try:
        project_id = int(project_id)
    except (TypeError, ValueError):
        raise NotFound(missing)
    role = membership_role(user, project_id)
    if role is None:
        raise NotFound(missing)
    if role not in tuple(roles):
        raise PermissionDenied(f"Your role in this project ({role}) cannot do this; it needs: {', '.join(roles)}.")
    return Project.objects.get(pk=project_id), role


def check_study(user, study_id, roles: Iterable[str] = ANY_ROLE) -> tuple[Study, str]:
    study = Study.objects.filter(pk=study_id).select_related("project").first() if str(study_id).isdigit() else None
    if study is None:
        raise NotFound("No such study.")
    _, role = check_project(user, study.project_id, roles, missing="No such study.")
    return study, role
