from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "boneage.modeling"
    label = "modeling"

    def ready(self) -> None:
        from django.db import transaction
        from django.db.models.signals import post_save

        from boneage.annotations.models import AgeLabel

        def label_saved(sender, instance, created, **kwargs):
            """After N new expert labels (project setting auto_retrain_after_labels) a run starts by itself."""
            if not created or instance.source != "expert":
                return
            from boneage.modeling.training import maybe_auto_retrain

            project_id = instance.study.project_id
            transaction.on_commit(lambda: maybe_auto_retrain(project_id))

        post_save.connect(label_saved, sender=AgeLabel, dispatch_uid="modeling-auto-retrain", weak=False)
