"""Thin API views for a project's members and its editable settings (project admins; outsiders get 404)."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from boneage.studies.access import check_project
from boneage.studies.actions import MembershipError, do_remove_member, do_set_role, do_update_project
from boneage.studies.members import check_role, do_add_member
from boneage.studies.models import Membership
from boneage.studies.serializers import (
    MemberAddedSerializer,
    MemberAddSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
)

ADMIN = ("admin",)
ERROR = OpenApiResponse(description='{"error": code, "detail": text}')


def _member(membership: Membership) -> dict:
    user = membership.user
    return {"user": {"id": user.pk, "username": user.username, "email": user.email},
            "role": membership.role, "created_at": membership.created_at}


class ProjectMembersView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(responses={200: MemberSerializer(many=True), 403: ERROR, 404: ERROR},
                   summary="The project's members and their roles (project admins)")
    def get(self, request, project_id: int):
        project, _ = check_project(request.user, project_id, ADMIN)
        memberships = project.memberships.select_related("user").order_by("user__username")
        return Response(MemberSerializer([_member(m) for m in memberships], many=True).data)

    @extend_schema(request=MemberAddSerializer,
                   responses={201: MemberAddedSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
                   summary="Add an existing account by username or email; site staff may create one (\"create\": true)",
                   description="A new account without a password gets a one-time set-password link "
                               "(`set_password_url`): send it to the person.")
    def post(self, request, project_id: int):
        project, _ = check_project(request.user, project_id, ADMIN)
        added = do_add_member(project, request.data, actor=request.user)
        body = {**_member(added.membership), "created_account": added.created_account,
                "set_password_url": request.build_absolute_uri(added.set_password_url) if added.set_password_url else None}
        return Response(MemberAddedSerializer(body).data, status=status.HTTP_201_CREATED)


class ProjectMemberView(APIView):
    parser_classes = [JSONParser]

    def _membership(self, request, project_id, user_id):
        project, _ = check_project(request.user, project_id, ADMIN)
        user = get_user_model().objects.filter(pk=user_id).first()
        membership = Membership.objects.filter(project=project, user=user).select_related("user").first() if user else None
        if membership is None:
            raise MembershipError(404, "not_a_member", f"User {user_id} is not a member of this project.")
        return project, membership

    @extend_schema(request=MemberRoleSerializer, responses={200: MemberSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
                   summary="Change a member's role (the last admin cannot be demoted: 409)")
    def patch(self, request, project_id: int, user_id: int):
        project, membership = self._membership(request, project_id, user_id)
        membership = do_set_role(project, membership.user, check_role(request.data), actor=request.user)
        return Response(MemberSerializer(_member(membership)).data)

    @extend_schema(responses={204: None, 403: ERROR, 404: ERROR, 409: ERROR},
                   summary="Remove a member (the last admin cannot be removed: 409); their access ends at once")
    def delete(self, request, project_id: int, user_id: int):
        project, membership = self._membership(request, project_id, user_id)
        do_remove_member(project, membership.user, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def update_project(request, project_id: int) -> Response:
    """PATCH /api/projects/{p}/ (wired into ProjectDetailView): name, description, age range, promotion gate."""
    project, role = check_project(request.user, project_id, ADMIN)
    form = ProjectUpdateSerializer(data=request.data, partial=True)
    form.is_valid(raise_exception=True)
    project = do_update_project(project, form.validated_data, actor=request.user)
    project.my_role, project.study_count = role, project.studies.count()
    return Response(ProjectSerializer(project).data)


update_project_schema = extend_schema(request=ProjectUpdateSerializer,
                                      responses={200: ProjectSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
                                      summary="Change the project's name, description, age range or promotion gate (project admins)")
