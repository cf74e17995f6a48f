from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "boneage.annotations"
    label = "annotations"

    def ready(self) -> None:
        from boneage.annotations.actions import import_label_on_ingest, mask_files_of_deleted_study
        from boneage.core.signals import study_deleting, study_ingested

        study_ingested.connect(import_label_on_ingest, dispatch_uid="annotations-import-label")
        study_deleting.connect(mask_files_of_deleted_study, dispatch_uid="annotations-deleted-study-files")
