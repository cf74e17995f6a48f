from django.apps import AppConfig


class DicomwebConfig(AppConfig):
    name = "boneage.dicomweb"
    label = "dicomweb"
