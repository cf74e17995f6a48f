from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "boneage.modeling"
    label = "modeling"

    def ready(self) -> None:
        from boneage.core.signals import label_saved, study_deleting, study_reframed
        from boneage.modeling.prediction_files import (
            forget_readings_of_reframed_study,
            prediction_files_of_deleted_study,
        )
        from boneage.modeling.training import auto_retrain_on_label

        label_saved.connect(auto_retrain_on_label, dispatch_uid="modeling-auto-retrain")
        study_deleting.connect(prediction_files_of_deleted_study, dispatch_uid="modeling-deleted-study-files")
        study_reframed.connect(forget_readings_of_reframed_study, dispatch_uid="modeling-reframed-study")
