from django.apps import AppConfig


class StudiesConfig(AppConfig):
    name = "boneage.studies"
    label = "studies"
