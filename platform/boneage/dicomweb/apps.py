from django.apps import AppConfig


class DicomwebConfig(AppConfig):
    name = "boneage.dicomweb"
    label = "dicomweb"

    def ready(self) -> None:
        from boneage.core.signals import study_deleting
        from boneage.dicomweb.exports import derived_files_of_deleted_study

        study_deleting.connect(derived_files_of_deleted_study, dispatch_uid="dicomweb-deleted-study-files")
