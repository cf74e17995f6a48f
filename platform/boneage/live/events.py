"""The one helper that publishes live events (DESIGN §7): sent to the project's group on commit."""
from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def project_group(project_id: int) -> str:
    return f"project-{project_id}"


def publish(project_id: int, event_type: str, *, study: int | None = None, **payload: Any) -> None:
    """Queue `{"type": event_type, "study": study, ...payload}` for every socket of the project.

    Inside a transaction the event leaves only if it commits; outside one it leaves at once.
    """
    message: dict[str, Any] = {"type": event_type, **payload}
    if study is not None:
        message["study"] = study
    transaction.on_commit(lambda: send_now(project_id, message))


def send_now(project_id: int, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(project_group(project_id), {"type": "project.event", "event": message})
    except Exception:  # a broker hiccup must never undo the committed change that caused the event
        logger.exception("could not publish %s to project %s", message.get("type"), project_id)
