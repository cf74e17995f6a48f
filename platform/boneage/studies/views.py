"""Thin API views for projects and studies: authorize, parse, call one action, answer."""
from __future__ import annotations

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError
from django.db.models import Count, Exists, OuterRef
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from boneage.annotations.models import AgeLabel
from boneage.api import error_response
from boneage.api_input import FormParser, MultiPartParser
from boneage.review.visibility import blind_view
from boneage.studies.access import CAN_DELETE, CAN_INGEST, check_project, check_study, visible_projects
from boneage.studies.actions import check_ingest_fields, do_create_project, do_delete_study, do_ingest, do_reject
from boneage.studies.derive import ensure_derived_images
from boneage.studies.ingest.errors import IngestError
from boneage.studies.member_views import update_project, update_project_schema
from boneage.studies.models import IngestRecord, Membership
from boneage.studies.serializers import (
    IngestRecordSerializer,
    ProjectCreateSerializer,
    ProjectSerializer,
    StudySerializer,
)

STUDY_ORDERINGS = {"created_at", "-created_at", "chronological_age_months", "-chronological_age_months", "id", "-id"}


def _with_my_role(projects, user):
    roles = dict(Membership.objects.filter(user=user).values_list("project_id", "role"))
    for project in projects:
        project.my_role = roles.get(project.pk)
    return projects


class ProjectListView(GenericAPIView):
    serializer_class = ProjectSerializer

    @extend_schema(responses=ProjectSerializer(many=True), summary="Projects you are a member of")
    def get(self, request):
        projects = visible_projects(request.user).annotate(study_count=Count("studies", distinct=True))
        page = self.paginate_queryset(projects)
        return self.get_paginated_response(ProjectSerializer(_with_my_role(page, request.user), many=True).data)

    @extend_schema(request=ProjectCreateSerializer, responses={201: ProjectSerializer}, summary="Create a project (you become its admin)")
    def post(self, request):
        form = ProjectCreateSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        try:
            project = do_create_project(request.user, **form.validated_data)
        except IntegrityError:  # the same owner created the same name a moment ago
            return error_response(400, "invalid", "name: You already have a project with this name.")
        project.my_role, project.study_count = "admin", 0
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailView(APIView):
    @extend_schema(responses=ProjectSerializer, summary="One project (404 for non-members)")
    def get(self, request, project_id: int):
        project, role = check_project(request.user, project_id)
        project.my_role, project.study_count = role, project.studies.count()
        return Response(ProjectSerializer(project).data)

    @update_project_schema
    def patch(self, request, project_id: int):
        return update_project(request, project_id)


upload_request = inline_serializer(
    "StudyUpload",
    {
        "file": serializers.FileField(),
        "sex": serializers.ChoiceField(choices=["M", "F"], required=False),
        "chronological_age_months": serializers.FloatField(required=False),
        "bone_age_months": serializers.FloatField(required=False, help_text="an imported label"),
        "external_id": serializers.CharField(required=False),
    },
)


