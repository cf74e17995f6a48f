"""Every page, opened as a project admin, logs no console error and no request the page did not mean to fail
(favicon included; a study without a prediction asks whether one exists instead of fetching a 404)."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import phantom_dicom

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_no_page_logs_a_console_error_or_a_failing_request(page_as, live_asgi_server, owner, project, ingest):
    study = ingest(project, owner, phantom_dicom(120, True, seed=1))  # no model: the study has no prediction
    page = page_as(owner)
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
    page.on("response", lambda response: response.status >= 400 and problems.append(f"{response.status} {response.url}"))
    for path in ("/projects/", f"/projects/{project.pk}/", f"/studies/{study.pk}/", f"/projects/{project.pk}/review/",
                 f"/projects/{project.pk}/models/", f"/projects/{project.pk}/members/",
                 f"/projects/{project.pk}/settings/", "/accounts/password/"):
        page.goto(f"{live_asgi_server}{path}")
        page.wait_for_load_state("networkidle")
        if path.startswith("/studies/"):
            expect(page.locator("#prediction")).to_have_attribute("data-state", "none")
    assert not problems, problems
