"""Hand-mask revisions and bone-age labels: append-only, so every version stays in the history."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class MaskSource(models.TextChoices):
    CANNY = "canny"
    MODEL = "model"
    EXPERT = "expert"
    REVIEW = "review"


# An automatic (Canny) mask scoring below this is checked by a labeler first (the worklist's "check the mask"; the
# real-film benchmark's flag level, docs/real-films.md).
CHECK_MASK_BELOW = 0.75


class MaskRevision(models.Model):
    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="mask_revisions")
    # RESTRICT, not PROTECT: a revision with children stays, unless its whole study is deleted with them.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.RESTRICT, related_name="children")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=8, choices=MaskSource.choices)
    mask = models.CharField(max_length=255, help_text="storage name of the 0/255 PNG, image size")
    quality = models.FloatField(null=True, blank=True, help_text="automask quality score, 0..1")
    area_fraction = models.FloatField(null=True, blank=True)
    note = models.CharField(max_length=255, blank=True)
    # The frame the mask is drawn in: the study's Image.turns when it was saved (studies.frame); the SEG export turns
    # it back by this to the original's grid.
    turns = models.PositiveSmallIntegerField(default=0, help_text="np.rot90 k from the stored film to the mask's frame")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class LabelSource(models.TextChoices):
    IMPORT = "import"
    EXPERT = "expert"
    REVIEW = "review"


# Which label wins when a study has several: a review decision, then an expert, then an import.
LABEL_PRECEDENCE = {LabelSource.REVIEW: 3, LabelSource.EXPERT: 2, LabelSource.IMPORT: 1}


class AgeLabel(models.Model):
    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="age_labels")
    months = models.FloatField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=8, choices=LabelSource.choices)
    base = models.ForeignKey("self", null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
