"""Settings are typed and fail at boot; the production profile passes `check --deploy`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # A clean boot: none of the variables that the test session itself set (DJANGO_ALLOW_ASYNC_UNSAFE by the browser tests).
    unset = ("DATABASE_URL", "SECRET_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    environment.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    "variable,value,message",
    [
        ("DEBUG", "perhaps", "DEBUG='perhaps' is not a boolean"),
        ("UPLOAD_MAX_BYTES", "lots", "UPLOAD_MAX_BYTES='lots' is not an integer"),
        ("REDIS_URL", "http://localhost", "must start with redis://"),
        ("BONEAGE_PROFILE", "staging", "must be one of dev, test, prod"),
        ("DICOMWEB_BASE_URL", "boneage.example.org", "must be an http:// or https:// URL"),
        ("DICOMWEB_BASE_URL", "https://boneage.example.org/?x=1", "no query"),
        ("DICOMWEB_BASE_URL", "https://boneage.example.org:port", "is not a URL"),
        ("DICOM_PORT", "dicom", "DICOM_PORT='dicom' is not an integer"),
        ("DICOM_PORT", "70000", "DICOM_PORT=70000 is not a TCP port"),
        ("DICOM_PORT", "0", "DICOM_PORT=0 is below its minimum 1"),
        ("DECODE_MEMORY_MB", "100", "DECODE_MEMORY_MB=100 is below its minimum 256"),
        ("DECODE_TIMEOUT_S", "300", "DECODE_TIMEOUT_S=300 must stay under the derive task's 120-s soft limit"),
        ("WORKER_MAX_MEMORY_PER_CHILD_MB", "plenty", "WORKER_MAX_MEMORY_PER_CHILD_MB='plenty' is not an integer"),
    ],
)
def test_a_bad_setting_stops_the_boot_with_a_clear_message(variable, value, message, tmp_path):
    result = run_manage("check", **{variable: value, "BONEAGE_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_production_requires_a_secret_key(tmp_path):
    result = run_manage("check", BONEAGE_PROFILE="prod", ALLOWED_HOSTS="bones.example.org", BONEAGE_VAR_DIR=str(tmp_path))
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_a_secret_can_come_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz!")
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", BONEAGE_PROFILE="prod",
                        SECRET_KEY_FILE=str(secret), ALLOWED_HOSTS="bones.example.org", BONEAGE_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr


def test_check_deploy_is_clean_under_the_production_profile(tmp_path):
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", BONEAGE_PROFILE="prod",
                        SECRET_KEY="k3y-" + "abcdefghij0123456789" * 3, ALLOWED_HOSTS="bones.example.org", BONEAGE_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_visibility_timeout_outlasts_the_longest_task(settings):
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] > settings.TRAINING_HARD_TIME_LIMIT_S


def test_the_network_tasks_go_to_the_gpu_queue_and_the_rest_to_cpu():
    from boneage.celery import app

    app.loader.import_default_modules()
    queues = {name: app.amqp.router.route({}, name)["queue"].name for name in app.tasks if not name.startswith("celery.")}
    gpu = {name for name, queue in queues.items() if queue == "gpu"}
    assert gpu == {"modeling.predict_study", "modeling.train", "modeling.repredict"}  # rescoring is part of repredict
    assert {queue for name, queue in queues.items() if name not in gpu} == {"cpu"}
    assert "review.evaluate_studies" in queues and "annotations.automask" in queues


def test_a_cpu_worker_child_is_replaced_past_its_memory_and_a_decode_ends_inside_the_derive_task_s_limit(settings):
    from boneage.celery import app
    from boneage.pipeline.tasks import post_ingest

    assert app.conf.worker_max_memory_per_child == settings.WORKER_MAX_MEMORY_PER_CHILD_MB * 1024  # Celery counts KiB
    assert settings.DECODE_TIMEOUT_S < post_ingest.soft_time_limit  # a hung decoder is the child's end, not the task's
