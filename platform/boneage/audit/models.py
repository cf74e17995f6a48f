"""The append-only audit history: who did what to which object, with the before and after values."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditHistoryIsAppendOnly(Exception):
    """Raised by every attempt to change or remove an audit event, whatever the interface."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AuditHistoryIsAppendOnly("audit events cannot be updated")

    def delete(self):
        raise AuditHistoryIsAppendOnly("audit events cannot be deleted")


class AuditEvent(models.Model):
    project = models.ForeignKey("studies.Project", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # A study's history outlives the study: deleting it (studies.do_delete_study) leaves its events, still naming its
    # id, so no database constraint ties them to the row (and the append-only history cannot be rewritten to null).
    study = models.ForeignKey("studies.Study", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
                              related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    verb = models.CharField(max_length=64, help_text="e.g. study.ingested, label.saved, model.promoted")
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["study", "created_at"]), models.Index(fields=["project", "created_at"])]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AuditHistoryIsAppendOnly("audit events cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditHistoryIsAppendOnly("audit events cannot be deleted")

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_id or 'system'} {self.verb} {self.object_type}#{self.object_id}"
