"""The starter model of `make run`: the shipped starter weights as they are, scored and calibrated on the demo
project's held-out studies (or, without them, a small network trained from scratch on its labels).

Not fine-tuned here: the fine-tune was most of `make run`'s minutes (a 150-s budget plus its loading, 288 s on a loaded
2-core box), and it is the first thing a trainer's "Start training" does (the active model's fine-tune), where the
models page shows it happen and the gate compares it with the starter on the same held-out studies.

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
# With the shipped starter weights (ml.checkpoint.SHIPPED_STARTER): a run from them with no epochs, which only
# scores them on the held-out studies, calibrates their intervals and writes the project's first version.
STARTER_AS_SHIPPED: dict[str, Any] = {"init": "starter"}
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
        config = {**check_run_request(project, STARTER_AS_SHIPPED), "epochs": 0,
                  "init_reason": "the shipped starter weights as they are (trained on phantoms), not fine-tuned: "
                                 "scored and calibrated on this project's held-out studies"}
        echo(f"starter model: the shipped starter weights ({SHIPPED_STARTER.name}), scored and calibrated on the "
             f"held-out studies of the {labelled} labelled ones of {project.name!r} …")
    else:
        config = check_run_request(project, {"init": "fresh"})
        echo(f"starter model: training from scratch (no shipped starter weights) on {labelled} labelled studies of "
             f"{project.name!r} (up to {config['epochs']} epochs, budget {config.get('max_seconds', '∞')} s) …")
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
