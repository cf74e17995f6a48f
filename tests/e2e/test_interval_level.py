"""One interval level everywhere: a project that states 80 % intervals shows the same 80 % interval, with the same
bounds the API gives, on the study page, in the worklist and in the review queue."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import disagreeing_study
from tests.live_support import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCORES = [0.4, 0.7, 0.9, 1.1, 1.3, 1.6, 1.9, 2.2, 2.6, 3.0]  # the version's validation |error| / std


@pytest.fixture
def disagreement_at_80_percent(project, owner, make_user):
    """A study labelled 100 months that the active model reads as 150 ± 5; the project states 80 % intervals."""
    from boneage.studies.actions import do_set_role

    project.interval_level = 0.8
    project.save()
    reviewer = make_user("rita_reviewer")
    do_set_role(project, reviewer, "reviewer", actor=owner)
    study = disagreeing_study(project, owner, {"val_mae": 9.0, "interval_scores": SCORES})
    return reviewer, study


def test_the_study_page_the_worklist_and_the_review_queue_state_the_projects_one_interval(
        live_asgi_server, browser_page, api_as, disagreement_at_80_percent):
    reviewer, study = disagreement_at_80_percent
    latest = api_as(reviewer).get(f"/api/studies/{study.pk}/predictions/latest/").json()
    low, high = latest["interval_months"]
    assert latest["interval_level"] == 0.8 and low < 150 < high
    stated = f"80% interval {low:.1f}–{high:.1f}"

    page = browser_page
    login(page, live_asgi_server, reviewer.username, f"{reviewer.username}-Pass-123")
    page.goto(f"{live_asgi_server}/studies/{study.pk}/")
    expect(page.locator("#pred-interval")).to_contain_text(stated)

    page.goto(f"{live_asgi_server}/projects/{study.project_id}/")
    reading = page.locator(f"tr[data-study='{study.pk}'] span[title*='interval']")
    expect(reading).to_have_attribute("title", f"{stated} months (std 5.0)")
    expect(reading).to_contain_text(f"{low:.0f}–{high:.0f}")

    page.goto(f"{live_asgi_server}/projects/{study.project_id}/review/")
    page.locator("#queue tr[data-item]").first.click()
    page.locator("#detail").filter(has_text=f"150.0 months ({stated})").wait_for(timeout=10000)
    assert "90%" not in page.locator("#detail").inner_text()


def test_an_interval_too_few_held_out_studies_cannot_calibrate_says_so_on_the_study_page_and_in_the_worklist(
        live_asgi_server, browser_page, project, owner):
    project.interval_level = 0.95
    project.save()
    study = disagreeing_study(project, owner, {"val_mae": 9.0, "interval_scores": SCORES})  # 10 studies; 95 % needs 19
    note = ("10 held-out studies cannot calibrate a 95% interval (it needs 19), so it is the project's whole age range: "
            "lower the interval level or train on more labelled studies.")
    page = browser_page
    login(page, live_asgi_server, owner.username, f"{owner.username}-Pass-123")
    page.goto(f"{live_asgi_server}/studies/{study.pk}/")
    expect(page.locator("#pred-interval")).to_contain_text("95% interval 0.0–240.0")
    expect(page.locator("#pred-calibration")).to_have_text(note)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/")
    expect(page.locator(f"tr[data-study='{study.pk}'] span[title*='interval']")).to_have_attribute(
        "title", f"95% interval 0.0–240.0 months (std 5.0)\n{note}")


def test_an_interval_pooled_with_an_earlier_models_scores_is_stated_with_the_calibration_it_used(
        live_asgi_server, browser_page, api_as, project, owner):
    project.interval_level = 0.95
    project.save()
    earlier = [round(0.05 * i, 2) for i in range(1, 41)]  # v1's 40 held-out scores
    study = disagreeing_study(project, owner, {"val_mae": 9.0, "interval_scores": SCORES,
                                               "interval_fallback": [{"source": "v1", "scores": earlier}]})
    latest = api_as(owner).get(f"/api/studies/{study.pk}/predictions/latest/").json()
    low, high = latest["interval_months"]
    assert latest["interval_calibration"] == "pooled" and 0 < low < 150 < high < 240
    note = ("This model's 10 held-out studies are too few for a 95% interval alone (it needs 19), so it is calibrated "
            "on them pooled with v1's 40 held-out studies.")
    page = browser_page
    login(page, live_asgi_server, owner.username, f"{owner.username}-Pass-123")
    page.goto(f"{live_asgi_server}/studies/{study.pk}/")
    expect(page.locator("#pred-interval")).to_contain_text(f"95% interval {low:.1f}–{high:.1f}")
    expect(page.locator("#pred-calibration")).to_have_text(note)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/")
    expect(page.locator(f"tr[data-study='{study.pk}'] span[title*='interval']")).to_have_attribute(
        "title", f"95% interval {low:.1f}–{high:.1f} months (std 5.0)\n{note}")
