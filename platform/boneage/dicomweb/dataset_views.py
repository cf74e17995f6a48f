"""GET /api/projects/{p}/export/?format=rsna[&deidentify=1]: the project's labeled studies as a streamed zip."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.views import APIView

from boneage.api import error_response
from boneage.dicomweb.dataset import labeled_studies, rsna_zip
from boneage.dicomweb.streaming import streaming_response
from boneage.dicomweb.views import AnyAccept
from boneage.studies.access import CAN_TRAIN, check_project


class ProjectExportView(APIView):
    content_negotiation_class = AnyAccept  # `?format=rsna` is ours, not DRF's renderer override
    @extend_schema(
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=["rsna"]),
                    OpenApiParameter("deidentify", OpenApiTypes.BOOL)],
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 400: OpenApiTypes.OBJECT},
        summary="The labeled studies as an RSNA-style zip (labels.csv, images/, masks/); trainers and admins",
    )
    def get(self, request, project_id: int):
        project, _ = check_project(request.user, project_id, CAN_TRAIN)
        if request.query_params.get("format", "rsna") != "rsna":
            return error_response(400, "invalid_format", "The only export format is rsna.")
        deidentify = request.query_params.get("deidentify", "") in ("1", "true", "yes") or project.deidentify
        response = streaming_response(request, rsna_zip(project, deidentify=deidentify), "application/zip")
        response["Content-Disposition"] = f'attachment; filename="project-{project.pk}-rsna.zip"'
        response["X-Export-Studies"] = str(len(labeled_studies(project)))  # lets a client show progress
        return response
