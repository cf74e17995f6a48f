"""Where a project's re-prediction after a promotion stands, and whose readings stand in meanwhile (issue 32, row 3).

The state lives on the promoted version (`ModelVersion.reprediction`), not only in the `model.repredict.progress`
events, so a page opened mid-run shows "predicting N / M" too. Until the new version has read a study, the version it
replaced (`replaces`, the one active before) keeps showing its reading, marked as an earlier model's.

A running re-prediction beats (`beat`, every heartbeat_seconds, from a thread beside the batches: one batch on a loaded
CPU can take longer than the stale limit); one whose worker died stops beating, and every worker's watchdog ends it
FAILED with the reason in `error` (`reap_stale`), which the worklist shows with a button to run it again
(`modeling.actions.do_rerun_reprediction`). A worker that comes back and gets the task again simply resumes it.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from boneage.modeling import conf
from boneage.modeling.models import ModelStatus, ModelVersion

QUEUED, RUNNING, DONE, FAILED, SUPERSEDED = "queued", "running", "done", "failed", "superseded"
UNDER_WAY = (QUEUED, RUNNING)


def mark_queued(version: ModelVersion, replaces: ModelVersion | None, total: int) -> None:
    """At promotion, inside its transaction: the re-prediction is queued behind whatever the gpu worker does now."""
    version.reprediction = {"state": QUEUED, "done": 0, "total": total, "replaces": replaces.pk if replaces else None,
                            "beat": timezone.now().isoformat()}
    version.save(update_fields=["reprediction"])


def mark(version_id: int, state: str, *, done: int | None = None, total: int | None = None, error: str = "") -> bool:
    """The worker's progress (or its end); keeps `replaces` and whatever else is not given; every mark is a beat.
    Locked, so a heartbeat's write never undoes it. False when the version is gone."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().filter(pk=version_id).only("reprediction").first()
        if version is None:
            return False
        state_now = {**(version.reprediction or {}), "state": state, "beat": timezone.now().isoformat()}
        state_now.pop("error", None)
        if done is not None:
            state_now["done"] = done
        if total is not None:
            state_now["total"] = total
        if error:
            state_now["error"] = error
        ModelVersion.objects.filter(pk=version_id).update(reprediction=state_now)
    return True


def beat(version_id: int) -> None:
    """A sign of life of the worker re-predicting with this version (only while it says running)."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().filter(pk=version_id).only("reprediction").first()
        if version is not None and (version.reprediction or {}).get("state") == RUNNING:
            ModelVersion.objects.filter(pk=version_id).update(
                reprediction={**version.reprediction, "beat": timezone.now().isoformat()})


@contextmanager
def heartbeat(version_id: int) -> Iterator[None]:
    """Beat from a thread for as long as the block runs."""
    stopped = threading.Event()

    def run() -> None:
        try:
            while not stopped.wait(conf.heartbeat_seconds()):
                beat(version_id)
        finally:
            connection.close()  # the thread's own connection

    thread = threading.Thread(target=run, daemon=True, name=f"heartbeat-repredict-{version_id}")
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join()


def reap_stale(project_id: int | None = None) -> list[ModelVersion]:
    """Re-predictions that say running but whose worker stopped beating end FAILED with the reason; returns them."""
    cutoff = timezone.now() - timedelta(seconds=conf.stale_seconds())
    running = ModelVersion.objects.filter(reprediction__state=RUNNING)
    if project_id is not None:
        running = running.filter(project_id=project_id)
    reaped = []
    for version in running:
        state = version.reprediction
        if _beat_of(state) >= cutoff:
            continue
        replaced = replaced_version(version)
        error = (f"The worker re-predicting with {version.name} stopped (no sign of life for {conf.stale_seconds()} s) "
                 f"after {int(state.get('done') or 0)} of {int(state.get('total') or 0)} studies; the others keep "
                 f"{replaced.name if replaced else 'their earlier'}'s reading. Run it again to finish.")
        with transaction.atomic():
            locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
            if (locked.reprediction or {}).get("state") != RUNNING or _beat_of(locked.reprediction) >= cutoff:
                continue  # it beat meanwhile, or ended
            mark(version.pk, FAILED, error=error)
        version.refresh_from_db(fields=["reprediction"])
        reaped.append(version)
    return reaped


def _beat_of(state: dict) -> datetime:
    """The last sign of life; a running state from before beats were kept counts as long dead."""
    try:
        return datetime.fromisoformat(state["beat"])
    except (KeyError, TypeError, ValueError):
        return timezone.now() - timedelta(days=3650)


def under_way(version: ModelVersion | None) -> dict | None:
    """The active version's re-prediction while it is queued or running: {model_version, model_name, done, total,
    replaces_name}; None when none runs."""
    state = (version.reprediction or {}) if version is not None else {}
    if version is None or state.get("state") not in UNDER_WAY:
        return None
    replaced = replaced_version(version)
    return {"model_version": version.pk, "model_name": version.name, "state": state["state"],
            "done": int(state.get("done") or 0), "total": int(state.get("total") or 0),
            "replaces_name": replaced.name if replaced else None}


def replaced_version(version: ModelVersion | None) -> ModelVersion | None:
    """The version that was active before `version` (its readings stand in for the studies `version` has not read)."""
    if version is None:
        return None
    replaces = (version.reprediction or {}).get("replaces")
    if not replaces:
        return None
    return (ModelVersion.objects.filter(pk=replaces, project_id=version.project_id)
            .exclude(status=ModelStatus.AUDIT).first())


def stopped(version: ModelVersion | None) -> dict | None:
    """The active version's re-prediction when its worker died before it finished: {model_version, model_name, done,
    total, replaces_name, error}, for the worklist's notice and its button to run it again; None otherwise."""
    state = (version.reprediction or {}) if version is not None else {}
    if version is None or state.get("state") != FAILED or not state.get("error"):
        return None
    replaced = replaced_version(version)
    return {"model_version": version.pk, "model_name": version.name, "done": int(state.get("done") or 0),
            "total": int(state.get("total") or 0), "replaces_name": replaced.name if replaced else None,
            "error": state["error"]}
