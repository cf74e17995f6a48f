from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from boneage.annotations import views as annotations
from boneage.api import TokenView
from boneage.audit import views as audit
from boneage.modeling import urls as modeling_urls
from boneage.review import urls as review_urls
from boneage.studies import views as studies

api = [
    path("auth/token/", TokenView.as_view(), name="api-token"),
    path("projects/", studies.ProjectListView.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", studies.ProjectDetailView.as_view(), name="api-project"),
    path("projects/<int:project_id>/studies/", studies.ProjectStudiesView.as_view(), name="api-project-studies"),
    path("projects/<int:project_id>/ingest-records/", studies.IngestRecordsView.as_view(), name="api-ingest-records"),
    path("studies/<int:study_id>/", studies.StudyDetailView.as_view(), name="api-study"),
    path("studies/<int:study_id>/image/", studies.StudyImageView.as_view(), name="api-study-image"),
    path("studies/<int:study_id>/masks/", annotations.StudyMasksView.as_view(), name="api-study-masks"),
    path("studies/<int:study_id>/labels/", annotations.StudyLabelsView.as_view(), name="api-study-labels"),
    path("studies/<int:study_id>/history/", audit.StudyHistoryView.as_view(), name="api-study-history"),
    path("masks/<int:revision_id>/png/", annotations.MaskPngView.as_view(), name="api-mask-png"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("api/", include(api)),
    path("api/", include(modeling_urls.api)),
    path("api/", include(review_urls.api)),
    path("", include(modeling_urls.pages)),
    path("", include(review_urls.pages)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("boneage.web.urls")),
]

# JSON under /api/, Django's pages elsewhere (with DEBUG on, boneage.api.JsonApiErrorsMiddleware does the same).
handler404 = "boneage.api.handler404"
handler500 = "boneage.api.handler500"
