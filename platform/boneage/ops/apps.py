from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Health, metrics and worker identity: the operational surface a cluster scrapes and probes."""

    name = "boneage.ops"
    label = "ops"

    def ready(self) -> None:
        from boneage.ops import worker_signals  # noqa: F401  (connects the Celery signal receivers)
