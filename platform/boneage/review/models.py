"""The review queue: disagreements the rules found, who holds them, and how each one ended.

A ReviewItem is one disagreement of one kind (its `reason`) on one study. At most one item per
(study, reason) is open at a time; the rules update it while the cause lasts and close it (state
`closed`, with an audit event) when the cause disappears. "Claimed" is not a stored state: an open
item whose lease has not expired is claimed, so an abandoned claim frees itself when the lease ends.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Reason(models.TextChoices):
    MODEL_VS_LABEL = "model_vs_label", "Model vs label"
    LABEL_VS_LABEL = "label_vs_label", "Label vs label"
    MASK_VS_MASK = "mask_vs_mask", "Mask vs mask"
    MODEL_UNSURE = "model_unsure", "Model unsure"
    MODEL_OUTSIDE = "model_outside", "Outside the model's experience"


class ItemState(models.TextChoices):
    OPEN = "open"            # waiting, or claimed while its lease runs
    RESOLVED = "resolved"    # a reviewer decided a gold value
    DISMISSED = "dismissed"  # a reviewer decided there is nothing to fix (with a reason)
    CLOSED = "closed"        # the cause disappeared before anyone decided


class Decision(models.TextChoices):
    ACCEPT_LABEL = "accept_label"
    ACCEPT_MODEL = "accept_model"
    NEW_VALUE = "new_value"
    MASK = "mask"
    DISMISS = "dismiss"


class ReviewItem(models.Model):
    project = models.ForeignKey("studies.Project", on_delete=models.CASCADE, related_name="review_items")
    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="review_items")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    state = models.CharField(max_length=12, choices=ItemState.choices, default=ItemState.OPEN)
    magnitude = models.FloatField(help_text="size of the disagreement in `unit`")
    unit = models.CharField(max_length=8, help_text="months or dice")
    priority = models.FloatField(help_text="the disagreement weighed by the uncertainty; the queue's order")
    evidence = models.JSONField(default=dict, help_text="the values the rule compared (labels, prediction, masks)")
    key = models.CharField(max_length=160, help_text="identity of the compared evidence (row ids)")
    claimed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    blind_reads = models.JSONField(default=dict, blank=True, help_text="user id → months entered before seeing values")
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True)
    outcome = models.JSONField(default=dict, blank=True, help_text="months, reason, gold label / mask revision ids")
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    closed_reason = models.CharField(max_length=255, blank=True)
    opened_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "reason"], condition=models.Q(state="open"),
                                    name="one_open_item_per_study_and_reason"),
        ]
        indexes = [models.Index(fields=["project", "state", "-priority"]),
                   models.Index(fields=["study", "reason", "key"])]

    def __str__(self) -> str:
        return f"review item {self.pk} ({self.reason}, study {self.study_id}, {self.state})"

    def lease_active(self, now=None) -> bool:
        return (self.state == ItemState.OPEN and self.claimed_by_id is not None and self.lease_expires_at is not None
                and self.lease_expires_at > (now or timezone.now()))

    @property
    def display_state(self) -> str:
        return "claimed" if self.lease_active() else self.state


class StudyAgreement(models.Model):
    """The latest measurements of the rules for one study: what the agreement metrics aggregate.

    Also a cache: the Dice of two masks is recomputed only when one of the compared rows changed.
    """

    study = models.OneToOneField("studies.Study", on_delete=models.CASCADE, related_name="review_agreement")
    project = models.ForeignKey("studies.Project", on_delete=models.CASCADE, related_name="+")
    label_months = models.FloatField(null=True, blank=True)
    label_source = models.CharField(max_length=8, blank=True)
    prediction = models.ForeignKey("modeling.Prediction", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    model_delta = models.FloatField(null=True, blank=True, help_text="prediction − label, months")
    model_std = models.FloatField(null=True, blank=True)
    expert_spread = models.FloatField(null=True, blank=True, help_text="max − min of the experts' latest ages")
    dice_model = models.FloatField(null=True, blank=True, help_text="Dice(expert or review mask, model mask)")
    dice_model_key = models.CharField(max_length=80, blank=True)
    dice_experts = models.FloatField(null=True, blank=True, help_text="lowest Dice between two experts' masks")
    dice_experts_key = models.CharField(max_length=80, blank=True)
    evaluated_at = models.DateTimeField(auto_now=True)
