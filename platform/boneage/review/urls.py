"""URLs of the review app: `api` is mounted under /api/, `pages` at the site root."""
from django.urls import path

from boneage.review import views

api: list = [
    path("projects/<int:project_id>/review-items/", views.ReviewItemsView.as_view(), name="api-review-items"),
    path("projects/<int:project_id>/review-settings/", views.ReviewSettingsView.as_view(), name="api-review-settings"),
    path("projects/<int:project_id>/agreement/", views.AgreementView.as_view(), name="api-agreement"),
    path("projects/<int:project_id>/history/", views.ProjectHistoryView.as_view(), name="api-project-history"),
    path("review-items/<int:item_id>/", views.ReviewItemDetailView.as_view(), name="api-review-item"),
    path("review-items/<int:item_id>/claim/", views.ReviewItemClaimView.as_view(), name="api-review-item-claim"),
    path("review-items/<int:item_id>/release/", views.ReviewItemReleaseView.as_view(), name="api-review-item-release"),
    path("review-items/<int:item_id>/blind-read/", views.ReviewItemBlindReadView.as_view(), name="api-review-item-blind-read"),
    path("review-items/<int:item_id>/resolve/", views.ReviewItemResolveView.as_view(), name="api-review-item-resolve"),
]
pages: list = [
    path("projects/<int:project_id>/review/", views.review_page, name="review"),
]
