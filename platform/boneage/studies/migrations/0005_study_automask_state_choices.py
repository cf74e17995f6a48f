# The automask state is typed (boneage.core.pipeline.AutomaskState); the column is unchanged.
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("studies", "0004_project_names_per_owner_and_dicom_column_widths"),
    ]

    operations = [
        migrations.AlterField(
            model_name="study",
            name="automask_state",
            field=models.CharField(
                choices=[("pending", "Pending"), ("running", "Running"), ("done", "Done"), ("failed", "Failed")],
                default="pending",
                max_length=16,
            ),
        ),
    ]
