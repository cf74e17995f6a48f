from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from boneage.annotations.models import MaskRevision
from boneage.studies.models import Image


class Command(BaseCommand):
    help = ("Delete study files that no row references (left by a process killed between writing a file and "
            "committing its row). Files younger than --min-age-seconds are left alone: their upload may be in flight.")

    def add_arguments(self, parser):
        parser.add_argument("--min-age-seconds", type=int, default=3600)
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, **options):
        root = Path(settings.MEDIA_ROOT)
        referenced = set()
        for names in Image.objects.values_list("original", "normalized", "display"):
            referenced.update(name for name in names if name)
        referenced.update(MaskRevision.objects.values_list("mask", flat=True))
        cutoff = time.time() - options["min_age_seconds"]
        removed = 0
        for path in (root / "studies").rglob("*") if (root / "studies").exists() else []:
            if not path.is_file() or path.stat().st_mtime > cutoff:
                continue
            if path.relative_to(root).as_posix() not in referenced:
                removed += 1
                if not options["dry_run"]:
                    path.unlink()
        verb = "would remove" if options["dry_run"] else "removed"
        self.stdout.write(f"sweep_orphans: {verb} {removed} unreferenced file(s) under {root / 'studies'}")
