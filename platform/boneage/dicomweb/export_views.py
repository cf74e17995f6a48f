"""GET /api/studies/{id}/export/seg/ and /export/sr/: the study's DICOM SEG / SR as application/dicom."""
from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from boneage.api import error_response
from boneage.dicomweb.exports import export_seg, export_sr, read_bytes
from boneage.review.visibility import blind_view
from boneage.studies.access import check_study


class _ExportView(APIView):
    kind = ""

    def get(self, request, study_id: int):
        study, role = check_study(request.user, study_id)
        if self.kind == "sr" and blind_view(study.project, request.user, role, study=study).hides(study.pk):
            return error_response(403, "blind_review", "This study is in blind review: its bone-age report is hidden from you.")
        obj = export_seg(study) if self.kind == "seg" else export_sr(study)
        response = HttpResponse(read_bytes(obj), content_type="application/dicom")
        response["Content-Disposition"] = f'attachment; filename="study-{study.pk}-{self.kind}.dcm"'
        return response


class StudySegExportView(_ExportView):
    kind = "seg"

    @extend_schema(responses={(200, "application/dicom"): OpenApiTypes.BINARY, 409: OpenApiTypes.OBJECT},
                   summary="The study's current hand mask as a binary DICOM SEG (409 for PNG studies or no mask)")
    def get(self, request, study_id: int):
        return super().get(request, study_id)


class StudySrExportView(_ExportView):
    kind = "sr"

    @extend_schema(responses={(200, "application/dicom"): OpenApiTypes.BINARY, 409: OpenApiTypes.OBJECT},
                   summary="A TID 1500 bone-age report (LOINC 85151-9): the label with its reader and the model's estimate")
    def get(self, request, study_id: int):
        return super().get(request, study_id)
