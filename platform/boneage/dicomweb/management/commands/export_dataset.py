"""python manage.py export_dataset --project NAME OUT.zip [--deidentify]: the API's RSNA zip, to a file."""
from __future__ import annotations

import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from boneage.dicomweb.dataset import labeled_studies, rsna_zip
from boneage.studies.models import Project


class Command(BaseCommand):
    help = "Write a project's labeled studies as an RSNA-style zip (labels.csv, images/, masks/)."

    def add_arguments(self, parser):
        parser.add_argument("out", help="the zip file to write")
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--deidentify", action="store_true", help="salted-hash ids instead of RSNA ids")

    def handle(self, *args, **options):
        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            raise CommandError(f"No project named {options['project']!r}.")
        out = Path(options["out"])
        total = len(labeled_studies(project))
        partial = out.with_name(f".{out.name}.partial")
        with open(partial, "wb") as handle, tqdm(total=total, desc="export_dataset", unit="study") as bar:
            for chunk in rsna_zip(project, deidentify=options["deidentify"] or project.deidentify):
                handle.write(chunk)
                bar.update(1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, out)  # never a half-written zip under the final name
        self.stdout.write(f"export_dataset {project.name!r}: {total} labeled studies, {out.stat().st_size:,} bytes → {out}")
