"""/healthz names the part that is down, /livez only needs the process, /metrics speaks Prometheus."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from boneage.ops.metrics import record_task
from boneage.studies.actions import do_ingest
from prometheus_client.parser import text_string_to_metric_families

from ml.phantoms import render
from tests.dicom_factory import png_bytes
from tests.live_support import wait_for

REPO = Path(__file__).resolve().parents[3]

HEALTHZ_IN_A_FRESH_PROCESS = """
import django, json
django.setup()
from django.test import Client
response = Client().get("/healthz")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


def healthz_with(**env: str) -> dict:
    """Boot a separate Django process whose settings point at the given peers (by default this test run's own
    database and Redis) and ask it /healthz."""
    from django.db import connection

    db = connection.settings_dict
    own_database = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    full_env = {**os.environ, "BONEAGE_PROFILE": "test", "DJANGO_SETTINGS_MODULE": "boneage.settings",
                "DATABASE_URL": own_database, **env}
    out = subprocess.run([sys.executable, "-c", HEALTHZ_IN_A_FRESH_PROCESS], cwd=REPO, env=full_env,
                         capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def metric_samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.mark.django_db
def test_healthz_is_ok_when_database_redis_and_storage_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["checks"]) == {"database", "redis", "storage"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db
def test_healthz_answers_503_naming_redis_when_redis_is_down():
    result = healthz_with(REDIS_URL="redis://127.0.0.1:1/0")
    assert result["status"] == 503
    assert result["body"]["failing"] == ["redis"]
    assert "Connection" in result["body"]["checks"]["redis"]["error"]
    assert result["body"]["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_healthz_answers_503_naming_the_database_when_it_is_down():
    result = healthz_with(DATABASE_URL="postgres://postgres@127.0.0.1:1/absent")
    assert result["status"] == 503
    assert result["body"]["failing"] == ["database"]
    assert result["body"]["checks"]["redis"]["ok"] is True


@pytest.mark.django_db
def test_healthz_names_storage_when_the_media_folder_cannot_be_written(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the media folder should be")
    result = healthz_with(MEDIA_ROOT=str(blocked / "media"))
    assert result["status"] == 503
    assert result["body"]["failing"] == ["storage"]


def test_livez_needs_nothing_but_the_process(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert client.get("/livez").json() == {"status": "ok"}


@pytest.mark.django_db
def test_metrics_are_off_unless_enabled(client, settings):
    settings.METRICS_ENABLED = False
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.django_db
def test_metrics_count_requests_by_route_and_show_task_durations_queues_and_rows(client, settings):
    settings.METRICS_ENABLED = True
    settings.MIDDLEWARE = ["boneage.ops.metrics.RequestMetricsMiddleware", *settings.MIDDLEWARE]
    before = metric_samples(client.get("/metrics").content.decode())
    client.get("/livez")
    client.get("/livez")
    record_task("tests.metrics_probe", "SUCCESS", 0.3)
    response = client.get("/metrics")
    assert response["Content-Type"].startswith("text/plain")
    after = metric_samples(response.content.decode())

    livez = ("boneage_http_requests_total", (("method", "GET"), ("route", "livez"), ("status", "200")))
    assert after[livez] - before.get(livez, 0) == 2
    count = ("boneage_task_duration_seconds_count", (("task", "tests.metrics_probe"),))
    assert after[count] - before.get(count, 0) == 1
    under_half_a_second = ("boneage_task_duration_seconds_bucket", (("le", "0.5"), ("task", "tests.metrics_probe")))
    under_a_tenth = ("boneage_task_duration_seconds_bucket", (("le", "0.1"), ("task", "tests.metrics_probe")))
    assert after[under_half_a_second] - before.get(under_half_a_second, 0) == 1
    assert after[under_a_tenth] == before.get(under_a_tenth, 0)
    assert ("boneage_queue_depth", (("queue", "gpu"),)) in after
    assert ("boneage_studies", ()) in after and ("boneage_predictions", ()) in after


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_worker_announces_its_device_and_its_tasks_show_up_in_the_metrics(celery_worker, client, settings,
                                                                          project, owner):
    settings.METRICS_ENABLED = True
    before = metric_samples(client.get("/metrics").content.decode())
    post_ingest = ("boneage_task_duration_seconds_count", (("task", "studies.post_ingest"),))
    do_ingest(project, owner, png_bytes(render(90, 1, seed=3, size=192).image), "hand.png")

    def recorded():
        now = metric_samples(client.get("/metrics").content.decode())
        return now if now.get(post_ingest, 0) > before.get(post_ingest, 0) else None

    after = wait_for(recorded, timeout=60)
    devices = [labels for (name, labels) in after if name == "boneage_worker_info"]
    assert any(dict(labels)["device"].endswith("/cpu") for labels in devices)
