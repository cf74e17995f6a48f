"""An admin sets the project's training defaults in a real browser, and the models page tells a trainer what a run
started with a blank epochs field will get."""
from __future__ import annotations

import pytest
from boneage.modeling.defaults import training_defaults
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_models_page_shows_the_default_epochs_and_follows_the_settings_page(page_as, live_asgi_server, owner,
                                                                                 project):
    platform = training_defaults(project).platform
    admin = page_as(owner)
    admin.goto(f"{live_asgi_server}/projects/{project.pk}/models/")
    epochs = admin.locator("#run-form input[name=epochs]")
    expect(epochs).to_have_attribute("placeholder", f"default {platform['fine_tune']['epochs']}")
    admin.select_option("#run-form select[name=init]", "fresh")
    expect(epochs).to_have_attribute("placeholder", f"default {platform['from_scratch']['epochs']}")

    admin.goto(f"{live_asgi_server}/projects/{project.pk}/settings/")
    admin.fill("#training-form input[name=epochs]", "7")
    admin.select_option("#training-form select[name=uncertainty]", "mc")
    expect(admin.locator("#training-form select[name=next_case_strategy] option").first).to_have_text("default (coreset)")
    admin.select_option("#training-form select[name=next_case_strategy]", "random")
    admin.click("#training-form button[type=submit]")
    expect(admin.locator(".messages")).to_contain_text("Saved")
    expect(admin.locator("#training-form input[name=epochs]")).to_have_value("7")

    admin.goto(f"{live_asgi_server}/projects/{project.pk}/models/")
    expect(epochs).to_have_attribute("placeholder", "default 7")
    project.refresh_from_db()
    assert project.settings["training"] == {"epochs": 7, "uncertainty": "mc"}
    assert project.settings["next_case_strategy"] == "random"
