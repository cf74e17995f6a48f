"""The one helper that publishes live events (DESIGN §7): sent to the project's group on commit.

Events leave through one long-lived asyncio loop per process (a daemon thread), so the channel layer keeps its
Redis connections: `async_to_sync` per event built a new loop — and a new Redis connection — every time
(~18 ms an event on the benchmark box; a prediction sends nine).
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)
SEND_TIMEOUT_S = 10.0

_loop_lock = threading.Lock()
_loop: tuple[int, asyncio.AbstractEventLoop] | None = None


def project_group(project_id: int) -> str:
    return f"project-{project_id}"


def user_group(user_id: int) -> str:
    """Every socket of one user, whatever the project: membership changes are announced here."""
    return f"user-{user_id}"


def send_to_user(user_id: int, message: dict[str, Any]) -> None:
    """Deliver a control message (`{"type": handler name, ...}`) to every open socket of a user, now."""
    layer = get_channel_layer()
    if layer is None:
        return

    async def send() -> None:
        await layer.group_send(user_group(user_id), message)

    try:
        asyncio.run_coroutine_threadsafe(send(), _publisher_loop()).result(timeout=SEND_TIMEOUT_S)
    except Exception:
        logger.exception("could not notify the sockets of user %s", user_id)


def _message(event_type: str, study: int | None, payload: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"type": event_type, **payload}
    if study is not None:
        message["study"] = study
    return message


def publish(project_id: int, event_type: str, *, study: int | None = None, **payload: Any) -> None:
    """Queue `{"type": event_type, "study": study, ...payload}` for every socket of the project.

    Inside a transaction the event leaves only if it commits; outside one it leaves at once.
    """
    message = _message(event_type, study, payload)
    transaction.on_commit(lambda: send_now(project_id, message))


def publish_many(project_id: int, messages: list[dict[str, Any]]) -> None:
    """Like `publish` for a list of ready-made messages (each with its "type"), sent together on commit."""
    if messages:
        transaction.on_commit(lambda: send_many(project_id, list(messages)))


def _publisher_loop() -> asyncio.AbstractEventLoop:
    """This process's publishing loop (a new one after a fork: the parent's thread does not exist in the child)."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop[0] != os.getpid() or _loop[1].is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="live-publisher", daemon=True).start()
            _loop = (os.getpid(), loop)
        return _loop[1]


def send_now(project_id: int, message: dict[str, Any]) -> None:
    send_many(project_id, [message])


def send_many(project_id: int, messages: list[dict[str, Any]]) -> None:
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    group = project_group(project_id)

    async def send() -> None:
        for message in messages:
            await layer.group_send(group, {"type": "project.event", "event": message})

    try:
        asyncio.run_coroutine_threadsafe(send(), _publisher_loop()).result(timeout=SEND_TIMEOUT_S)
    except Exception:  # a broker hiccup must never undo the committed change that caused the event
        logger.exception("could not publish %s to project %s", [m.get("type") for m in messages], project_id)
