"""The starter model of `make run`: the shipped starter weights fine-tuned on the demo project's labels
(or, without them, a small network trained from scratch on those labels).

`ensure_starter_model(project, stdout)` returns the project's active model, training one first when
there is none (or when its checkpoint is missing or corrupt). It trains in-process through the same
training-run code the workers use (same registry, gate, audit and events), with progress lines on
stdout, inside a wall-clock budget sized for a 2-core CPU. Idempotent: a second call returns the
same version at once.
"""
from __future__ import annotations

from typing import Any

from boneage.modeling.actions import ModelingError, active_version, check_checkpoint_intact, do_promote
from boneage.modeling.models import ModelStatus, ModelVersion, RunState
from boneage.modeling.training import check_run_request, do_start_training, run_training
from boneage.studies.models import Project

# ml.train's CPU "light" preset (the project default) inside a wall-clock budget: minutes on a 2-core CPU.
STARTER_TRAINING: dict[str, Any] = {"max_seconds": 180}
# With the shipped starter weights (ml.checkpoint.SHIPPED_STARTER): ml.train's `finetune` preset on the project's
# labels inside a 150-s budget — end to end with no teacher forcing (the segmenter is trained), BatchNorm statistics
# frozen at the starter's, the end of the schedule shipped unless the starter itself scores better on the same
# validation images (so the fine-tune cannot end worse there than where it started).
STARTER_FINE_TUNE: dict[str, Any] = {"init": "starter", "epochs": 6, "max_seconds": 150, "lr": 3e-4}
STARTER_FINE_TUNE_SCHEDULE: dict[str, Any] = {"teacher_epochs": 0, "teacher_decay_epochs": 0,
                                              "selection": "last_epoch", "warmup_fraction": 0.1}
AUTO_RETRAIN_AFTER_LABELS = 20


def ensure_starter_model(project: Project, stdout=None) -> ModelVersion:
    def echo(line: str) -> None:
        if stdout is not None:
            stdout.write(line)
            if hasattr(stdout, "flush"):
                stdout.flush()

    active = active_version(project.pk)
    if active is not None:
        try:
            check_checkpoint_intact(active)
            echo(f"starter model: {active.name} is already active")
            return active
        except ModelingError as exc:
            echo(f"starter model: {exc.detail} Training a new one.")
    settings = dict(project.settings or {})
    settings.setdefault("training", STARTER_TRAINING)
    settings.setdefault("auto_retrain_after_labels", AUTO_RETRAIN_AFTER_LABELS)
    if settings != project.settings:
        Project.objects.filter(pk=project.pk).update(settings=settings)
        project.settings = settings
    labelled = project.studies.filter(age_labels__isnull=False).distinct().count()
    from ml.checkpoint import SHIPPED_STARTER

    if SHIPPED_STARTER.is_file():
        config = {**check_run_request(project, STARTER_FINE_TUNE), **STARTER_FINE_TUNE_SCHEDULE}
        how = f"fine-tuning the shipped starter weights ({SHIPPED_STARTER.name})"
    else:
        config = check_run_request(project, {"init": "fresh"})
        how = "training from scratch (no shipped starter weights)"
    echo(f"starter model: {how} on {labelled} labelled studies of {project.name!r} "
         f"(up to {config['epochs']} epochs, budget {config.get('max_seconds', '∞')} s) …")
    run = do_start_training(project, config=config, trigger="starter", enqueue=False)
    run_training(run.pk, echo=echo)
    run.refresh_from_db()
    if run.state != RunState.SUCCEEDED or run.result is None:
        raise RuntimeError(f"the starter model could not be trained: {run.error or run.state}")
    version = run.result
    if version.status != ModelStatus.ACTIVE:
        version = do_promote(version, reason="starter model")
    echo(f"starter model: {version.name} active, validation MAE {version.metrics.get('val_mae', float('nan')):.1f} "
         f"months on {len(version.validation_study_ids)} studies; the worker re-predicts every study now")
    return version
