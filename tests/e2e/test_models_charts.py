"""The models page's charts do not magnify noise and each version has one MAE (issue 32, row 9): v1's flat curve
(5.7157 → 5.7158) was drawn on a 5.7157–5.7158 axis as a steep rise, one point sat on a −0.5…1.5 axis, and the run
said "validation MAE 5.45" beside v1's 5.72."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def finished_run(project, owner):
    from boneage.modeling.models import ModelVersion, TrainingRun

    v1 = ModelVersion.objects.create(project=project, name="v1", checkpoint="models/v1.pt", sha256="0" * 64,
                                     status="active", metrics={"val_mae": 5.7204},
                                     validation_study_ids=list(range(1, 21)))
    curve = [{"epoch": 1, "step": 4, "loss": 0.3, "val_mae": 5.7157}, {"epoch": 2, "step": 8, "loss": 0.3001, "val_mae": 5.7158}]
    TrainingRun.objects.create(project=project, state="succeeded", config={"epochs": 10}, curve=curve, result=v1,
                               progress={"epoch": 2, "step": 8, "loss": 0.3001, "val_mae": 5.45, "total_epochs": 10})
    return v1


def test_a_flat_curve_reads_flat_on_an_axis_from_zero_to_the_planned_epochs_and_the_run_names_one_mae(
        live_asgi_server, project, member, finished_run, page_as):
    page = page_as(member)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/models/")
    text = page.locator("#run-text")
    expect(text).to_contain_text("→ v1: validation MAE 5.72 months on 20 held-out studies")
    expect(text).not_to_contain_text("5.45")
    expect(page.locator("#curve-chart polyline[data-series=val_mae]")).to_have_count(1)
    labels = page.eval_on_selector_all("#curve-chart .axis text", "texts => texts.map((t) => t.textContent)")
    assert not [t for t in labels if re.fullmatch(r"-?\d+\.\d{3,}", t)], labels  # no 5.7157-style ticks
    assert "10" in labels and "-0.5" not in labels  # the epochs run 0 … 10, the plan

    low, high = page.evaluate("import('/static/js/chart.js').then((c) => c.extent([5.7157, 5.7158], 0.05, 2))")
    assert high - low >= 2 and low < 5.7157 < high
    tiny = page.evaluate("import('/static/js/chart.js').then((c) => c.extent([0.0003, 0.00030001], 0.05))")
    assert tiny[1] - tiny[0] >= 0.00003  # at least a tenth of the values' size
    zero = page.evaluate("import('/static/js/chart.js').then((c) => c.extent([0, 0.5], 0.05, 2))")
    assert zero[0] == 0 and zero[1] >= 2  # a loss or an error never draws below zero
