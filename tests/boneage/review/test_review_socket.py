"""Review events reach the members' sockets with the open count; an outsider's socket gets nothing."""
from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from boneage.asgi import application
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


def cookie_of(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(project_id, cookie: bytes):
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)]
    communicator = WebsocketCommunicator(application, f"/ws/projects/{project_id}/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


def test_a_member_sees_review_queued_and_resolved_with_the_open_count(project, member, reviewer, make_study, model_version):
    from boneage.modeling.models import Prediction
    from boneage.review.actions import check_decision, do_resolve
    from boneage.review.hooks import study_changed
    from boneage.review.models import ReviewItem

    study = make_study(100)
    version = model_version()

    def make_disagreement():
        Prediction.objects.create(study=study, model_version=version, age_months=160, std_months=5, out_of_fold=True)
        study_changed(study.pk, "prediction")

    def decide():
        item = ReviewItem.objects.get(study=study)
        do_resolve(item.pk, reviewer, check_decision(item, {"decision": "accept_model"}, None))

    cookies = [cookie_of(member), cookie_of(reviewer)]

    async def scenario():
        sockets = []
        for cookie in cookies:
            communicator, connected, _ = await connect(project.pk, cookie)
            assert connected
            assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
            sockets.append(communicator)
        await database_sync_to_async(make_disagreement)()
        queued = [await socket.receive_json_from(timeout=5) for socket in sockets]
        await database_sync_to_async(decide)()
        seen = []
        for socket in sockets:
            events = [await socket.receive_json_from(timeout=5) for _ in range(2)]
            seen.append({event["type"]: event for event in events})
            await socket.disconnect()
        return queued, seen

    queued, seen = async_to_sync(scenario)()
    for event in queued:
        assert event["type"] == "review.queued" and event["open_count"] == 1 and event["study"] == study.pk
        assert "months" not in str(event)  # events carry no values: blind review stays blind
    for events in seen:
        assert events["review.resolved"]["open_count"] == 0 and events["review.resolved"]["decision"] == "accept_model"
        assert "label.saved" in events


def test_an_outsiders_socket_is_refused_and_gets_no_review_event(project, outsider):
    cookie = cookie_of(outsider)

    async def scenario():
        communicator, connected, code = await connect(project.pk, cookie)
        await communicator.disconnect()
        return connected, code

    connected, code = async_to_sync(scenario)()
    assert not connected and code == 4404
