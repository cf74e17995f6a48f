from __future__ import annotations

import csv
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from boneage.studies.actions import IngestFields, do_ingest
from boneage.studies.management.commands._importing import ImportTally, project_by_name

TRUE_WORDS = {"true", "1", "yes", "m", "male"}
FALSE_WORDS = {"false", "0", "no", "f", "female"}


class Command(BaseCommand):
    help = "Import the RSNA Kaggle layout (CSV id,boneage,male + IMAGES_DIR/<id>.png): boneage becomes an imported label."

    def add_arguments(self, parser):
        parser.add_argument("csv", help="labels CSV with columns id,boneage,male")
        parser.add_argument("images_dir", help="folder holding <id>.png (or .jpg/.dcm)")
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--create", action="store_true", help="create the project if it does not exist")
        parser.add_argument("--limit", type=int, default=None, help="import only the first N rows")

    def handle(self, *args, **options):
        csv_path, images_dir = Path(options["csv"]), Path(options["images_dir"])
        if not csv_path.is_file():
            raise CommandError(f"{csv_path} is not a file")
        if not images_dir.is_dir():
            raise CommandError(f"{images_dir} is not a folder")
        with csv_path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"id", "boneage", "male"} - set(reader.fieldnames or [])
            if missing:
                raise CommandError(f"{csv_path} lacks the column(s) {', '.join(sorted(missing))}; expected id,boneage,male")
            rows = list(reader)[: options["limit"]]
        project = project_by_name(options["project"], create=options["create"], stdout=self.stdout)
        tally = ImportTally(len(rows), "import_rsna")
        for row in rows:
            self._import_row(project, images_dir, row, tally)
        self.stdout.write(f"import_rsna into {project.name!r}: {tally.summary()}")

    def _import_row(self, project, images_dir: Path, row: dict, tally: ImportTally) -> None:
        study_id = (row.get("id") or "").strip()
        image = next((images_dir / f"{study_id}{ext}" for ext in (".png", ".jpg", ".jpeg", ".dcm")
                      if (images_dir / f"{study_id}{ext}").is_file()), None)
        if image is None:
            tally.add(study_id, None, reason="image_missing", detail=f"no {study_id}.png in {images_dir}")
            return
        male = (row.get("male") or "").strip().lower()
        if male not in TRUE_WORDS | FALSE_WORDS:
            tally.add(image.name, None, reason="invalid_row", detail=f"male={row.get('male')!r} is not true/false")
            return
        try:
            months = float(row["boneage"])
        except (TypeError, ValueError):
            tally.add(image.name, None, reason="invalid_row", detail=f"boneage={row.get('boneage')!r} is not a number")
            return
        fields = IngestFields(sex="M" if male in TRUE_WORDS else "F", bone_age_months=months, external_id=study_id)
        result = do_ingest(project, None, image.read_bytes(), image.name, fields, channel="import_rsna", source="rsna_import")
        tally.add(image.name, result)