class ProjectStudiesView(GenericAPIView):
    parser_classes = [MultiPartParser, FormParser]
    serializer_class = StudySerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("state", OpenApiTypes.STR, enum=["labeled", "unlabeled"]),
            OpenApiParameter("ordering", OpenApiTypes.STR, enum=sorted(STUDY_ORDERINGS)),
            OpenApiParameter("sex", OpenApiTypes.STR, enum=["M", "F"]),
        ],
        responses=StudySerializer(many=True),
        summary="Studies of a project",
    )
    def get(self, request, project_id: int):
        project, role = check_project(request.user, project_id)
        studies = project.studies.select_related("image").prefetch_related("age_labels")
        labeled = Exists(AgeLabel.objects.filter(study=OuterRef("pk")))
        state = request.query_params.get("state")
        if state == "labeled":
            studies = studies.filter(labeled)
        elif state == "unlabeled":
            studies = studies.exclude(labeled)
        elif state:
            return error_response(400, "invalid_filter", "state must be labeled or unlabeled.")
        if request.query_params.get("sex") in ("M", "F"):
            studies = studies.filter(sex=request.query_params["sex"])
        ordering = request.query_params.get("ordering") or "-created_at"
        if ordering not in STUDY_ORDERINGS:
            return error_response(400, "invalid_ordering", f"ordering must be one of {', '.join(sorted(STUDY_ORDERINGS))}.")
        page = self.paginate_queryset(studies.order_by(ordering, "-id"))
        view = blind_view(project, request.user, role)
        return self.get_paginated_response(StudySerializer(page, many=True, context={"blind_view": view}).data)

    @extend_schema(
        request={"multipart/form-data": upload_request},
        responses={201: StudySerializer, 200: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT,
                   413: OpenApiTypes.OBJECT, 415: OpenApiTypes.OBJECT, 422: OpenApiTypes.OBJECT},
        summary="Upload one DICOM, PNG or JPEG study",
        description="201 new study · 200 {already_stored: true} for identical bytes · 409 same UID with other bytes · "
        "400/413/415/422 with the reason. Form fields win over DICOM tags.",
    )
    def post(self, request, project_id: int):
        project, _ = check_project(request.user, project_id, CAN_INGEST)
        files = request.FILES.getlist("file")  # too many files: 413 from boneage.api's handler
        if len(files) != 1:
            return error_response(400, "one_file_expected", f"Send exactly one file in the 'file' field ({len(files)} received).")
        upload = files[0]
        fields = check_ingest_fields(request.data)
        if upload.size > settings.UPLOAD_MAX_BYTES:  # refuse before reading it into memory
            error = IngestError(413, "file_too_large",
                                f"The file is {upload.size:,} bytes; the limit is {settings.UPLOAD_MAX_BYTES:,} bytes.")
            do_reject(project, request.user, upload.name, upload.size, error, channel="api")
            raise error
        data = upload.read()
        result = do_ingest(project, request.user, data, upload.name, fields, channel="api")
        if result.error is not None:
            extra = {"study": result.study.pk} if result.study else {}
            return error_response(result.status, result.error.code, result.error.detail, **extra)
        body = StudySerializer(result.study).data
        if result.status == 200:
            body = {"already_stored": True, "study": body}
        return Response(body, status=result.status)


class StudyDetailView(APIView):
    @extend_schema(responses=StudySerializer, summary="One study")
    def get(self, request, study_id: int):
        study, role = check_study(request.user, study_id)
        view = blind_view(study.project, request.user, role, study=study)
        return Response(StudySerializer(study, context={"blind_view": view}).data)

    @extend_schema(responses={204: None}, summary="Delete the study, its files and everything made from it (admins)",
                   description="Its audit history stays, ending with `study.deleted`. Other members: 403; outsiders: 404.")
    def delete(self, request, study_id: int):
        study, _ = check_study(request.user, study_id, CAN_DELETE)
        do_delete_study(study, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class StudyImageView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("size", OpenApiTypes.STR, enum=["display", "full"])],
        responses={(200, "image/png"): OpenApiTypes.BINARY},
        summary="The study as a PNG, bright bone on dark background (display size, or full 16-bit)",
    )
    def get(self, request, study_id: int):
        study, _ = check_study(request.user, study_id)
        try:
            image = ensure_derived_images(study.image, work_copy=False)
        except IngestError as error:
            return error_response(422, "image_undecodable", f"The stored original cannot be decoded: {error.detail}")
        name = image.normalized if request.query_params.get("size") == "full" else image.display
        response = FileResponse(default_storage.open(name, "rb"), content_type="image/png")
        response["Cache-Control"] = "private, max-age=86400"
        return response


class IngestRecordsView(GenericAPIView):
    serializer_class = IngestRecordSerializer

    @extend_schema(responses=IngestRecordSerializer(many=True), summary="Every upload of the project with its outcome")
    def get(self, request, project_id: int):
        project, _ = check_project(request.user, project_id)
        page = self.paginate_queryset(IngestRecord.objects.filter(project=project))
        return self.get_paginated_response(IngestRecordSerializer(page, many=True).data)
