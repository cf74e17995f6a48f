"""The project websocket: session auth, origin check, members only, events on commit."""
from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from boneage.asgi import application
from boneage.live.events import publish
from channels.testing import WebsocketCommunicator
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def open_socket(project_id: int, cookie: bytes | None, origin: bytes = b"http://localhost"):
    headers = [(b"origin", origin), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", cookie))
    communicator = WebsocketCommunicator(application, f"/ws/projects/{project_id}/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


def test_a_member_joins_and_receives_events_published_on_commit(project, member):
    cookie = session_cookie(member)

    async def scenario():
        communicator, connected, _ = await open_socket(project.pk, cookie)
        assert connected
        assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
        from channels.db import database_sync_to_async

        await database_sync_to_async(publish)(project.pk, "study.ingested", study=7)
        event = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return event

    assert async_to_sync(scenario)() == {"type": "study.ingested", "study": 7}


@pytest.mark.parametrize("who", ["outsider", "anonymous"])
def test_an_outsider_or_anonymous_socket_is_closed_without_a_word(project, outsider, who):
    cookie = session_cookie(outsider) if who == "outsider" else None

    async def scenario():
        communicator, connected, code = await open_socket(project.pk, cookie)
        await communicator.disconnect()
        return connected, code

    connected, code = async_to_sync(scenario)()
    assert not connected and code in (4401, 4404)


def test_a_socket_from_a_foreign_origin_is_refused(project, member):
    cookie = session_cookie(member)

    async def scenario():
        communicator, connected, _ = await open_socket(project.pk, cookie, origin=b"http://evil.example")
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False
