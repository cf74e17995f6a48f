"""The project socket: authenticate, check membership, subscribe. Pushes come from live.events."""
from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from boneage.live.events import project_group
from boneage.review.visibility import carries_values, live_event
from boneage.studies.access import membership_role


class ProjectConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        project_id = int(self.scope["url_route"]["kwargs"]["project_id"])
        if not user or not user.is_authenticated:
            await self.close(code=4401)
            return
        role = await database_sync_to_async(membership_role)(user, project_id)
        if role is None:  # outsiders learn nothing, not even that the project exists
            await self.close(code=4404)
            return
        self.project_id = project_id
        self.group = project_group(project_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "project": project_id, "role": role})

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "ping":  # lets the browser measure the round trip
            await self.send_json({"type": "pong", "t": content.get("t")})

    async def project_event(self, message):
        event = message["event"]
        if carries_values(event):  # blind review: drop the values this user may not see (boneage.review.visibility)
            event = await database_sync_to_async(live_event)(event, self.scope["user"], self.project_id)
        if event is not None:
            await self.send_json(event)
