"""Each project gets the called AE title its DICOM node answers to (derived from its name, numbered where two names
give the same title), and an ingest record keeps who sent a file when no user did (the DICOM node's peer)."""
import re

from django.db import migrations, models

AE_TITLE_MAX = 16


def _derived(name: str) -> str:  # boneage.studies.ae_titles.derived_ae_title, frozen here
    slug = re.sub(r"[^A-Z0-9]+", "_", (name or "").upper()).strip("_")
    return slug[:AE_TITLE_MAX].rstrip("_") or "BONEAGE"


def give_titles(apps, schema_editor):
    Project = apps.get_model("studies", "Project")
    taken: set[str] = set()
    for project in Project.objects.order_by("id"):
        base = candidate = _derived(project.name)
        number = 1
        while candidate in taken:
            number += 1
            candidate = base[: AE_TITLE_MAX - len(f"_{number}")] + f"_{number}"
        taken.add(candidate)
        project.ae_title = candidate
        project.save(update_fields=["ae_title"])


class Migration(migrations.Migration):
    dependencies = [("studies", "0008_film_check")]

    operations = [
        migrations.AddField(model_name="project", name="ae_title", field=models.CharField(max_length=16, null=True)),
        migrations.RunPython(give_titles, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="project", name="ae_title",
            field=models.CharField(max_length=16, unique=True, help_text="called AE title of the DICOM node for this "
                                   "project: 1–16 characters, no backslash or control characters (studies.ae_titles)"),
        ),
        migrations.AddField(
            model_name="ingestrecord", name="sender",
            field=models.CharField(max_length=128, blank=True, help_text="who sent it when no user did: the DICOM "
                                   "node's calling AE title and peer address, e.g. 'MODALITY1 at 10.0.0.7:40112'"),
        ),
        migrations.AlterField(
            model_name="ingestrecord", name="channel",
            field=models.CharField(max_length=16, default="api",
                                   help_text="api, browser, dicomweb, dimse, import_dicom, import_rsna"),
        ),
    ]
