"""/dicomweb/projects/{p}/…: the DICOMweb routes (PS3.18 resource paths)."""
from django.urls import path

from boneage.dicomweb import views

_study = "studies/<str:study_uid>"
_series = f"{_study}/series/<str:series_uid>"
_instance = f"{_series}/instances/<str:sop_uid>"

urlpatterns = [
    path("studies", views.StudiesView.as_view(), name="dicomweb-studies"),
    path("series", views.SeriesSearchView.as_view(), name="dicomweb-all-series"),
    path("instances", views.InstancesSearchView.as_view(), name="dicomweb-all-instances"),
    path(_study, views.StudyView.as_view(), name="dicomweb-study"),
    path(f"{_study}/metadata", views.MetadataView.as_view(), name="dicomweb-study-metadata"),
    path(f"{_study}/series", views.SeriesSearchView.as_view(), name="dicomweb-series"),
    path(f"{_study}/instances", views.InstancesSearchView.as_view(), name="dicomweb-study-instances"),
    path(_series, views.SeriesView.as_view(), name="dicomweb-one-series"),
    path(f"{_series}/metadata", views.MetadataView.as_view(), name="dicomweb-series-metadata"),
    path(f"{_series}/instances", views.InstancesSearchView.as_view(), name="dicomweb-instances"),
    path(_instance, views.InstanceView.as_view(), name="dicomweb-instance"),
    path(f"{_instance}/metadata", views.MetadataView.as_view(), name="dicomweb-instance-metadata"),
    path(f"{_instance}/frames/<str:frames>", views.FramesView.as_view(), name="dicomweb-frames"),
    path(f"{_instance}/bulkdata/<str:tag>", views.BulkDataView.as_view(), name="dicomweb-bulkdata"),
    path(f"{_instance}/rendered", views.RenderedView.as_view(), name="dicomweb-rendered"),
    path(f"{_instance}/frames/<str:frame>/rendered", views.RenderedView.as_view(), name="dicomweb-frame-rendered"),
]
