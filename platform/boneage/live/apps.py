from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "boneage.live"
    label = "live"
