from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "boneage.annotations"
    label = "annotations"
