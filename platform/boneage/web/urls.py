from django.urls import path
from django.views.generic import RedirectView

from boneage.web import admin_views, api, views

urlpatterns = [
    path("", RedirectView.as_view(url="/projects/", permanent=False)),
    path("favicon.ico", RedirectView.as_view(url="/static/favicon.svg", permanent=True)),  # browsers ask regardless
    path("projects/", views.projects_page, name="projects"),
    path("projects/new/", admin_views.project_create, name="project-create"),
    path("projects/<int:project_id>/", views.worklist_page, name="worklist"),
    path("projects/<int:project_id>/members/", admin_views.members_page, name="members"),
    path("projects/<int:project_id>/settings/", admin_views.settings_page, name="project-settings"),
    path("projects/<int:project_id>/upload/", views.upload_form, name="upload"),
    path("projects/<int:project_id>/models/", views.models_page, name="models"),
    path("studies/<int:study_id>/", views.study_page, name="study"),
    path("studies/<int:study_id>/delete/", views.study_delete, name="study-delete"),
    path("api/projects/<int:project_id>/worklist/", api.WorklistView.as_view(), name="api-worklist"),
    path("api/worklist-rows/<int:study_id>/", api.WorklistRowView.as_view(), name="api-worklist-row"),
    path("api/studies/<int:study_id>/prediction-state/", api.PredictionStateView.as_view(), name="api-prediction-state"),
    path("api/studies/<int:study_id>/thumbnail/", api.ThumbnailView.as_view(), name="api-study-thumbnail"),
]
