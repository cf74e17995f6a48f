"""Live events: the registry of every event a project socket receives, and the one helper that publishes them (sent to
the project's group on commit). docs/architecture.md.

Each event's name and fields are declared once, in EVENTS below (in the manner of Zulip's event_schema); `publish`
checks every event against its declaration, so a renamed field or a new event that nobody declared fails in the
tests rather than in a browser. Outside the test and dev profiles a mismatch is logged and the event still leaves.

Every project event carries `seq`, a number one higher than the project's previous event (a Redis counter), and a
socket's hello carries the current one: a page that sees a gap missed events (a dropped connection, or channels-redis
discarding what a slow consumer did not read in time) and reloads what it shows, so nothing on screen stays stale.

Events leave through one long-lived asyncio loop per process (a daemon thread), so the channel layer keeps its
Redis connections: `async_to_sync` per event built a new loop — and a new Redis connection — every time
(~18 ms an event on the benchmark box; a prediction sends nine).
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)
SEND_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class EventType:
    """A live event: `{"type": name, **fields}`; `study` is added by publish(study=...) where the event has one."""

    name: str
    doc: str
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()

    def problems(self, message: dict[str, Any]) -> list[str]:
        fields = set(message) - {"type"}
        missing = self.required - fields
        unknown = fields - self.required - self.optional
        return ([f"missing {', '.join(sorted(missing))}"] if missing else []) + \
               ([f"undeclared {', '.join(sorted(unknown))}"] if unknown else [])


def _event(name: str, doc: str, required: str = "", optional: str = "") -> EventType:
    return EventType(name, doc, frozenset(required.split()), frozenset(optional.split()))


_PREDICTION = "study model_version"
_REVIEW = "study item open_count"
EVENTS: dict[str, EventType] = {event.name: event for event in (
    _event("study.ingested", "A study was stored (studies.do_ingest).", "study"),
    _event("study.deleted", "An admin deleted a study with its files (studies.do_delete_study).", "study"),
    _event("mask.generated", "The Canny automask of a study exists (revision source=canny).", "study revision source"),
    _event("mask.saved", "A person saved a mask revision.", "study revision source"),
    _event("study.frame_set", "The platform reads a study's film in a new frame (studies.frame: turned, inverted or "
           "as stored); its images, mask and reading are made again.", "study turns inverted source"),
    _event("mask.failed", "The study's images could not be derived or its automask failed.", "study detail"),
    _event("label.saved", "An age label was saved; the socket hides months from others in blind review.",
           "study label months source author_id"),
    _event("prediction.skipped", "No prediction: the project has no active model.", "study reason detail"),
    _event("prediction.failed", "A prediction failed (bad checkpoint, time limit, unreadable study).",
           "study reason detail", "model_version"),
    _event("prediction.started", "The network started on a study.", _PREDICTION + " model"),
    _event("prediction.mask", "The segmentation subnet's hand mask and box.", _PREDICTION + " url box score"),
    _event("prediction.age", "The bone age and its uncertainty.", _PREDICTION + " age_months std_months"),
    _event("prediction.attention", "One of the six attention maps (name as in the paper).", _PREDICTION + " name url"),
    _event("prediction.ready", "The prediction is stored.", _PREDICTION + " age_months std_months", "prediction"),
    _event("model.repredict.progress", "Batch re-prediction after a promotion: how far.", "model_version done total"),
    _event("model.repredict.failed", "Batch re-prediction could not start, or its worker died.", "model_version detail"),
    _event("model.repredicted", "Batch re-prediction finished.", "model_version predicted total"),
    _event("active.ranked", "Fresh active-learning scores for the next case.", "model_version scored"),
    _event("model.promoted", "A version became the active model.", "model_version name reason previous val_mae"),
    _event("model.rejected_by_gate", "The promotion gate kept the active model.",
           "model_version name val_mae active_val_mae outcome"),
    _event("training.queued", "A training run waits for a gpu worker.", "run trigger"),
    _event("training.started", "A worker started the run.", "run"),
    _event("training.progress", "Per-step / per-epoch progress of a run (an audit's also names its fold, the default "
           "recipe its stage: segmenter, then regressor).",
           "run epoch step loss val_mae total_epochs", "fold folds stage"),
    _event("training.cancelling", "The run stops within one step.", "run state"),
    _event("training.finished", "The run ended (succeeded, failed or cancelled).", "run state",
           "error model_version val_mae active_val_mae promoted outcome kept"),
    _event("review.queued", "A disagreement opened (or re-opened) a review item.", _REVIEW + " reason priority"),
    _event("review.closed", "The rules closed an item (the disagreement is gone).", _REVIEW),
    _event("review.claimed", "A reviewer claimed an item.", _REVIEW + " claimed_by lease_expires_at"),
    _event("review.released", "A claimed item went back to the queue.", _REVIEW),
    _event("review.resolved", "A reviewer decided an item.", _REVIEW + " reason decision state"),
    _event("review.settings", "The project's review settings changed.", "settings"),
)}


class UnknownEvent(ValueError):
    """An event that EVENTS does not declare, or with fields its declaration does not have."""


def check_event(message: dict[str, Any]) -> None:
    """Raise UnknownEvent unless the message matches its declaration in EVENTS (logged only in production)."""
    declared = EVENTS.get(str(message.get("type")))
    problems = declared.problems(message) if declared else [f"no event {message.get('type')!r} is declared"]
    if not problems:
        return
    text = f"live event {message.get('type')!r}: {'; '.join(problems)} (boneage.core.events.EVENTS)"
    if getattr(settings, "PROFILE", "dev") == "prod":
        logger.error(text)
        return
    raise UnknownEvent(text)

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
    check_event(message)
    transaction.on_commit(lambda: send_now(project_id, message))


def publish_many(project_id: int, messages: list[dict[str, Any]]) -> None:
    """Like `publish` for a list of ready-made messages (each with its "type"), sent together on commit."""
    for message in messages:
        check_event(message)
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


def _sequence_key(project_id: int) -> str:
    return f"{getattr(settings, 'CHANNELS_PREFIX', 'boneage')}:event-seq:{project_id}"


def redis_client():
    """The process's one Redis client, with timeouts so a stalled Redis never hangs a request."""
    import redis

    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    return _redis_client


_redis_client = None


def current_sequence(project_id: int) -> int | None:
    """The `seq` of the project's latest event (0 before any); None when Redis cannot say."""
    try:
        return int(redis_client().get(_sequence_key(project_id)) or 0)
    except Exception:  # noqa: BLE001 — without a number the page simply cannot detect a gap
        return None


def _number(project_id: int, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        last = int(redis_client().incrby(_sequence_key(project_id), len(messages)))
    except Exception:  # noqa: BLE001 — unnumbered events still leave
        logger.warning("could not number the events of project %s", project_id)
        return messages
    return [{**message, "seq": last - len(messages) + i + 1} for i, message in enumerate(messages)]


def send_many(project_id: int, messages: list[dict[str, Any]]) -> None:
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    group = project_group(project_id)
    messages = _number(project_id, messages)

    async def send() -> None:
        for message in messages:
            await layer.group_send(group, {"type": "project.event", "event": message})

    try:
        asyncio.run_coroutine_threadsafe(send(), _publisher_loop()).result(timeout=SEND_TIMEOUT_S)
    except Exception:  # a broker hiccup must never undo the committed change that caused the event
        logger.exception("could not publish %s to project %s", [m.get("type") for m in messages], project_id)
