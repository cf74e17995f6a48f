from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand

from boneage.annotations.models import MaskRevision
from boneage.core.storage import list_files
from boneage.dicomweb.models import DerivedObject
from boneage.studies.models import Image, Study


class Command(BaseCommand):
    help = ("Delete study files that no row references (left by a process killed between writing a file and "
            "committing its row), and prediction files of studies that no longer exist (a prediction that finished "
            "after its study was deleted), on the local media folder or the S3 bucket alike. Files younger than "
            "--min-age-seconds are left alone: their upload may be in flight.")

    def add_arguments(self, parser):
        parser.add_argument("--min-age-seconds", type=int, default=3600)
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, **options):
        referenced = set()
        for names in Image.objects.values_list("original", "normalized", "display", "work"):
            referenced.update(name for name in names if name)
        referenced.update(MaskRevision.objects.values_list("mask", flat=True))
        referenced.update(DerivedObject.objects.values_list("file", flat=True))  # SEG/SR exports, received objects
        cutoff = datetime.now(UTC) - timedelta(seconds=options["min_age_seconds"])
        orphans = [stored.name for stored in list_files("studies")
                   if stored.modified <= cutoff and stored.name not in referenced]
        # predictions/{project}/{study}/v{version}/{part}.png: a study's files go with it (study_deleting), but a
        # prediction task that finished after the deletion writes them again; a study that exists keeps all of its
        # own (overlays are drawn from the sheet on first view, so no row names every file).
        living = {(str(project), str(study)) for study, project in Study.objects.values_list("pk", "project_id")}
        orphans += [stored.name for stored in list_files("predictions")
                    if stored.modified <= cutoff and tuple(stored.name.split("/")[1:3]) not in living]
        if not options["dry_run"]:
            for name in orphans:
                default_storage.delete(name)
        verb = "would remove" if options["dry_run"] else "removed"
        self.stdout.write(f"sweep_orphans: {verb} {len(orphans)} unreferenced file(s) under studies/ and predictions/ "
                          f"({type(default_storage).__name__})")
