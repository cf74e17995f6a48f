from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "boneage.modeling"
    label = "modeling"

    def ready(self) -> None:
        from boneage.core.signals import label_saved
        from boneage.modeling.training import auto_retrain_on_label

        label_saved.connect(auto_retrain_on_label, dispatch_uid="modeling-auto-retrain")
