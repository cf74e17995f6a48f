"""The project socket against the real Daphne and the real Redis: it stays up when idle, and the origin check
compares scheme, host and port."""
from __future__ import annotations

import pytest
from boneage.live.events import publish
from django.test import Client

from tests.ws_client import SocketClosed, WebsocketClient

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

IDLE_S = 65


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def ws_url(base_url: str, project_id: int) -> str:
    return base_url.replace("http://", "ws://") + f"/ws/projects/{project_id}/"


def test_an_idle_socket_stays_up_for_a_minute_and_receives_the_next_event(
        project, member, live_asgi_server, asgi_server_log):
    socket = WebsocketClient(ws_url(live_asgi_server, project.pk), origin=live_asgi_server, cookie=session_cookie(member))
    try:
        assert socket.receive_json()["type"] == "hello"
        with pytest.raises(TimeoutError):  # idle: nothing arrives, the server's pings are answered meanwhile
            socket.receive_json(timeout=IDLE_S)
        publish(project.pk, "study.ingested", study=7)
        event = socket.receive_json(timeout=10)
    finally:
        socket.close()
    assert event["type"] == "study.ingested" and event["study"] == 7
    server_log = asgi_server_log.read_text() if asgi_server_log.exists() else ""
    assert "Exception inside application" not in server_log and "Timeout reading" not in server_log, server_log


@pytest.mark.parametrize("origin_of", [
    lambda base: base.replace("http://", "https://"),                      # another scheme
    lambda base: base.rsplit(":", 1)[0] + ":9999",                         # another port
    lambda base: "http://127.0.0.1",                                       # another host, no port
])
def test_a_socket_from_another_scheme_host_or_port_is_refused(project, member, live_asgi_server, origin_of):
    with pytest.raises(SocketClosed):
        socket = WebsocketClient(ws_url(live_asgi_server, project.pk), origin=origin_of(live_asgi_server),
                                 cookie=session_cookie(member))
        socket.receive_json(timeout=10)


def test_a_socket_from_the_pages_own_origin_is_accepted(project, member, live_asgi_server):
    socket = WebsocketClient(ws_url(live_asgi_server, project.pk), origin=live_asgi_server, cookie=session_cookie(member))
    try:
        assert socket.receive_json()["type"] == "hello"
    finally:
        socket.close()
