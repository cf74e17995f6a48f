from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "boneage.audit"
    label = "audit"
    verbose_name = "Audit history"
