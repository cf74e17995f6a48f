"""URLs of the modeling app: `api` is mounted under /api/, `pages` at the site root."""
from django.urls import path

from boneage.modeling import views

api: list = [
    path("studies/<int:study_id>/predictions/latest/", views.LatestPredictionView.as_view(), name="api-prediction-latest"),
    path("studies/<int:study_id>/predictions/<int:version_id>/<str:part>.png", views.PredictionFileView.as_view(),
         name="api-prediction-file"),
    path("projects/<int:project_id>/training-runs/", views.ProjectTrainingRunsView.as_view(), name="api-training-runs"),
    path("projects/<int:project_id>/training-defaults/", views.ProjectTrainingDefaultsView.as_view(),
         name="api-training-defaults"),
    path("training-runs/<int:run_id>/", views.TrainingRunDetailView.as_view(), name="api-training-run"),
    path("training-runs/<int:run_id>/cancel/", views.TrainingRunCancelView.as_view(), name="api-training-run-cancel"),
    path("projects/<int:project_id>/models/", views.ProjectModelsView.as_view(), name="api-models"),
    path("models/<int:version_id>/promote/", views.PromoteModelView.as_view(), name="api-model-promote"),
    path("models/<int:version_id>/repredict/", views.RepredictAgainView.as_view(), name="api-model-repredict"),
    path("projects/<int:project_id>/next-case/", views.NextCaseView.as_view(), name="api-next-case"),
]
pages: list = []
