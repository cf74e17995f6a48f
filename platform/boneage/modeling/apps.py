from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "boneage.modeling"
    label = "modeling"
