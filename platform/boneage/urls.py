from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from boneage import oidc
from boneage.annotations import views as annotations
from boneage.api import TokenView
from boneage.audit import views as audit
from boneage.dicomweb import dataset_views
from boneage.dicomweb import export_views as dicom_exports
from boneage.modeling import urls as modeling_urls
from boneage.ops import views as ops
from boneage.review import urls as review_urls
from boneage.studies import member_views
from boneage.studies import views as studies

api = [
    path("auth/token/", TokenView.as_view(), name="api-token"),
    path("projects/", studies.ProjectListView.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", studies.ProjectDetailView.as_view(), name="api-project"),
    path("projects/<int:project_id>/studies/", studies.ProjectStudiesView.as_view(), name="api-project-studies"),
    path("projects/<int:project_id>/members/", member_views.ProjectMembersView.as_view(), name="api-project-members"),
    path("projects/<int:project_id>/members/<int:user_id>/", member_views.ProjectMemberView.as_view(),
         name="api-project-member"),
    path("projects/<int:project_id>/ingest-records/", studies.IngestRecordsView.as_view(), name="api-ingest-records"),
    path("studies/<int:study_id>/", studies.StudyDetailView.as_view(), name="api-study"),
    path("studies/<int:study_id>/image/", studies.StudyImageView.as_view(), name="api-study-image"),
    path("studies/<int:study_id>/masks/", annotations.StudyMasksView.as_view(), name="api-study-masks"),
    path("studies/<int:study_id>/frame/", annotations.StudyFrameView.as_view(), name="api-study-frame"),
    path("studies/<int:study_id>/labels/", annotations.StudyLabelsView.as_view(), name="api-study-labels"),
    path("studies/<int:study_id>/history/", audit.StudyHistoryView.as_view(), name="api-study-history"),
    path("projects/<int:project_id>/export/", dataset_views.ProjectExportView.as_view(), name="api-project-export"),
    path("studies/<int:study_id>/export/seg/", dicom_exports.StudySegExportView.as_view(), name="api-study-export-seg"),
    path("studies/<int:study_id>/export/sr/", dicom_exports.StudySrExportView.as_view(), name="api-study-export-sr"),
    path("masks/<int:revision_id>/png/", annotations.MaskPngView.as_view(), name="api-mask-png"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("healthz", ops.healthz, name="healthz"),
    path("livez", ops.livez, name="livez"),
    path("metrics", ops.metrics, name="metrics"),
    path("api/", include(api)),
    path("api/", include(modeling_urls.api)),
    path("api/", include(review_urls.api)),
    path("", include(modeling_urls.pages)),
    path("", include(review_urls.pages)),
    path("accounts/login/", oidc.LoginPage.as_view(), name="login"),
    path("oidc/authenticate/", oidc.OidcLoginStart.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", oidc.OidcCallback.as_view(), name="oidc_authentication_callback"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(success_url="/accounts/password/done/"),
         name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("accounts/reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(success_url="/accounts/reset/done/"),
         name="password_reset_confirm"),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("admin/", admin.site.urls),
    path("dicomweb/projects/<int:project_id>/", include("boneage.dicomweb.urls")),
    path("", include("boneage.web.urls")),
]

# JSON under /api/, Django's pages elsewhere (with DEBUG on, boneage.api.JsonApiErrorsMiddleware does the same).
handler404 = "boneage.api.handler404"
handler500 = "boneage.api.handler500"
