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


async def greeted_sockets(project_id, cookies: list[bytes]) -> list:
    """One connected socket per cookie, each past its "hello"."""
    sockets = []
    for cookie in cookies:
        communicator, connected, _ = await connect(project_id, cookie)
        assert connected and (await communicator.receive_json_from(timeout=5))["type"] == "hello"
        sockets.append(communicator)
    return sockets


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


def test_in_blind_review_a_labelers_socket_gets_no_other_labelers_age_nor_a_priority(project, member, second_labeler,
                                                                                     reviewer, make_study):
    """max_member's socket sees his own label's value, not lena's, and the queued item without its priority; the
    reviewer's socket gets no priority either while the item waits for his own reading."""
    from boneage.annotations.actions import do_save_label

    project.settings = {"review": {"blind": True}}
    project.save()
    study = make_study()
    cookies = [cookie_of(member), cookie_of(reviewer)]

    async def scenario():
        sockets = await greeted_sockets(project.pk, cookies)
        await database_sync_to_async(do_save_label)(study, 100.5, author=member, enforce_base=False)
        mine = [await socket.receive_json_from(timeout=5) for socket in sockets]
        await database_sync_to_async(do_save_label)(study, 140.5, author=second_labeler, enforce_base=False)
        theirs = [{event["type"]: event for event in [await socket.receive_json_from(timeout=5) for _ in range(2)]}
                  for socket in sockets]
        for socket in sockets:
            await socket.disconnect()
        return mine, theirs

    mine, theirs = async_to_sync(scenario)()
    labeler_sees, reviewer_sees = theirs
    assert mine[0]["months"] == 100.5  # his own value comes back to him
    assert labeler_sees["label.saved"]["months"] is None and labeler_sees["label.saved"]["values_hidden"] is True
    assert labeler_sees["review.queued"]["priority"] is None and labeler_sees["review.queued"]["open_count"] == 1
    assert reviewer_sees["review.queued"]["priority"] is None  # the item waits for his blind reading
    assert labeler_sees["label.saved"]["label"] == reviewer_sees["label.saved"]["label"]  # what happened still arrives


def test_in_blind_review_the_models_age_reaches_no_socket_before_the_reading_but_does_elsewhere(
        project, member, second_labeler, reviewer, make_study):
    """The live prediction events follow the predictions API: hidden on a study with an open item the viewer has not
    read (a labeler: always), shown on a study without one."""
    from boneage.annotations.actions import do_save_label
    from boneage.live.events import send_now

    project.settings = {"review": {"blind": True}}
    project.save()
    disputed, quiet = make_study(), make_study()
    do_save_label(disputed, 100.5, author=member, enforce_base=False)
    do_save_label(disputed, 140.5, author=second_labeler, enforce_base=False)
    cookies = [cookie_of(member), cookie_of(reviewer)]

    async def scenario():
        sockets = await greeted_sockets(project.pk, cookies)
        for study in (disputed, quiet):
            await database_sync_to_async(send_now)(project.pk, {"type": "prediction.age", "study": study.pk,
                                                                 "age_months": 170.5, "std_months": 5.0})
        seen = [[await socket.receive_json_from(timeout=5) for _ in range(2)] for socket in sockets]
        for socket in sockets:
            await socket.disconnect()
        return seen

    for events in async_to_sync(scenario)():
        on_disputed, on_quiet = events
        assert on_disputed["study"] == disputed.pk and on_disputed["age_months"] is None
        assert on_disputed["values_hidden"] is True and on_disputed["std_months"] is None
        assert on_quiet["study"] == quiet.pk and on_quiet["age_months"] == 170.5
