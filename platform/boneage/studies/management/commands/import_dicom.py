from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from boneage.studies.actions import do_ingest
from boneage.studies.management.commands._importing import ImportTally, project_by_name


class Command(BaseCommand):
    help = "Import DICOM files and folders (recursive) into a project, with a progress bar and a summary."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="DICOM files or folders")
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--create", action="store_true", help="create the project if it does not exist")

    def handle(self, *args, **options):
        files: list[Path] = []
        for raw in options["paths"]:
            path = Path(raw)
            if not path.exists():
                raise CommandError(f"{path} does not exist")
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
        if not files:
            raise CommandError("no files found under the given paths")
        project = project_by_name(options["project"], create=options["create"], stdout=self.stdout)
        tally = ImportTally(len(files), "import_dicom")
        for path in files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                tally.add(path.name, None, reason="unreadable_file", detail=str(exc))
                continue
            tally.add(path.name, do_ingest(project, None, data, path.name, channel="import_dicom", source="dicom_import"))
        self.stdout.write(f"import_dicom into {project.name!r}: {tally.summary()}")
