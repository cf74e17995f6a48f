"""Predictions stream into an open study page; a trainer trains, watches and promotes models from the browser."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from boneage.modeling.models import ModelVersion
from boneage.modeling.tasks import enqueue_prediction
from django.core.files.storage import default_storage
from playwright.sync_api import expect

from tests.e2e.conftest import TINY_TRAINING, phantom_dicom
from tests.live_support import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ATTENTION = ["Att1_1", "Att2_1", "Att2_2", "Att3_1", "Att3_2", "Att3_3"]
RECORD_EVENTS = "window.__seen = []; document.addEventListener('live:event', (e) => __seen.push(e.detail.type))"


def test_a_labeler_watches_the_prediction_and_all_six_attention_maps_stream_into_the_open_study_page(
        celery_worker, live_asgi_server, project, owner, member, register_model, page_as):
    max_ = page_as(member)
    max_.goto(f"{live_asgi_server}/projects/{project.pk}/")
    max_.set_input_files("#upload input[type=file]", files=[
        {"name": "boy-9y.dcm", "mimeType": "application/dicom", "buffer": phantom_dicom(108, True, 31)}])
    max_.locator("#uploads li .status a").click()
    expect(max_.locator("#pred-age")).to_have_text("No model yet")  # the worker skipped it: no model yet
    study_id = int(max_.locator("#study").get_attribute("data-study"))
    max_.evaluate(RECORD_EVENTS)

    v1 = register_model(project, status="active", name="v1")
    enqueue_prediction(study_id)  # what ingest does when a model is active: the worker predicts, part by part
    expect(max_.locator("#prediction")).to_have_attribute("data-state", "ready", timeout=90_000)
    seen = [t for t in max_.evaluate("__seen") if t.startswith("prediction.")]
    # the ingest-time skip may reach the page after it first showed "No model yet" (the 404 of latest/): allowed
    # before the new prediction starts, nowhere else
    started = seen.index("prediction.started")
    assert set(seen[:started]) <= {"prediction.skipped"}, seen
    assert seen[started:] == ["prediction.started", "prediction.mask", "prediction.age", *["prediction.attention"] * 6,
                    "prediction.ready"], "the parts must stream in one by one, in the worker's order"
    expect(max_.locator("#pred-model")).to_contain_text("v1")
    expect(max_.locator("#pred-age")).to_contain_text(" y ")
    expect(max_.locator("#pred-interval")).to_contain_text("90% interval")
    expect(max_.locator("#att-count")).to_have_text("6")
    for name in ATTENTION:
        expect(max_.locator(f"[data-att='{name}']")).to_be_enabled()
    max_.locator("[data-att='Att2_1']").click()
    heatmap = max_.locator("img.attention-layer")
    expect(heatmap).to_have_attribute("data-name", "Att2_1")
    max_.wait_for_function("document.querySelector('img.attention-layer').naturalWidth > 0")
    max_.check("[data-toggle=model]")
    screenshot(max_, "07-prediction-and-attention-map-live")
    max_.locator("#att-opacity").fill("30")
    assert max_.evaluate("getComputedStyle(document.querySelector('img.attention-layer')).opacity") == "0.3"

    # Olivia promotes a candidate from the models page; the open study shows the new model's prediction.
    v2 = register_model(project, status="candidate", name="v2")
    olivia = page_as(owner)
    olivia.goto(f"{live_asgi_server}/projects/{project.pk}/models/")
    olivia.locator(f"tr[data-version='{v2.pk}']").get_by_role("button", name="Promote").click()
    confirm = olivia.locator("#promote-dialog")  # the two versions side by side before anything changes
    expect(confirm).to_contain_text("Make v2 active instead of v1?")
    expect(confirm.locator("thead")).to_contain_text("v1 (active now)")
    expect(olivia.locator(f"tr[data-version='{v2.pk}']")).to_have_attribute("data-status", "candidate")
    confirm.get_by_role("button", name="Make v2 active").click()
    expect(olivia.locator(f"tr[data-version='{v2.pk}']")).to_have_attribute("data-status", "active")
    expect(olivia.locator(f"tr[data-version='{v1.pk}']")).to_have_attribute("data-status", "retired")
    expect(max_.locator("#pred-model")).to_contain_text("v2", timeout=90_000)
    expect(max_.locator("#att-count")).to_have_text("6")
    folder = f"predictions/{project.pk}/{study_id}/v{v2.pk}"
    assert default_storage.exists(f"{folder}/attention-sheet.png") and not default_storage.exists(f"{folder}/Att3_3.png")
    max_.locator("[data-att='Att3_3']").click()  # the re-prediction stored a sheet: this first view draws the overlay
    max_.wait_for_function(f"(img => img && img.src.endsWith('/{v2.pk}/Att3_3.png') && img.complete && img.naturalWidth > 0)"
                           "(document.querySelector('img.attention-layer'))")


def test_a_trainer_starts_a_run_watches_the_progress_bar_and_curve_and_gets_a_new_active_model(
        celery_worker, live_asgi_server, project, owner, trainer, add_studies, page_as):
    project.settings = {**project.settings, "training": TINY_TRAINING}
    project.save(update_fields=["settings"])
    with ThreadPoolExecutor(1) as pool:  # ingest publishes live events: not beside Playwright's loop
        pool.submit(add_studies, project, owner, 14).result()
    tina = page_as(trainer)
    tina.goto(f"{live_asgi_server}/projects/{project.pk}/models/")
    expect(tina.locator("#active-summary")).to_contain_text("No model yet")
    tina.fill("#run-form input[name=epochs]", "3")
    tina.select_option("#run-form select[name=init]", "fresh")
    tina.get_by_role("button", name="Start training").click()
    bar = tina.locator("#run-progress")
    expect(tina.locator("#run-state")).to_have_text("running", timeout=60_000)
    tina.wait_for_function("+document.querySelector('#run-progress').getAttribute('aria-valuenow') > 0", timeout=120_000)
    first = int(bar.get_attribute("aria-valuenow"))
    screenshot(tina, "08-training-progress")
    tina.wait_for_function(f"+document.querySelector('#run-progress').getAttribute('aria-valuenow') > {first}",
                           timeout=120_000)  # it moves without a reload
    expect(tina.locator("#run-state")).to_have_text("succeeded", timeout=120_000)
    expect(tina.locator("#curve-chart polyline[data-series=val_mae]")).to_have_count(1)
    expect(tina.locator("#versions tr[data-status=active]")).to_contain_text("v1")
    expect(tina.locator("#active-summary")).to_contain_text("Active: v1")
    screenshot(tina, "09-models-page")
    # The worker re-predicts every study with v1; its validation studies fill the plots.
    # Which studies validate is a stable hash of their ids, and the ids depend on the tests run before.
    validation = ModelVersion.objects.get(project=project, status="active").validation_study_ids
    assert validation, "the split left no validation study"
    expect(tina.locator("#scatter-chart circle")).to_have_count(len(validation), timeout=90_000)
    expect(tina.locator("#ba-note")).to_contain_text("limits of agreement")
    tina.locator("#band-chart").scroll_into_view_if_needed()
    screenshot(tina, "10-models-validation-plots")
