"""Read and write contracts of the modeling API."""
from __future__ import annotations

from rest_framework import serializers

from boneage.modeling.actions import prediction_file_url
from boneage.modeling.intervals import reading_interval
from boneage.modeling.models import ModelStatus, ModelVersion, Prediction, TrainingRun
from ml.active import NEXT_CASE_STRATEGIES


class LatestPredictionSerializer(serializers.ModelSerializer):
    model_version = serializers.IntegerField(source="model_version_id")
    model_name = serializers.CharField(source="model_version.name")
    mask_url = serializers.SerializerMethodField()
    attention = serializers.SerializerMethodField()
    interval_months = serializers.SerializerMethodField(help_text="[low, high]: the project's interval_level interval, "
                                                        "clipped to its age range")
    interval_level = serializers.SerializerMethodField()
    interval_calibrated = serializers.SerializerMethodField(help_text="false: the model predates conformal "
                                                            "calibration and the interval assumes normal errors, or "
                                                            "its held-out studies, even pooled with earlier models', "
                                                            "are too few for the project's level and the interval is "
                                                            "the whole age range")
    interval_calibration = serializers.SerializerMethodField(help_text="which scores the interval was read from: "
                                                             "own (the model's held-out studies), pooled (with earlier "
                                                             "models' or the shipped starter's, named in "
                                                             "interval_note), normal (none: normal errors assumed) or "
                                                             "whole_range (too few even pooled)")
    interval_note = serializers.SerializerMethodField(help_text="why the interval is not calibrated on the model's own "
                                                      "held-out studies, and what it used instead, in words (empty "
                                                      "when it is)")
    outside_experience = serializers.BooleanField(source="outside", help_text="the film is outside this model's "
                                                  "experience (ml.ood): the interval is then the project's whole age "
                                                  "range")
    outside_reason = serializers.CharField(help_text="why, in words; empty when inside; 'no reference: …' when the "
                                           "model version cannot tell")
    ood_score = serializers.FloatField(allow_null=True, help_text="feature distance over the version's threshold "
                                       "(> 1: beyond it)")
    from_previous_model = serializers.SerializerMethodField(help_text="true: the active model has not read this study "
                                                            "yet (a re-prediction under way) and this is the reading "
                                                            "of an earlier model, model_name")

    class Meta:
        model = Prediction
        fields = ["id", "study", "age_months", "std_months", "interval_months", "interval_level", "interval_calibrated",
                  "interval_calibration", "interval_note", "outside_experience", "outside_reason", "ood_score", "model_version", "model_name", "from_previous_model", "mask_url", "box", "score", "attention", "timings", "out_of_fold",
                  "device", "created_at"]

    def to_representation(self, prediction):
        self._interval = reading_interval(prediction.age_months, prediction.std_months,
                                          prediction.model_version.metrics, prediction.study.project,
                                          prediction.outside)  # once
        return super().to_representation(prediction)

    def get_from_previous_model(self, prediction) -> bool:
        return prediction.model_version.status != ModelStatus.ACTIVE

    def get_interval_months(self, prediction) -> list[float]:
        return [self._interval.low, self._interval.high]

    def get_interval_level(self, prediction) -> float:
        return self._interval.level

    def get_interval_calibrated(self, prediction) -> bool:
        return self._interval.calibrated

    def get_interval_calibration(self, prediction) -> str:
        return self._interval.calibration

    def get_interval_note(self, prediction) -> str:
        return self._interval.note

    def get_mask_url(self, prediction) -> str | None:
        return prediction_file_url(prediction.study_id, prediction.model_version_id, "mask") if prediction.mask else None

    def get_attention(self, prediction) -> dict[str, str]:
        return {name: prediction_file_url(prediction.study_id, prediction.model_version_id, name)
                for name in prediction.attention}


class ModelVersionSerializer(serializers.ModelSerializer):
    parent_name = serializers.CharField(source="parent.name", default=None, read_only=True, allow_null=True)
    val_mae = serializers.SerializerMethodField()
    training_studies = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = ["id", "project", "name", "status", "sha256", "config", "metrics", "val_mae", "parent", "parent_name",
                  "training_studies", "training_study_ids", "validation_study_ids", "created_at", "promoted_at"]

    def get_val_mae(self, version) -> float | None:
        return version.metrics.get("val_mae")

    def get_training_studies(self, version) -> int:
        return len(version.training_study_ids)


class TrainingRunSerializer(serializers.ModelSerializer):
    init_from_name = serializers.CharField(source="init_from.name", default=None, read_only=True, allow_null=True)
    result_name = serializers.CharField(source="result.name", default=None, read_only=True, allow_null=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = TrainingRun
        fields = ["id", "project", "state", "trigger", "config", "progress", "curve", "error", "init_from",
                  "init_from_name", "result", "result_name", "created_by", "created_at", "started_at", "finished_at",
                  "heartbeat_at"]


class TrainingRunCreateSerializer(serializers.Serializer):
    init = serializers.ChoiceField(choices=["active", "fresh", "starter"], required=False,
                                   help_text="fine-tune the active model (default), start from scratch, or fine-tune "
                                             "the starter weights shipped with the code")
    epochs = serializers.IntegerField(required=False, min_value=1, max_value=200)
    batch_size = serializers.IntegerField(required=False, min_value=1, max_value=64)
    lr = serializers.FloatField(required=False)
    max_seconds = serializers.FloatField(required=False, help_text="wall-clock budget")
    gpus = serializers.IntegerField(required=False, min_value=1, max_value=16,
                                    help_text="train with torchrun, one process per GPU (DDP); N CPU processes on a "
                                              "worker without CUDA")


class NextCaseSerializer(serializers.Serializer):
    study = serializers.IntegerField()
    study_url = serializers.CharField()
    strategy = serializers.ChoiceField(choices=[*NEXT_CASE_STRATEGIES, "oldest"],
                                       help_text="the strategy that chose the study: oldest when nothing is scored "
                                       "yet, uncertainty when coreset has not ranked the model's studies yet")
    score = serializers.FloatField(allow_null=True)
    rank = serializers.IntegerField(allow_null=True)
    model_version = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_blank=True, help_text="why the strategy differs from the one asked for: "
                                   "no_model, not_scored_yet, coreset_not_ranked")


class TrainingDefaultsSerializer(serializers.Serializer):
    """GET/PATCH /api/projects/{p}/training-defaults/ (boneage.modeling.defaults)."""

    custom = serializers.DictField(help_text="what the project sets (epochs, batch_size, lr, max_seconds, uncertainty, "
                                   "auto_retrain_after_labels); a field it does not set takes the platform's default")
    fine_tune = serializers.DictField(help_text="what a run from the starter or the active model starts with")
    from_scratch = serializers.DictField(help_text="what a run with init \"fresh\" starts with")
    platform = serializers.DictField(help_text="{fine_tune, from_scratch}: the values of a project that sets nothing")
