"""Writing the audit history: the one function every action layer calls."""
from __future__ import annotations

from typing import Any

from django.db import models

from boneage.audit.models import AuditEvent


def do_record(
    verb: str,
    obj: models.Model,
    *,
    actor=None,
    project=None,
    study=None,
    before: Any = None,
    after: Any = None,
) -> AuditEvent:
    """Append one event; call it inside the transaction that makes the change, so both land or neither."""
    return AuditEvent.objects.create(
        verb=verb,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        project=project,
        study=study,
        before=before,
        after=after,
    )
