from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "boneage.web"
    label = "web"
