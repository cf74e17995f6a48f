"""The deploy files are checked, not just written: every Kubernetes manifest against the Kubernetes schema,
the compose file with the engine's own config check where the engine is installed, and the links between them."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.urls import resolve

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES_VERSION = "1.33.0"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))


def documents() -> list[dict]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in documents() if doc["kind"] == kind}


def containers(deployment: dict) -> list[dict]:
    return deployment["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_is_valid_against_the_kubernetes_schema(path):
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_web_cpu_workers_and_gpu_workers_are_separate_deployments_whose_selectors_match():
    deployments = by_kind("Deployment")
    assert {"boneage-web", "boneage-worker-cpu", "boneage-worker-gpu"} <= set(deployments)
    for deployment in deployments.values():
        assert deployment["spec"]["selector"]["matchLabels"].items() <= \
            deployment["spec"]["template"]["metadata"]["labels"].items()


def test_gpu_workers_ask_for_one_gpu_each_serve_only_the_gpu_queue_and_never_fork():
    gpu = by_kind("Deployment")["boneage-worker-gpu"]
    spec = gpu["spec"]["template"]["spec"]
    assert "nvidia.com/gpu.present" in spec["nodeSelector"]
    (worker,) = containers(gpu)
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    command = worker["command"]
    assert command[command.index("-Q") + 1] == "gpu"
    assert command[command.index("-c") + 1] == "1"
    assert command[command.index("--pool") + 1] == "solo"
    cpu_command = containers(by_kind("Deployment")["boneage-worker-cpu"])[0]["command"]
    assert cpu_command[cpu_command.index("-Q") + 1] == "cpu"


def test_web_probes_point_at_health_urls_the_app_serves_and_an_autoscaler_targets_web():
    (web,) = containers(by_kind("Deployment")["boneage-web"])
    assert resolve(web["readinessProbe"]["httpGet"]["path"]).url_name == "healthz"
    assert resolve(web["livenessProbe"]["httpGet"]["path"]).url_name == "livez"
    hosts = by_kind("ConfigMap")["boneage-config"]["data"]["ALLOWED_HOSTS"].split(",")
    probe_host = {h["name"]: h["value"] for h in web["readinessProbe"]["httpGet"]["httpHeaders"]}["Host"]
    assert probe_host in hosts
    (hpa,) = by_kind("HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "boneage-web"
    assert web["resources"]["requests"]["cpu"]  # a CPU-utilisation autoscaler needs a request to divide by


def test_secrets_come_from_mounted_files_not_from_the_config_map():
    data = by_kind("ConfigMap")["boneage-config"]["data"]
    assert data["SECRET_KEY_FILE"].startswith("/run/secrets/")
    assert data["DATABASE_URL_FILE"].startswith("/run/secrets/")
    assert not {"SECRET_KEY", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY"} & set(data)
    for deployment in by_kind("Deployment").values():
        mounts = [m for c in containers(deployment) for m in c.get("volumeMounts", [])]
        assert any(m["mountPath"] == "/run/secrets/boneage" and m.get("readOnly") for m in mounts)


def test_the_compose_file_passes_the_engines_own_config_check():
    engine = next((cmd for cmd in (["docker", "compose"], ["docker-compose"], ["podman-compose"])
                   if shutil.which(cmd[0]) and subprocess.run([*cmd, "version"], capture_output=True,
                                                               check=False).returncode == 0), None)
    if engine is None:
        pytest.skip("no compose engine on this machine (docker compose, docker-compose or podman-compose)")
    env = DEPLOY / ".env"
    created = not env.exists()
    if created:
        env.write_text((DEPLOY / "env.example").read_text())
    try:
        result = subprocess.run([*engine, "-f", str(DEPLOY / "docker-compose.yml"), "config", "--quiet"],
                                capture_output=True, text=True, check=False)
    finally:
        if created:
            env.unlink()
    assert result.returncode == 0, result.stderr


def test_the_compose_file_runs_web_a_cpu_worker_and_a_gpu_worker_on_their_queues():
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    assert {"postgres", "redis", "web", "worker-cpu", "worker-gpu", "dicom-node"} <= set(services)
    assert services["worker-gpu"]["command"][services["worker-gpu"]["command"].index("-Q") + 1] == "gpu"
    assert services["worker-cpu"]["command"][services["worker-cpu"]["command"].index("-Q") + 1] == "cpu"


def test_sweep_orphans_runs_hourly_with_the_workers_image_environment_and_secrets_in_kubernetes_and_compose():
    from django.core.management import get_commands

    assert get_commands()["sweep_orphans"] == "boneage.studies"
    (cron,) = by_kind("CronJob").values()
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (sweep,) = pod["containers"]
    (worker,) = containers(by_kind("Deployment")["boneage-worker-cpu"])
    assert sweep["command"][:3] == ["python", "manage.py", "sweep_orphans"]
    assert int(sweep["command"][sweep["command"].index("--min-age-seconds") + 1]) >= 3600  # uploads in flight stay
    assert cron["spec"]["schedule"].split()[1:] == ["*", "*", "*", "*"]  # every hour
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    for key in ("image", "envFrom", "env", "volumeMounts"):
        assert sweep[key] == worker[key], key
    assert pod["volumes"] == by_kind("Deployment")["boneage-worker-cpu"]["spec"]["template"]["spec"]["volumes"]
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    loop = services["sweep-orphans"]["command"][-1]
    assert "python manage.py sweep_orphans --min-age-seconds 3600" in loop and "sleep 3600" in loop
    for key in ("build", "env_file", "volumes", "secrets"):
        assert services["sweep-orphans"][key] == services["worker-cpu"][key], key


def test_the_dicom_node_runs_its_command_on_the_port_its_service_exposes():
    (node,) = containers(by_kind("Deployment")["boneage-dicom-node"])
    assert node["command"][:3] == ["python", "manage.py", "dicom_node"]
    port = int(node["command"][node["command"].index("--port") + 1])
    assert node["ports"] == [{"name": "dicom", "containerPort": port}]
    service = by_kind("Service")["boneage-dicom"]
    assert service["spec"]["selector"] == {"app": "boneage-dicom-node"}
    assert service["spec"]["ports"][0]["targetPort"] == "dicom"


# --- Limits (issue 34; docs/scaling.md, Limits) ----------------------------------------------------------------------

SERVERS = ("boneage-web", "boneage-worker-cpu", "boneage-worker-gpu", "boneage-dicom-node")
MIB = 2**20
TORCH_PROCESS = 1024 * MIB  # Daphne or a Celery pool child once torch is imported (measured: docs/scaling.md)
DECODE_CHILD_IMPORTS = 512 * MIB  # a decode child's address space before its limit (~0.3 GiB measured)
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "m": 1e-3, "": 1}


def quantity(value: str | int) -> float:
    """A Kubernetes quantity ("500m", "2", "4Gi") as a number of cores or bytes."""
    text = str(value)
    number = text.rstrip("KMGTimn")
    return float(number) * UNITS[text[len(number):]]


def test_every_server_has_cpu_and_memory_limits_at_or_above_what_it_requests():
    for name in SERVERS:
        (container,) = containers(by_kind("Deployment")[name])
        requests, limits = container["resources"]["requests"], container["resources"]["limits"]
        assert {"cpu", "memory"} <= set(limits), name
        for resource in ("cpu", "memory"):
            assert quantity(requests[resource]) <= quantity(limits[resource]), (name, resource)


def test_the_web_and_cpu_worker_memory_limits_hold_their_processes_and_their_decode_children():
    """A decode that reaches its own limit ends its child, not the pod: the pod's limit must hold each process plus
    DECODE_CONCURRENCY children at their limit."""
    config = by_kind("ConfigMap")["boneage-config"]["data"]
    child = DECODE_CHILD_IMPORTS + int(config["DECODE_MEMORY_MB"]) * MIB
    per_process = TORCH_PROCESS + int(config["DECODE_CONCURRENCY"]) * child
    assert int(config["WORKER_MAX_MEMORY_PER_CHILD_MB"]) * MIB >= TORCH_PROCESS  # else every child is replaced at once
    (web,) = containers(by_kind("Deployment")["boneage-web"])
    assert quantity(web["resources"]["limits"]["memory"]) >= per_process
    (worker,) = containers(by_kind("Deployment")["boneage-worker-cpu"])
    pool = int(worker["command"][worker["command"].index("-c") + 1])
    assert quantity(worker["resources"]["limits"]["memory"]) >= pool * per_process + TORCH_PROCESS  # and the master


def daphne_commands() -> dict[str, list[str]]:
    (web,) = containers(by_kind("Deployment")["boneage-web"])
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["web"]["command"]
    dockerfile = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    cmd = json.loads(next(line for line in dockerfile.splitlines() if line.startswith("CMD "))[4:])
    return {"kubernetes": web["command"], "compose": compose, "Dockerfile": cmd}


def test_daphne_ends_a_request_after_ten_minutes_and_takes_only_small_socket_messages_in_every_deploy_file():
    from daphne.cli import CommandLineInterface
    from django.conf import settings

    for where, command in daphne_commands().items():
        assert command[0] == "daphne", where
        args = CommandLineInterface().parser.parse_args(command[1:])  # daphne's own parser accepts every option
        assert args.application == "boneage.asgi:application", where
        assert settings.DECODE_TIMEOUT_S * 2 < args.http_timeout <= 600, where  # a slot's wait and a decode fit
        assert args.websocket_max_message_size <= 65536 and args.websocket_max_frame_size <= 65536, where


def test_the_compose_services_that_serve_have_cpu_and_memory_limits():
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    for name in ("web", "dicom-node", "worker-cpu", "worker-gpu", "sweep-orphans"):
        assert {"cpus", "memory"} <= set(services[name]["deploy"]["resources"]["limits"]), name
