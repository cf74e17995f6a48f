"""Read and write shapes of the review API. Blind review hides values in `to_representation`."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from boneage.review.models import Decision, Reason, ReviewItem
from boneage.review.visibility import values_visible  # the blind-review rule lives in visibility.py


class ReviewItemSerializer(serializers.ModelSerializer):
    state = serializers.CharField(source="display_state", read_only=True)
    reason_label = serializers.CharField(source="get_reason_display", read_only=True)
    claimed_by = serializers.SerializerMethodField()
    resolved_by = serializers.CharField(source="resolved_by.username", default=None, read_only=True, allow_null=True)
    study_external_id = serializers.CharField(source="study.external_id", read_only=True)
    study_name = serializers.CharField(source="study.display_name", read_only=True, help_text="as every page names it")
    study_sex = serializers.CharField(source="study.sex", read_only=True)
    image_url = serializers.SerializerMethodField()
    study_url = serializers.SerializerMethodField()
    values_hidden = serializers.SerializerMethodField()
    my_blind_read = serializers.SerializerMethodField()

    class Meta:
        model = ReviewItem
        fields = ["id", "study", "study_external_id", "study_name", "study_sex", "study_url", "image_url", "reason", "reason_label",
                  "state", "priority", "magnitude", "unit", "evidence", "values_hidden", "my_blind_read", "claimed_by",
                  "lease_expires_at", "decision", "outcome", "resolved_by", "closed_reason", "opened_at", "finished_at"]

    def get_claimed_by(self, item) -> str | None:
        return item.claimed_by.username if item.lease_active() and item.claimed_by else None

    def get_image_url(self, item) -> str:
        return f"/api/studies/{item.study_id}/image/"

    def get_study_url(self, item) -> str:
        return f"/studies/{item.study_id}/"

    def get_values_hidden(self, item) -> bool:
        return not self._visible(item)

    def get_my_blind_read(self, item) -> float | None:
        user = self.context.get("user")
        return (item.blind_reads or {}).get(str(user.pk)) if user else None

    def _visible(self, item) -> bool:
        context = self.context
        return values_visible(item, context["user"], context["role"], context["blind"])

    def to_representation(self, item) -> dict[str, Any]:
        data = super().to_representation(item)
        if not self._visible(item):
            # the priority is the magnitude scaled: it would give the values away too (the order stays)
            data["evidence"], data["magnitude"], data["outcome"], data["priority"] = None, None, None, None
        return data


class QueueQuerySerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=Reason.choices, required=False, help_text="repeat or comma-separate")
    state = serializers.ChoiceField(choices=["open", "claimed", "unclaimed", "resolved", "dismissed", "closed", "all"],
                                    required=False, default="open")


class BlindReadSerializer(serializers.Serializer):
    months = serializers.FloatField(help_text="your own bone age reading, 0–240 months")


class ResolveSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Decision.choices)
    months = serializers.FloatField(required=False, help_text="new_value: the gold bone age (0–240)")
    label = serializers.IntegerField(required=False, help_text="accept_label: which compared label (label vs label)")
    reason = serializers.CharField(required=False, help_text="dismiss: why there is nothing to fix")
    note = serializers.CharField(required=False)
    file = serializers.FileField(required=False, help_text="mask: the corrected mask PNG (multipart), image size")


class ReviewSettingsSerializer(serializers.Serializer):
    settings = serializers.JSONField()
    defaults = serializers.JSONField()
    explanations = serializers.JSONField()
    words = serializers.JSONField(help_text="the explanations for people: each rule's title, its options' titles "
                                  "(titles), the texts with titles for the settings' names (boneage.web.field_words)")
    can_edit = serializers.BooleanField()
