"""Fault drills (issue 34): a real Celery worker killed with SIGKILL while it derives a study. Nothing half-written
stays (`sweep_orphans` finds nothing), no decode child outlives its worker, and the derive is
done again: at once when only the pool child died (reject_on_worker_lost), and when the whole worker died, by the
broker after its visibility timeout or by the study's first view, whichever comes first. No failure is recorded for
the study: the film was not at fault."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
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
    # and the first view does not wait for that: it derives the study itself
    assert api_as(member).get(f"/api/studies/{study.pk}/image/").status_code == 200
    assert Image.objects.get(study=study).work
