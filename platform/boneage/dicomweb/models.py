"""DICOM objects the platform made from a study (SEG, SR): new series of that study in DICOMweb."""
from __future__ import annotations

from django.db import models


class DerivedObject(models.Model):
    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="derived_objects")
    kind = models.CharField(max_length=8, help_text="seg or sr")
    # What it was made from (e.g. "mask:12", "label:4;prediction:9"): the same inputs give the same object.
    source_key = models.CharField(max_length=128)
    series_instance_uid = models.CharField(max_length=64)
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    file = models.CharField(max_length=255, help_text="storage name of the Part 10 file")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["study", "kind", "source_key"], name="one_object_per_source")]
