"""Fault drills (issue 34), with real processes killed by SIGKILL.

A Celery worker killed while it derives a study: nothing half-written stays (`sweep_orphans` finds nothing), no
decode child outlives its worker, and the derive is done again: at once when only the pool child died
(reject_on_worker_lost), and when the whole worker died, by the broker after its visibility timeout or by the
study's first view, whichever comes first. No failure is recorded for the study: the film was not at fault.

Daphne killed while it receives, decodes and stores uploads: every study that exists is whole, what a kill left
between writing a file and committing its row is an orphan `sweep_orphans` removes, and an upload it answered
survives. And a decoder that runs out of memory under a real Daphne ends its child: the same server process answers
that view with a 422 and the next one with the image. (Restarting PostgreSQL or Redis is not drilled here: they are
shared services on this machine.)
"""
from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from boneage.studies.actions import IngestFields, do_ingest
from boneage.studies.models import Image, Study
from django.core.management import call_command
from django.db import connection

from tests.dicom_factory import dicom_bytes, make_dicom_dataset
from tests.live_support import wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]


def start_cpu_worker(settings) -> subprocess.Popen:
    """`celery -A boneage worker -Q cpu` with the prefork pool the deployment runs, on the test database and broker."""
    db = connection.settings_dict
    env = {**os.environ, "BONEAGE_PROFILE": "test", "REDIS_URL": settings.REDIS_URL,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "MEDIA_ROOT": str(settings.MEDIA_ROOT), "PYTHONPATH": os.pathsep.join([str(REPO / "platform"), str(REPO)])}
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "boneage", "worker", "-Q", "cpu", "-P", "prefork",
                             "-c", "1", "--loglevel", "WARNING", "-n", f"drill-{uuid.uuid4().hex[:6]}@%h"],
                            cwd=REPO, env=env, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def decode_child_of(worker: int) -> int | None:
    """The `boneage.studies.isolated_decode` process running under this worker, if one is."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if b"boneage.studies.isolated_decode" not in cmdline.read():
                    continue
            ancestor = parent_of(int(entry))
            while ancestor > 1:
                if ancestor == worker:
                    return int(entry)
                ancestor = parent_of(ancestor)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def a_large_film_stored(project, owner) -> Study:
    """A 4096 × 5120 film (about a second to decode here), stored and committed: its derive is on the cpu queue."""
    pixels = np.zeros((5120, 4096), np.uint16)
    pixels[1280:3840, 1024:3072] = 4000
    return do_ingest(project, owner, dicom_bytes(make_dicom_dataset(pixels)), "hand.dcm", IngestFields(sex="F")).study


def stored_names(media: Path) -> set[str]:
    return {str(path.relative_to(media)) for path in media.rglob("*") if path.is_file()}


def orphans_found() -> str:
    out = io.StringIO()
    call_command("sweep_orphans", "--dry-run", "--min-age-seconds", "0", stdout=out)
    return out.getvalue()


@pytest.fixture
def empty_queues(settings):
    import redis

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()
    yield broker
    broker.flushdb()


def test_a_pool_child_killed_mid_derive_is_retried_at_once_and_leaves_nothing_half_written(
        project, owner, settings, temporary_media, empty_queues):
    study = a_large_film_stored(project, owner)
    original = Image.objects.get(study=study).original
    worker = start_cpu_worker(settings)
    try:
        decoder = wait_for(lambda: decode_child_of(worker.pid), 120, "the worker to be decoding the film")
        os.kill(parent_of(decoder), signal.SIGKILL)  # the pool child, as the kernel's OOM killer would
        wait_for(lambda: not alive(decoder), 10, "the decode child to end")
        image = wait_for(lambda: Image.objects.filter(study=study).exclude(normalized="").first(), 120,
                         "the derive to be done again by the next pool child")
    finally:
        stop(worker)
    assert image.display and image.work
    assert stored_names(temporary_media) == {original, image.normalized, image.display, image.work}
    assert "would remove 0 unreferenced file(s)" in orphans_found()
    assert Study.objects.get(pk=study.pk).automask_error == ""


def test_the_whole_worker_killed_mid_derive_leaves_the_study_pending_its_task_unacknowledged_and_no_file(
        project, owner, member, api_as, settings, temporary_media, empty_queues):
    study = a_large_film_stored(project, owner)
    original = Image.objects.get(study=study).original
    worker = start_cpu_worker(settings)
    try:
        decoder = wait_for(lambda: decode_child_of(worker.pid), 120, "the worker to be decoding the film")
    finally:
        stop(worker)  # master, pool child and all: a lost machine
    wait_for(lambda: not alive(decoder), 10, "the decode child to end with the worker")
    time.sleep(0.5)
    assert stored_names(temporary_media) == {original}
    assert "would remove 0 unreferenced file(s)" in orphans_found()
    stopped = Study.objects.get(pk=study.pk)
    assert stopped.automask_state == "pending" and stopped.automask_error == ""
    # the broker keeps the task it handed out until its visibility timeout, then hands it out again
    unacknowledged = [payload for payload in empty_queues.hvals("unacked") if b"studies.post_ingest" in payload]
    assert len(unacknowledged) == 1
    # and the first view does not wait for that: it derives what it shows itself (the worker adds the work copy)
    assert api_as(member).get(f"/api/studies/{study.pk}/image/").status_code == 200
    assert Image.objects.get(study=study).display


# --- the web server killed mid-upload -----------------------------------------------------------------------------


def start_daphne(log: Path):
    """Daphne serving the app in a child process on the test database (as live_support.live_asgi_server)."""
    from channels.testing.live import make_application
    from daphne.testing import DaphneProcess
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from tests.live_support import use_database

    process = DaphneProcess("localhost", partial(make_application, static_wrapper=ASGIStaticFilesHandler),
                            setup=partial(use_database, connection.settings_dict["NAME"], log))
    process.start()
    assert process.ready.wait(timeout=30), "the live ASGI server did not start"
    return process


def upload_request(project, token: str, data: bytes) -> bytes:
    """POST /api/projects/{p}/studies/ as raw HTTP: the drill sends it in parts and kills the server in between."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hand.dcm\"\r\n"
            f"Content-Type: application/dicom\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /api/projects/{project.pk}/studies/ HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head + body


