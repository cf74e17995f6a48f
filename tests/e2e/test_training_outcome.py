"""A trainer reads on the models page what a run truly did (issue 32, row 2): a fine-tune the time cap cut and that
shipped its start's weights says "no change" and why, and no new version appears with a Promote button."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import TINY_TRAINING

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def a_wrecked_fine_tune(project, owner):
    """A fine-tune of v1 at a learning rate of 1.0, cut by a 10-s time cap: its weights end worse than v1's."""
    from boneage.modeling.training import check_run_request, do_start_training, run_training
    from django.db import connection

    try:
        run = do_start_training(project, actor=owner, enqueue=False, config=check_run_request(
            project, {"init": "active", "epochs": 200, "lr": 1.0, "max_seconds": 10}))
        run_training(run.pk)
        return run
    finally:
        connection.close()  # this helper thread's own connection


def test_a_run_that_kept_its_start_says_no_change_and_offers_nothing_to_promote(
        live_asgi_server, project, owner, trainer, add_studies, register_model, page_as):
    project.settings = {**project.settings, "training": TINY_TRAINING}
    project.save(update_fields=["settings"])
    with ThreadPoolExecutor(1) as pool:  # ingest and training publish live events: not beside Playwright's loop
        pool.submit(add_studies, project, owner, 14).result()
        register_model(project, name="v1")
        pool.submit(a_wrecked_fine_tune, project, owner).result()

    tina = page_as(trainer)
    tina.goto(f"{live_asgi_server}/projects/{project.pk}/models/")
    expect(tina.locator("#run-state")).to_have_text("succeeded")
    expect(tina.locator("#run-text")).to_contain_text("no change, kept v1: the time cap (10 s) ended the run after")
    expect(tina.locator("#run-text")).to_contain_text("no new version was registered")
    expect(tina.locator("#versions tr[data-version]")).to_have_count(1)
    expect(tina.locator("#versions [data-promote]")).to_have_count(0)
