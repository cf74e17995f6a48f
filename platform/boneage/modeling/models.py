"""Model versions, training runs, predictions and active-learning scores (docs/architecture.md)."""
from __future__ import annotations

from django.conf import settings as django_settings
from django.db import models


class ModelStatus(models.TextChoices):
    TRAINING = "training"
    CANDIDATE = "candidate"
    ACTIVE = "active"
    RETIRED = "retired"
    REJECTED = "rejected"
    AUDIT = "audit"  # a label audit's fold model: it judges the labels it never saw, it is never promoted


class ModelVersion(models.Model):
    project = models.ForeignKey("studies.Project", on_delete=models.CASCADE, related_name="model_versions")
    name = models.CharField(max_length=64, help_text="e.g. v3")
    checkpoint = models.CharField(max_length=255, help_text="storage name of the checkpoint file")
    sha256 = models.CharField(max_length=64)
    config = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict, help_text="val MAE overall, by sex and age band, calibration coverage")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE)
    training_study_ids = models.JSONField(default=list)
    validation_study_ids = models.JSONField(default=list)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    # where the re-prediction after this version's promotion stands (boneage.modeling.reprediction), read by pages
    # opened mid-run; `replaces` is the version active before it, whose readings stand in until this one has read a study
    reprediction = models.JSONField(default=dict, blank=True, help_text="{state: queued|running|done|failed|"
                                    "superseded, done, total, replaces: the id of the version active before}")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project"], condition=models.Q(status="active"), name="one_active_model_per_project"),
        ]


class RunState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TrainingRun(models.Model):
    project = models.ForeignKey("studies.Project", on_delete=models.CASCADE, related_name="training_runs")
    config = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    trigger = models.CharField(max_length=16, default="manual", help_text="manual, auto, starter")
    init_from = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    result = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    progress = models.JSONField(default=dict, help_text="epoch, step, total_steps, loss, val_mae")
    curve = models.JSONField(default=list, help_text="one dict per epoch")
    error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life of the worker")
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class Prediction(models.Model):
    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    age_months = models.FloatField()
    std_months = models.FloatField()
    mask = models.CharField(max_length=255, blank=True, help_text="storage name of the predicted hand mask PNG")
    box = models.JSONField(default=list, help_text="[x0, y0, x1, y1] in image pixels")
    score = models.FloatField(null=True, blank=True)
    attention = models.JSONField(default=dict, help_text="module name → storage name of the heatmap PNG")
    timings = models.JSONField(default=dict)
    out_of_fold = models.BooleanField(default=False, help_text="made by a model that did not train on this study")
    device = models.CharField(max_length=128, blank=True, default="", help_text="host/device the worker ran it on")
    embedding = models.BinaryField(null=True, blank=True, editable=False,
                                   help_text="float32 little-endian: the age head's input features (core-set next case)")
    # outside this model's experience (ml.ood, issue 29): the flag at the version's threshold, why in words, and the
    # feature distance over the threshold (> 1: beyond it; null: the version has no reference or the row is older)
    outside = models.BooleanField(default=False, help_text="the film is outside this model's experience")
    outside_reason = models.TextField(blank=True, default="", help_text="why, in words")
    ood_score = models.FloatField(null=True, blank=True, help_text="feature distance / the version's threshold")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["study", "model_version"], name="one_prediction_per_model")]
        # the worklist's "by uncertainty" order walks it (web.api.NullsLastIds)
        indexes = [models.Index(fields=["model_version", "-std_months", "-study"], name="prediction_by_std")]


class ActiveScore(models.Model):
    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="active_scores")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="active_scores")
    strategy = models.CharField(max_length=32)
    score = models.FloatField()
    last_served_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "model_version", "strategy"], name="one_score_per_strategy"),
        ]
        indexes = [models.Index(fields=["model_version", "strategy", "-score"])]
