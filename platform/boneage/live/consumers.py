"""The project socket: authenticate, check membership, subscribe. Pushes come from live.events.

Whenever the user's membership changes, live.signals tells the user's group the new role: a removed member's
sockets stop forwarding at once and close, a changed role's sockets carry on with the new role.
"""
from __future__ import annotations

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from boneage.core.events import current_sequence
from boneage.live.events import project_group, user_group
from boneage.review.rules import review_settings
from boneage.review.visibility import carries_values, live_event
from boneage.studies.access import membership_role
from boneage.studies.models import Project

CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NOT_A_MEMBER = 4404


class ProjectConsumer(AsyncJsonWebsocketConsumer):
    async def dispatch(self, message):
        """Each message straight to its handler. Channels' own dispatch first waits for a database thread before every
        message (aclose_old_connections), even an event that needs no database: under load each event, and the
        removal behind them, queued behind the web process's busy database threads, and a removed member's socket
        went on receiving (issue 32, row 13). The handlers that read the database do it through
        database_sync_to_async, which closes old connections itself; websocket_disconnect still does as well."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        user = self.scope.get("user")
        project_id = int(self.scope["url_route"]["kwargs"]["project_id"])
        if not user or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_LOGGED_IN)
            return
        role = await database_sync_to_async(membership_role)(user, project_id)
        if role is None:  # outsiders learn nothing, not even that the project exists
            await self.close(code=CLOSE_NOT_A_MEMBER)
            return
        self.project_id, self.role = project_id, role
        self.joined = [project_group(project_id), user_group(user.pk)]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        self.blind = await database_sync_to_async(project_reviews_blind)(project_id)  # after joining: no gap
        seq = await database_sync_to_async(current_sequence)(project_id)  # events after this one will reach us
        await self.accept()
        await self.send_json({"type": "hello", "project": project_id, "role": role, "seq": seq})

    async def disconnect(self, code):
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "ping":  # lets the browser measure the round trip
            await self.send_json({"type": "pong", "t": content.get("t")})

    async def project_event(self, message):
        if getattr(self, "role", None) is None:  # revoked: nothing more leaves for this socket
            return
        event = message["event"]
        if event.get("type") == "review.settings":  # arrives in order, before any event it applies to
            self.blind = bool((event.get("settings") or {}).get("blind"))
        # Blind review: drop the values this user may not see (boneage.review.visibility). Without blind review
        # nothing is hidden, so no database round trip per event and socket: under load (50 sockets) those queued
        # behind Daphne's few database threads until channels-redis expired the events (docs/benchmarks.md, load).
        if self.blind and carries_values(event):
            event = await database_sync_to_async(live_event)(event, self.scope["user"], self.project_id)
        if event is not None:
            await self.send_json(event)

    async def membership_changed(self, message):
        """The user's membership of some project changed: this socket takes the new role the message carries (None:
        removed) at once, before any later event is handled; a message without one is checked in the database."""
        if message.get("project") != self.project_id:
            return
        if "role" in message:
            role = message["role"]
        else:
            role = await database_sync_to_async(membership_role)(self.scope["user"], self.project_id)
        if role is None:
            self.role = None
            await self.send_json({"type": "access.revoked", "project": self.project_id})
            await self.close(code=CLOSE_NOT_A_MEMBER)
        elif role != self.role:
            self.role = role
            await self.send_json({"type": "access.changed", "project": self.project_id, "role": role})


def project_reviews_blind(project_id: int) -> bool:
    project = Project.objects.filter(pk=project_id).first()
    return project is not None and bool(review_settings(project)["blind"])
