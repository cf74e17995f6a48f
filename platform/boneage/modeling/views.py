"""Thin API views: authorize (outsiders 404), parse, call one action, answer JSON."""
from __future__ import annotations

from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from boneage.api_input import FormParser, JSONParser
from boneage.modeling.actions import (
    check_latest_prediction,
    check_prediction_file,
    check_strategy,
    do_next_case,
    do_promote,
    do_rerun_reprediction,
)
from boneage.modeling.defaults import do_update_training_defaults, training_defaults
from boneage.modeling.models import ModelStatus, ModelVersion, TrainingRun
from boneage.modeling.serializers import (
    LatestPredictionSerializer,
    ModelVersionSerializer,
    NextCaseSerializer,
    TrainingDefaultsSerializer,
    TrainingRunCreateSerializer,
    TrainingRunSerializer,
)
from boneage.modeling.training import check_run_request, do_cancel_run, do_start_training
from boneage.review.visibility import model_values_hidden
from boneage.studies.access import ANY_ROLE, CAN_LABEL, CAN_TRAIN, check_project, check_study
from ml.active import NEXT_CASE_STRATEGIES

ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}}


def _run_for(user, run_id, roles=None) -> TrainingRun:
    run = TrainingRun.objects.filter(pk=run_id).select_related("init_from", "result", "created_by").first() \
        if str(run_id).isdigit() else None
    if run is None:
        raise NotFound("No such training run.")
    check_project(user, run.project_id, roles or ANY_ROLE, missing="No such training run.")
    return run


class LatestPredictionView(APIView):
    @extend_schema(responses={200: LatestPredictionSerializer, 404: ERROR},
                   summary="The active model's prediction of a study (404 no_model / prediction_pending)")
    def get(self, request, study_id: int):
        study, role = check_study(request.user, study_id)
        prediction = check_latest_prediction(study)
        data = LatestPredictionSerializer(prediction).data

        hidden = model_values_hidden(study.project, study.pk, request.user, role)
        return Response({**data, **({"age_months": None, "std_months": None, "interval_months": None} if hidden else {}),
                         "values_hidden": hidden})


class PredictionFileView(APIView):
    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY, 404: ERROR},
                   summary="A prediction PNG: the hand mask or one of the six attention maps (Att1_1 … Att3_3)")
    def get(self, request, study_id: int, version_id: int, part: str):
        study, _ = check_study(request.user, study_id)
        name = check_prediction_file(study, version_id, part)
        response = FileResponse(default_storage.open(name, "rb"), content_type="image/png")
        response["Cache-Control"] = "private, max-age=3600"
        return response


class ProjectTrainingRunsView(GenericAPIView):
    parser_classes = [JSONParser, FormParser]
    serializer_class = TrainingRunSerializer

    @extend_schema(responses=TrainingRunSerializer(many=True), summary="Training runs of a project, newest first")
    def get(self, request, project_id: int):
        project, _ = check_project(request.user, project_id)
        runs = project.training_runs.select_related("init_from", "result", "created_by")
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(TrainingRunSerializer(page, many=True).data)

    @extend_schema(request=TrainingRunCreateSerializer, responses={201: TrainingRunSerializer, 400: ERROR, 409: ERROR},
                   summary="Start a training run (trainer or admin); one at a time per project")
    def post(self, request, project_id: int):
        project, _ = check_project(request.user, project_id, CAN_TRAIN)
        config = check_run_request(project, dict(request.data.items()) if hasattr(request.data, "items") else request.data)
        run = do_start_training(project, actor=request.user, config=config)
        return Response(TrainingRunSerializer(run).data, status=201)


