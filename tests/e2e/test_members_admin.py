"""An admin manages members in a real browser: a labeler added on the members page logs in and sees the project;
once removed, the labeler's REST access is gone. (Open sockets closing on removal: the live-events work.)"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_adds_a_labeler_who_sees_the_project_until_removed(page_as, live_asgi_server, owner, project, make_user):
    lena = make_user("lena_labeler")
    admin = page_as(owner)
    admin.on("dialog", lambda dialog: dialog.accept())  # the members page confirms role changes and removals
    admin.goto(f"{live_asgi_server}/projects/{project.pk}/members/")
    expect(admin.locator("#live-state")).to_be_hidden()  # no socket on this page: no "connecting…" that never ends
    admin.fill("#add-member input[name=username]", "lena_labeler")
    admin.select_option("#add-member select[name=role]", "labeler")
    admin.click("#add-member button[type=submit]")
    expect(admin.locator("#members tr[data-user=lena_labeler]")).to_contain_text("lena_labeler")

    labeler = page_as(lena)
    expect(labeler.locator(".project-list")).to_contain_text("Hands")
    expect(labeler.locator(".project-list")).to_contain_text("labeler")
    labeler.goto(f"{live_asgi_server}/projects/{project.pk}/")
    expect(labeler.locator("h1")).to_contain_text("Hands")
    expect(labeler.locator("#live-state")).to_have_text("live")  # the worklist's socket

    admin.click("#members tr[data-user=lena_labeler] button.danger")
    expect(admin.locator("#members tr[data-user=lena_labeler]")).to_have_count(0)
    expect(admin.locator(".messages")).to_contain_text("Removed lena_labeler")
    # the labeler's open page asks the API again: the project is gone for them
    status = labeler.evaluate(f"fetch('/api/projects/{project.pk}/worklist/').then(r => r.status)")
    assert status == 404
    labeler.goto(f"{live_asgi_server}/projects/")
    expect(labeler.locator(".project-list")).not_to_contain_text("Hands")


def test_the_settings_page_opens_no_socket_and_shows_no_live_badge(page_as, live_asgi_server, owner, project):
    page = page_as(owner)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/settings/")
    expect(page.locator("h1")).to_be_visible()
    expect(page.locator("#live-state")).to_be_hidden()
    page.goto(f"{live_asgi_server}/projects/{project.pk}/models/")
    expect(page.locator("#live-state")).to_have_text("live")
