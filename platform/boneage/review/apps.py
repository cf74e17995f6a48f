from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "boneage.review"
    label = "review"

    def ready(self) -> None:
        from boneage.core.signals import review_settings_changed, studies_changed, study_changed
        from boneage.review import hooks

        study_changed.connect(hooks.on_study_changed, dispatch_uid="review-rules")
        studies_changed.connect(hooks.on_studies_changed, dispatch_uid="review-rules-batch")
        review_settings_changed.connect(hooks.on_settings_changed, dispatch_uid="review-rules-settings")
