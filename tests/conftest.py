"""Shared fixtures: personas (owner, member, outsider), a CSRF-enforcing client, temporary media."""
from __future__ import annotations

import pytest

pytest_plugins = ["tests.live_support", "tests.s3_support"]


def pytest_collection_modifyitems(items):
    """Browser tests last, whatever order the paths were given in: the session's Playwright keeps an event loop
    running in the main thread once started, and the socket tests' async_to_sync refuses to run beside it."""
    items.sort(key=lambda item: "chromium" in getattr(item, "fixturenames", ()))


@pytest.fixture(autouse=True)
def temporary_media(settings, tmp_path):
    """Each test writes its files under its own folder, so nothing leaks between tests."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def make_user(django_user_model):
    def make(username: str):
        return django_user_model.objects.create_user(username=username, password=f"{username}-Pass-123")

    return make


@pytest.fixture
def owner(make_user):
    return make_user("olivia_owner")


@pytest.fixture
def member(make_user):
    return make_user("max_member")


@pytest.fixture
def outsider(make_user):
    return make_user("oscar_outsider")


@pytest.fixture
def member_with_role(make_user, project, owner):
    """A new user who joins `project` with the given role (the owner adds them)."""
    from boneage.studies.actions import do_set_role

    def add(username: str, role: str):
        user = make_user(username)
        do_set_role(project, user, role, actor=owner)
        return user

    return add


@pytest.fixture
def trainer(member_with_role):
    return member_with_role("tina_trainer", "trainer")


@pytest.fixture
def reviewer(member_with_role):
    return member_with_role("rita_reviewer", "reviewer")


@pytest.fixture
def project(owner, member):
    from boneage.studies.actions import do_create_project, do_set_role

    project = do_create_project(owner, "Hands")
    do_set_role(project, member, "labeler", actor=owner)
    return project


@pytest.fixture
def api_as():
    """An API client logged in by session with CSRF enforced, like a browser."""
    from rest_framework.test import APIClient

    def client_for(user):
        client = APIClient(enforce_csrf_checks=True)
        client.force_login(user)
        client.get("/accounts/login/")  # sets the csrftoken cookie
        client.credentials(HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
        return client

    return client_for
