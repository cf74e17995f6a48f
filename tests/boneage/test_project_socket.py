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


async def greeted_socket(project_id: int, cookie: bytes):
    """An open socket of a member, past its hello: (communicator, hello)."""
    communicator, connected, _ = await open_socket(project_id, cookie)
    assert connected
    hello = await communicator.receive_json_from(timeout=5)
    assert hello["type"] == "hello"
    return communicator, hello


def without_seq(event: dict) -> dict:
    return {key: value for key, value in event.items() if key != "seq"}


def test_a_member_joins_and_receives_events_published_on_commit_numbered_one_after_the_other(project, member):
    cookie = session_cookie(member)

    async def scenario():
        communicator, hello = await greeted_socket(project.pk, cookie)
        from channels.db import database_sync_to_async

        await database_sync_to_async(publish)(project.pk, "study.ingested", study=7)
        await database_sync_to_async(publish)(project.pk, "study.ingested", study=8)
        events = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
        await communicator.disconnect()
        return hello, events

    hello, events = async_to_sync(scenario)()
    assert [without_seq(e) for e in events] == [{"type": "study.ingested", "study": 7}, {"type": "study.ingested", "study": 8}]
    # the hello says where the project's numbering stands; a page that sees a gap after it reloads what it shows
    assert [e["seq"] for e in events] == [hello["seq"] + 1, hello["seq"] + 2]


@pytest.mark.parametrize("who", ["outsider", "anonymous"])
def test_an_outsider_or_anonymous_socket_is_closed_without_a_word(project, outsider, who):
    cookie = session_cookie(outsider) if who == "outsider" else None

    async def scenario():
        communicator, connected, code = await open_socket(project.pk, cookie)
        await communicator.disconnect()
        return connected, code

    connected, code = async_to_sync(scenario)()
    assert not connected and code in (4401, 4404)


def connects(project_id: int, cookie: bytes, origin: bytes) -> bool:
    async def scenario():
        communicator, connected, _ = await open_socket(project_id, cookie, origin=origin)
        await communicator.disconnect()
        return connected

    return async_to_sync(scenario)()


@pytest.mark.parametrize("origin", [b"http://evil.example", b"http://localhost:9999", b"https://localhost",
                                    b"http://127.0.0.1"])
def test_a_socket_from_a_foreign_origin_or_another_port_or_scheme_is_refused(project, member, origin):
    assert connects(project.pk, session_cookie(member), origin) is False


def test_removing_a_member_closes_their_open_socket_at_once_and_sends_them_nothing_more(project, member):
    from boneage.studies.models import Membership
    from channels.db import database_sync_to_async

    cookie = session_cookie(member)

    async def scenario():
        communicator, _ = await greeted_socket(project.pk, cookie)
        await database_sync_to_async(Membership.objects.filter(project=project, user=member).delete)()
        revoked = await communicator.receive_json_from(timeout=1)
        closed = await communicator.receive_output(timeout=1)
        await database_sync_to_async(publish)(project.pk, "study.ingested", study=8)
        nothing_more = await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()
        return revoked, closed, nothing_more

    revoked, closed, nothing_more = async_to_sync(scenario)()
    assert revoked == {"type": "access.revoked", "project": project.pk}
    assert closed == {"type": "websocket.close", "code": 4404}
    assert nothing_more


def test_lowering_a_role_rescopes_the_open_socket_with_the_new_role(project, owner, member):
    from boneage.studies.actions import do_set_role
    from channels.db import database_sync_to_async

    cookie = session_cookie(member)

    async def scenario():
        communicator, hello = await greeted_socket(project.pk, cookie)
        await database_sync_to_async(do_set_role)(project, member, "trainer", actor=owner)
        changed = await communicator.receive_json_from(timeout=1)
        await database_sync_to_async(publish)(project.pk, "study.ingested", study=9)
        still_live = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return hello, changed, still_live

    hello, changed, still_live = async_to_sync(scenario)()
    assert hello["role"] == "labeler"
    assert changed == {"type": "access.changed", "project": project.pk, "role": "trainer"}
    assert without_seq(still_live) == {"type": "study.ingested", "study": 9}


def test_a_socket_from_an_origin_in_csrf_trusted_origins_is_accepted(project, member, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["http://localhost:8443"]  # e.g. a proxy on another port
    assert connects(project.pk, session_cookie(member), b"http://localhost:8443") is True


def test_a_removed_members_socket_is_revoked_within_a_second_even_while_its_database_thread_is_busy(project, member):
    """Issue 32, row 13: under load the socket's access check queued behind the web process's database threads. Here
    the socket's one database thread is held for 3 s by other work while the member is removed: the socket still says
    access.revoked and closes within a second, and forwards nothing published after the removal."""
    import asyncio
    import time

    from asgiref.sync import sync_to_async
    from boneage.studies.models import Membership
    from channels.db import database_sync_to_async

    cookie = session_cookie(member)

    def elsewhere(work):  # another process's work: not on the socket's database thread
        return sync_to_async(work, thread_sensitive=False)

    async def scenario():
        communicator, _ = await greeted_socket(project.pk, cookie)
        busy = asyncio.ensure_future(database_sync_to_async(time.sleep)(3))  # the socket's database thread, taken
        await asyncio.sleep(0.1)
        removed_at = time.monotonic()
        await elsewhere(lambda: Membership.objects.filter(project=project, user=member).delete())()
        await elsewhere(lambda: publish(project.pk, "study.ingested", study=10))()
        received = []
        while not received or received[-1][1]["type"] != "websocket.close":  # everything until the socket closes
            try:
                received.append((time.monotonic() - removed_at, await communicator.receive_output(timeout=5)))
            except TimeoutError:
                break
        await busy
        await communicator.disconnect()
        return received

    received = async_to_sync(scenario)()
    (revoked_after, revoked), (closed_after, closed) = received[0], received[-1]
    assert '"access.revoked"' in revoked.get("text", "") and revoked_after < 1.0
    assert closed == {"type": "websocket.close", "code": 4404} and closed_after < 1.0
    assert not any('"study.ingested"' in message.get("text", "") for _, message in received)