class ProjectTrainingDefaultsView(APIView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(responses={200: TrainingDefaultsSerializer, 404: ERROR},
                   summary="What the project's training runs start with unless a run's request says otherwise")
    def get(self, request, project_id: int):
        project, _ = check_project(request.user, project_id)
        return Response(TrainingDefaultsSerializer(training_defaults(project)).data)

    @extend_schema(request={"application/json": {"type": "object", "additionalProperties": True}},
                   responses={200: TrainingDefaultsSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
                   summary="Change the project's training defaults (admin); null puts a field back to the default")
    def patch(self, request, project_id: int):
        project, _ = check_project(request.user, project_id, ("admin",))
        patch = dict(request.data.items()) if hasattr(request.data, "items") else request.data
        return Response(TrainingDefaultsSerializer(do_update_training_defaults(project, patch, actor=request.user)).data)


class TrainingRunDetailView(APIView):
    @extend_schema(responses={200: TrainingRunSerializer, 404: ERROR}, summary="One training run with its curve")
    def get(self, request, run_id: int):
        run = _run_for(request.user, run_id)
        return Response(TrainingRunSerializer(run).data)


class TrainingRunCancelView(APIView):
    @extend_schema(request=None, responses={200: TrainingRunSerializer, 409: ERROR},
                   summary="Cancel a run: it stops within one training step and registers nothing")
    def post(self, request, run_id: int):
        run = _run_for(request.user, run_id, CAN_TRAIN)
        run = do_cancel_run(run, actor=request.user)
        return Response(TrainingRunSerializer(run).data)


class ProjectModelsView(GenericAPIView):
    serializer_class = ModelVersionSerializer

    @extend_schema(responses=ModelVersionSerializer(many=True), summary="The model registry of a project, newest first")
    def get(self, request, project_id: int):
        project, _ = check_project(request.user, project_id)
        versions = project.model_versions.exclude(status=ModelStatus.AUDIT)  # fold models: see their audit run
        page = self.paginate_queryset(versions.select_related("parent"))
        return self.get_paginated_response(ModelVersionSerializer(page, many=True).data)


class PromoteModelView(APIView):
    @extend_schema(request=None, responses={200: ModelVersionSerializer, 409: ERROR},
                   summary="Make this version active (promote a candidate or roll back to an older one)")
    def post(self, request, version_id: int):
        version = ModelVersion.objects.filter(pk=version_id).first() if str(version_id).isdigit() else None
        if version is None:
            raise NotFound("No such model version.")
        check_project(request.user, version.project_id, CAN_TRAIN, missing="No such model version.")
        version = do_promote(version, actor=request.user, reason="manual")
        return Response(ModelVersionSerializer(version).data)


class RepredictAgainView(APIView):
    @extend_schema(request=None, responses={200: ModelVersionSerializer, 409: ERROR},
                   summary="Run the active version's re-prediction again after its worker died (it stopped 'failed')")
    def post(self, request, version_id: int):
        version = ModelVersion.objects.filter(pk=version_id).first()
        if version is None:
            raise NotFound("No such model version.")
        check_project(request.user, version.project_id, CAN_TRAIN, missing="No such model version.")
        version = do_rerun_reprediction(version, actor=request.user)
        return Response(ModelVersionSerializer(version).data)


class NextCaseView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("strategy", OpenApiTypes.STR, enum=list(NEXT_CASE_STRATEGIES),
                                     description="left out: the project's next_case_strategy setting (default "
                                     "coreset)"),
                    OpenApiParameter("skip", OpenApiTypes.STR, description="comma-separated study ids just passed over: "
                                     "served again only when nothing else waits")],
        responses={200: NextCaseSerializer, 400: ERROR, 404: ERROR},
        summary="The next study to label: least recently served of the top-k unlabelled by the strategy's score",
    )
    def get(self, request, project_id: int):
        project, _ = check_project(request.user, project_id, CAN_LABEL)
        skip = {int(part) for part in request.query_params.get("skip", "").split(",") if part.strip().isdigit()}
        case = do_next_case(project, check_strategy(request.query_params.get("strategy"), project), skip=skip)
        return Response(NextCaseSerializer({
            "study": case.study.pk, "study_url": f"/studies/{case.study.pk}/", "strategy": case.strategy,
            "score": case.score, "rank": case.rank, "model_version": case.model_version.pk if case.model_version else None,
            "reason": case.reason}).data)
