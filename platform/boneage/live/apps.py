from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "boneage.live"
    label = "live"

    def ready(self) -> None:
        from boneage.live import signals  # noqa: F401  (connects the membership receivers)
