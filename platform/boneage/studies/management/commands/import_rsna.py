from __future__ import annotations

import csv
import math
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from boneage.studies.actions import IngestFields, do_ingest
from boneage.studies.management.commands._importing import ImportTally, project_by_name
from ml.data import DataError, LabelColumns


class Command(BaseCommand):
    help = ("Import an RSNA Pediatric Bone Age label file and its films (IMAGES_DIR/<id>.png): the training file "
            "(id,boneage,male), the validation file (Image ID,male,Bone Age (months)) or the test file (Case ID,Sex"
            "[,Ground truth bone age (months)]). The bone age becomes an imported label; a row without one is imported "
            "unlabelled.")

    def add_arguments(self, parser):
        parser.add_argument("csv", help="an RSNA labels CSV: training, validation or test layout")
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
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            reader.fieldnames = [n.strip() for n in reader.fieldnames or []]
            try:
                columns = LabelColumns.of(list(reader.fieldnames), ages_required=False)
            except DataError as error:
                raise CommandError(f"{csv_path}: {error}") from None
            rows = list(reader)[: options["limit"]]
        project = project_by_name(options["project"], create=options["create"], stdout=self.stdout)
        tally = ImportTally(len(rows), "import_rsna")
        for row in rows:
            self._import_row(project, images_dir, columns, row, tally)
        self.stdout.write(f"import_rsna into {project.name!r}: {tally.summary()}")

    def _import_row(self, project, images_dir: Path, columns: LabelColumns, row: dict, tally: ImportTally) -> None:
        try:
            label = columns.parse(row, ages_required=False)
        except DataError as error:
            tally.add((row.get(columns.id) or "").strip() or "?", None, reason="invalid_row", detail=str(error))
            return
        image = next((images_dir / f"{label.id}{ext}" for ext in (".png", ".jpg", ".jpeg", ".dcm")
                      if (images_dir / f"{label.id}{ext}").is_file()), None)
        if image is None:
            tally.add(label.id, None, reason="image_missing", detail=f"no {label.id}.png in {images_dir}")
            return
        sex = None if label.male is None else ("M" if label.male else "F")
        months = None if math.isnan(label.age_months) else label.age_months
        fields = IngestFields(sex=sex, bone_age_months=months, external_id=label.id)
        result = do_ingest(project, None, image.read_bytes(), image.name, fields, channel="import_rsna", source="rsna_import")
        tally.add(image.name, result)
