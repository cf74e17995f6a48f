"""DICOM objects of a study that are not its film: the SEG/SR the platform made from it, and the SEG, SR, KO or PR a
STOW-RS client sent that reference it. They are further series of the study in DICOMweb."""
from __future__ import annotations

from django.db import models

RECEIVED = "stow:"  # source_key prefix of an object received by STOW-RS (the platform's own are "mask:…", "label:…")


class DerivedObject(models.Model):
    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="derived_objects")
    kind = models.CharField(max_length=8, help_text="seg, sr, ko or pr")
    # What it was made from (e.g. "mask:12", "label:4;prediction:9"): the same inputs give the same object.
    # A received object's key is "stow:<its SOP Instance UID>".
    source_key = models.CharField(max_length=128)
    series_instance_uid = models.CharField(max_length=64)
    sop_instance_uid = models.CharField(max_length=64)
    file = models.CharField(max_length=255, help_text="storage name of the Part 10 file")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["study", "kind", "source_key"], name="one_object_per_source"),
                       # one SOP instance per study: the same received report may belong to studies of two projects
                       models.UniqueConstraint(fields=["study", "sop_instance_uid"], name="one_instance_per_study")]
        indexes = [models.Index(fields=["sop_instance_uid"])]

    @property
    def received(self) -> bool:
        return self.source_key.startswith(RECEIVED)
