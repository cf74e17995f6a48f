"""Where a project's re-prediction after a promotion stands, and whose readings stand in meanwhile (issue 32, row 3).

The state lives on the promoted version (`ModelVersion.reprediction`), not only in the `model.repredict.progress`
events, so a page opened mid-run shows "predicting N / M" too. Until the new version has read a study, the version it
replaced (`replaces`, the one active before) keeps showing its reading, marked as an earlier model's.
"""
from __future__ import annotations

from boneage.modeling.models import ModelStatus, ModelVersion

QUEUED, RUNNING, DONE, FAILED, SUPERSEDED = "queued", "running", "done", "failed", "superseded"
UNDER_WAY = (QUEUED, RUNNING)


def mark_queued(version: ModelVersion, replaces: ModelVersion | None, total: int) -> None:
    """At promotion, inside its transaction: the re-prediction is queued behind whatever the gpu worker does now."""
    version.reprediction = {"state": QUEUED, "done": 0, "total": total, "replaces": replaces.pk if replaces else None}
    version.save(update_fields=["reprediction"])


def mark(version_id: int, state: str, *, done: int | None = None, total: int | None = None) -> None:
    """The worker's progress (or its end); keeps `replaces` and whatever else is not given."""
    version = ModelVersion.objects.filter(pk=version_id).only("reprediction").first()
    if version is None:
        return
    state_now = dict(version.reprediction or {})
    state_now["state"] = state
    if done is not None:
        state_now["done"] = done
    if total is not None:
        state_now["total"] = total
    ModelVersion.objects.filter(pk=version_id).update(reprediction=state_now)


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
