"""The publisher is the core's (boneage.core.events: the event registry and the one helper that publishes); the
project socket (live.consumers) and older callers import these names from here."""
from __future__ import annotations

from boneage.core.events import (
    project_group,
    publish,
    publish_many,
    send_many,
    send_now,
    send_to_user,
    user_group,
)

__all__ = ["project_group", "publish", "publish_many", "send_many", "send_now", "send_to_user", "user_group"]
