"""Thin API views for mask revisions and age labels."""
from __future__ import annotations

from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from boneage.annotations.actions import check_mask_png, do_save_label, do_save_mask
from boneage.annotations.frame import check_frame_request, do_set_frame
from boneage.annotations.models import LabelSource, MaskRevision, MaskSource
from boneage.annotations.serializers import (
    AgeLabelSerializer,
    FrameWriteSerializer,
    LabelWriteSerializer,
    MaskRevisionSerializer,
    MaskUploadSerializer,
)
from boneage.api_input import FormParser, JSONParser, MultiPartParser
from boneage.review.visibility import blind_view
from boneage.studies.access import CAN_LABEL, check_project, check_study
from boneage.studies.frame import describe


class StudyMasksView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses=MaskRevisionSerializer(many=True), summary="Mask revisions of a study, newest first")
    def get(self, request, study_id: int):
        study, _ = check_study(request.user, study_id)
        return Response(MaskRevisionSerializer(study.mask_revisions.select_related("author"), many=True).data)

    @extend_schema(request={"multipart/form-data": MaskUploadSerializer}, responses={201: MaskRevisionSerializer},
                   summary="Save an expert mask; a stale base_revision answers 409 unless force")
    def post(self, request, study_id: int):
        study, _ = check_study(request.user, study_id, CAN_LABEL)
        form = MaskUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        mask = check_mask_png(study, form.validated_data["file"].read())
        revision = do_save_mask(
            study, mask, source=MaskSource.EXPERT, author=request.user,
            base_revision_id=form.validated_data.get("base_revision"), note=form.validated_data["note"],
            enforce_base=not form.validated_data["force"],
        )
        return Response(MaskRevisionSerializer(revision).data, status=201)


class MaskPngView(APIView):
    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY}, summary="A mask revision as a 0/255 PNG")
    def get(self, request, revision_id: int):
        revision = MaskRevision.objects.filter(pk=revision_id).select_related("study").first()
        if revision is None:
            raise NotFound("No such mask revision.")
        check_project(request.user, revision.study.project_id, missing="No such mask revision.")
        response = FileResponse(default_storage.open(revision.mask, "rb"), content_type="image/png")
        response["Cache-Control"] = "private, max-age=31536000, immutable"  # revisions never change
        return response


class StudyLabelsView(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(responses=AgeLabelSerializer(many=True), summary="Age labels of a study, newest first",
                   description="In blind review a labeler sees only their own values (`months` null and "
                   "`months_hidden` true for the others); a reviewer or admin too while the study has an open item "
                   "they have not entered their own reading for.")
    def get(self, request, study_id: int):
        study, role = check_study(request.user, study_id)
        view = blind_view(study.project, request.user, role, study=study)
        return Response(AgeLabelSerializer(study.age_labels.select_related("author"), many=True,
                                           context={"blind_view": view}).data)

    @extend_schema(request=LabelWriteSerializer, responses={201: AgeLabelSerializer},
                   summary="Save an expert bone age; a stale base_label answers 409 unless force")
    def post(self, request, study_id: int):
        study, _ = check_study(request.user, study_id, CAN_LABEL)
        form = LabelWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        label = do_save_label(
            study, form.validated_data["months"], author=request.user, source=LabelSource.EXPERT,
            base_label_id=form.validated_data.get("base_label"), note=form.validated_data["note"],
            enforce_base=not form.validated_data["force"],
        )
        return Response(AgeLabelSerializer(label).data, status=201)


class StudyFrameView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="The frame the platform reads the film in")
    def get(self, request, study_id: int):
        study, _ = check_study(request.user, study_id)
        return Response(describe(study.image))

    @extend_schema(request=FrameWriteSerializer, responses={200: OpenApiTypes.OBJECT},
                   summary="Read the film turned and/or inverted, or as stored (labelers)",
                   description="The film check's sure correction is applied at the automask stage; "
                   '{"turns": 0, "inverted": false} undoes it ("read as stored"), and a flagged suggestion can be '
                   "applied by hand. The study's images and automatic mask are made again from the untouched "
                   "original (a person's mask is turned with the film), its readings are made again, and the change "
                   "is in the audit history. 409 film_not_ready while the film is still processed.")
    def post(self, request, study_id: int):
        study, _ = check_study(request.user, study_id, CAN_LABEL)
        frame = check_frame_request(request.data)
        image = do_set_frame(study, frame, actor=request.user)
        return Response(describe(image))