def sha256_of_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: Path) -> str:
    return sha256_of_bytes(path.read_bytes())


def a_big_film() -> bytes:
    pixels = np.zeros((4096, 4096), np.uint16)
    pixels[1024:3072, 1024:3072] = 4000
    return dicom_bytes(make_dicom_dataset(pixels))  # 32 MiB; a new SOP instance UID each time


def send(port: int, request: bytes, *, share: float = 1.0) -> socket.socket:
    client = socket.create_connection(("localhost", port), timeout=60)
    client.sendall(request[: int(len(request) * share)])
    return client


def kill(server) -> None:
    server.kill()  # SIGKILL: no shutdown, no cleanup
    server.join(timeout=10)


def test_the_web_server_killed_mid_upload_leaves_no_half_written_study_and_what_it_acknowledged_survives(
        project, owner, settings, temporary_media, tmp_path, empty_queues):
    from rest_framework.authtoken.models import Token

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    token = Token.objects.create(user=owner).key
    log = tmp_path / "daphne.log"

    # an upload the server answered survives the server's kill; how long it took places the kills below
    data = a_big_film()
    server = start_daphne(log)
    started = time.monotonic()
    with send(server.port.value, upload_request(project, token, data)) as client:
        status_line = client.recv(65536).split(b"\r\n", 1)[0]
    answered_after = time.monotonic() - started
    kill(server)
    assert status_line == b"HTTP/1.1 201 Created"
    acknowledged = Study.objects.get(project=project, checksum=sha256_of_bytes(data))

    # kills in the body, then spread over the time the server took to receive, decode, store and commit
    kill_points = [(0.5, 0.0), *[(1.0, answered_after * share) for share in (0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95)]]
    sent = {}
    for share, delay in kill_points:
        data = a_big_film()
        sent[sha256_of_bytes(data)] = data
        server = start_daphne(log)
        with send(server.port.value, upload_request(project, token, data), share=share):
            time.sleep(delay)
            kill(server)

    # every study that exists is whole: its row, its accepted record and its original with exactly the bytes sent
    for image in Image.objects.filter(study__project=project).exclude(study=acknowledged).select_related("study"):
        assert image.study.checksum in sent
        assert sha256_of(temporary_media / image.original) == image.study.checksum
        assert image.study.ingest_records.filter(outcome="accepted").exists()
    # what a kill left between writing a file and committing its row is an orphan that sweep_orphans removes
    found = orphans_found()
    call_command("sweep_orphans", "--min-age-seconds", "0", stdout=io.StringIO())
    assert stored_names(temporary_media) == set(Image.objects.values_list("original", flat=True))
    assert sha256_of(temporary_media / acknowledged.image.original) == acknowledged.checksum
    stored = Study.objects.filter(project=project).count() - 1
    print(f"\nanswered in {answered_after:.1f} s; of {len(kill_points)} killed uploads {stored} were stored whole; "
          f"sweep_orphans: {found.strip()}")


def test_a_decoder_that_runs_out_of_memory_under_a_real_daphne_ends_its_child_and_the_server_keeps_serving(
        project, owner, settings, temporary_media, tmp_path, empty_queues):
    import json
    import urllib.error
    import urllib.request

    from rest_framework.authtoken.models import Token

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    settings.DECODE_MEMORY_MB = 256  # the 4096 × 5120 film needs about 400 MiB to decode
    token = Token.objects.create(user=owner).key
    heavy = a_large_film_stored(project, owner)
    light = do_ingest(project, owner, dicom_bytes(make_dicom_dataset()), "small.dcm", IngestFields(sex="F")).study
    server = start_daphne(tmp_path / "daphne.log")

    def get(study: Study) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://localhost:{server.port.value}/api/studies/{study.pk}/image/",
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    try:
        status, body = get(heavy)
        assert status == 422 and "more than its 256 MiB" in json.loads(body)["detail"]
        assert server.is_alive()
        status, body = get(light)
        assert status == 200 and body.startswith(b"\x89PNG")
        assert server.is_alive() and server.exitcode is None  # the same server process answered both
    finally:
        kill(server)
