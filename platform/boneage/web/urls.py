from django.urls import path
from django.views.generic import RedirectView

from boneage.web import views

urlpatterns = [
    path("", RedirectView.as_view(url="/projects/", permanent=False)),
    path("projects/", views.projects_page, name="projects"),
    path("projects/<int:project_id>/", views.worklist_page, name="worklist"),
    path("projects/<int:project_id>/upload/", views.upload_form, name="upload"),
    path("studies/<int:study_id>/", views.study_page, name="study"),
]
