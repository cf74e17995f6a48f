from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand

from boneage.annotations.models import MaskRevision
from boneage.core.storage import list_files
from boneage.dicomweb.models import DerivedObject
from boneage.studies.models import Image


class Command(BaseCommand):
    help = ("Delete study files that no row references (left by a process killed between writing a file and "
            "committing its row), on the local media folder or the S3 bucket alike. Files younger than "
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
        removed = 0
        for stored in list_files("studies"):
            if stored.modified > cutoff or stored.name in referenced:
                continue
            removed += 1
            if not options["dry_run"]:
                default_storage.delete(stored.name)
        verb = "would remove" if options["dry_run"] else "removed"
        self.stdout.write(f"sweep_orphans: {verb} {removed} unreferenced file(s) under studies/ "
                          f"({type(default_storage).__name__})")
