"""Training runs: start, cancel, run (in a Celery task), reap runs whose worker died, the gate.

States: queued → running → succeeded | failed | cancelled; cancelling in between when asked to stop.
A run's checkpoint is written atomically by ml.checkpoint (temp, fsync, rename) and registered in the
same transaction that marks the run succeeded, so no ModelVersion ever points at a partial file.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from dataclasses import replace as dc_replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from boneage.annotations.actions import current_label
from boneage.annotations.models import AgeLabel, MaskRevision, MaskSource
from boneage.audit.actions import do_record
from boneage.core.events import publish
from boneage.core.signals import training_queued
from boneage.core.storage import discard, store_file, writable_path
from boneage.modeling import conf
from boneage.modeling.actions import (
    INIT_CHOICES,
    ModelingError,
    active_version,
    checkpoint_name,
    do_promote,
    get_predictor,
    local_path,
    next_version_name,
)
from boneage.modeling.gate import GatePolicy, decide
from boneage.modeling.intervals import fallback_calibration
from boneage.modeling.models import ModelStatus, ModelVersion, RunState, TrainingRun
from boneage.modeling.outside import outside_summary
from boneage.modeling.run_outcome import how_it_ended, kept_its_start, no_change, too_few_words, validation_ids
from boneage.studies.derive import ensure_derived_images
from boneage.studies.models import Project, Study, is_male

logger = logging.getLogger(__name__)

ACTIVE_STATES = (RunState.QUEUED, RunState.RUNNING, RunState.CANCELLING)
FINAL_STATES = (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)

# A project's default architecture and schedule: ml.train's CPU "light" preset (tiny Mask R-CNN, width-1/8
# attention net; AdamW + cosine), tuned by the ML core to learn on a 2-core CPU in minutes.
DEFAULT_TRAIN_OVERRIDES = {"early_stop_patience": 8}


def default_training() -> dict[str, Any]:
    from ml.train import TRAIN_PRESETS

    config = TRAIN_PRESETS["light"].to_dict()
    config.update(DEFAULT_TRAIN_OVERRIDES)
    for key in ("progress", "seed", "threads", "num_workers"):
        config.pop(key, None)
    return config


def default_model() -> dict[str, Any]:
    return default_training()["model"]


@dataclass(frozen=True)
class RunConfig:
    """A training run's configuration as one typed object: where its weights start (`init`: active | fresh | starter)
    and ml.train's own TrainConfig. TrainingRun.config (and the registered ModelVersion.config) holds it as JSON
    (check_run_request builds that from the project's defaults and the request; modeling.starter merges it as a dict);
    the worker reads it back once, here, and hands ml.train `train_config()`."""

    init: str
    train: Any  # ml.train.TrainConfig (imported lazily: torch)
    gpus: int = 1  # > 1: torchrun, one process per GPU (ml.launch)
    kind: str = "train"  # "audit": k fold models and an out-of-fold prediction per labelled study (modeling.audit)
    folds: int = 5

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        from ml.train import TrainConfig

        data = dict(data)
        for note in NOTE_KEYS:  # what the platform says about the run's start: not ml.train's
            data.pop(note, None)
        init = data.pop("init", "active")
        gpus = int(data.pop("gpus", 1))
        kind, folds = str(data.pop("kind", "train")), int(data.pop("folds", 5))
        data["model"] = data.get("model") or default_model()
        return cls(init, TrainConfig.from_dict(data), gpus, kind, folds)

    def train_config(self, *, seed: int, model=None):
        """ml.train's config for this run: its seed, and for a fine-tune its starting checkpoint's architecture."""
        return replace(self.train, seed=seed, **({"model": model} if model is not None else {}))


# Stored in a run's config beside ml.train's settings: why the run starts where it does, and whether that was the
# platform's choice (a request without "init") or the trainer's.
NOTE_KEYS = ("init_reason", "init_chosen", "recipe")

# gpus: N > 1 trains with torchrun, one process per GPU (DDP); on a worker without CUDA, N CPU processes (gloo).
# folds: an audit run's k (kind "audit").
# max_seconds: up to what the worker's time limit allows (conf.training_max_seconds; 24 h was accepted and a run that
# long could only be killed by the 4-h limit, keeping nothing).
USER_KEYS = {"epochs": (1, 200), "batch_size": (1, 64), "lr": (1e-5, 1.0), "max_seconds": (10, conf.training_max_seconds()),
             "gpus": (1, 16), "folds": (2, 10)}
INTEGER_KEYS = ("epochs", "batch_size", "gpus", "folds")
RUN_KINDS = ("train", "audit")


# A run that starts from trained weights (the starter, or the active model) takes ml.train's `finetune` schedule: no
# teacher forcing (the segmenter is trained), a gentle learning rate, the end of the schedule shipped unless the start
# scores better on the same validation studies (ml.train; BatchNorm statistics stay the start's).
FINE_TUNE_SCHEDULE: dict[str, Any] = {"teacher_epochs": 0, "teacher_decay_epochs": 0, "selection": "last_epoch",
                                      "warmup_fraction": 0.1, "lr": 3e-4, "epochs": 10}


def project_training_defaults(project: Project, *, fine_tune: bool = False) -> dict[str, Any]:
    custom = (project.settings or {}).get("training", {})
    base = {**default_training(), **(FINE_TUNE_SCHEDULE if fine_tune else {})}
    return {**base, **{k: v for k, v in custom.items() if k != "model"},
            "model": {**base["model"], **custom.get("model", {})}}


def check_run_request(project: Project, data: dict[str, Any]) -> dict[str, Any]:
    """Validate a POST body → the run's config. Unknown keys and out-of-range values are 400s."""
    if not isinstance(data, dict):
        raise ModelingError(400, "invalid", "Send a JSON object.")
    unknown = set(data) - {"init", "kind", *USER_KEYS}
    if unknown:
        raise ModelingError(400, "invalid", f"Unknown fields: {', '.join(sorted(unknown))}. "
                            f"Known: init, kind, {', '.join(sorted(USER_KEYS))}.")
    kind = data.get("kind", "train")
    if kind not in RUN_KINDS:
        raise ModelingError(400, "invalid", f"kind must be one of {', '.join(RUN_KINDS)}, not {kind!r}.")
    if kind != "audit" and "folds" in data:
        raise ModelingError(400, "invalid", "folds belongs to an audit run: send \"kind\": \"audit\" with it.")
    chosen = "init" not in data
    init, reason = default_start(project) if chosen and kind == "train" else (
        data.get("init", _audit_default_init()), "")
    if kind == "audit" and init == "recipe":
        raise ModelingError(400, "invalid", "An audit trains k fine-tunes; the default recipe is for one run. Use init "
                            "\"starter\" (the default) or \"fresh\".")
    if kind == "audit" and init == "active":
        raise ModelingError(400, "invalid", "An audit cannot start from the active model: it trained on the labels the "
                            "audit questions. Use init \"starter\" (the default) or \"fresh\".")
    if init not in INIT_CHOICES:
        raise ModelingError(400, "invalid", f"init must be one of {', '.join(INIT_CHOICES)}, not {init!r}.")
    if init == "starter":
        from ml.checkpoint import SHIPPED_STARTER

        if not SHIPPED_STARTER.is_file():
            raise ModelingError(409, "no_starter_weights", f"The starter weights ({SHIPPED_STARTER.name}) are not "
                                "in this installation; start from scratch or from the active model.")
    fine_tune = init == "starter" or (init == "active" and active_version(project.pk) is not None)
    config = project_training_defaults(project, fine_tune=fine_tune)
    for key, bounds in USER_KEYS.items():
        if key in data:
            config[key] = check_number(key, data[key], bounds, whole=key in INTEGER_KEYS)
    config["init"] = init
    if kind == "train":
        config["init_chosen"] = "platform" if chosen else "trainer"
        config["init_reason"] = reason or START_WORDS[init]
    if init == "recipe":
        config["recipe"] = dict((project.settings or {}).get("training", {}).get("recipe", {}))
    if kind == "audit":
        config["kind"], config["folds"] = kind, int(data.get("folds", 5))
    return config


def check_number(key: str, value: Any, bounds: tuple[float, float], *, whole: bool) -> int | float:
    """A run's or a project's numeric training setting, in bounds (a whole number where `whole`); a 400 naming it."""
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        why = f" ({conf.max_seconds_reason()})" if key == "max_seconds" else ""
        raise ModelingError(400, "invalid", f"{key} must be a number between {low:g} and {high:g}, not {value!r}"
                            f"{why}.", field=key)
    if whole and value != int(value):
        raise ModelingError(400, "invalid", f"{key} must be a whole number, not {value!r}.", field=key)
    return int(value) if whole else float(value)


START_WORDS = {
    "active": "fine-tunes the active model",
    "starter": "fine-tunes the shipped starter weights (trained on phantoms)",
    "fresh": "trains the project's architecture from scratch",
    "recipe": "trains the default recipe for real films from scratch: the segmenter on the Canny masks, then the regressor "
              "on its crops",
}


# A model's "outside my experience" is calibrated on its held-out films: on fewer than this many (a first model on a
# dozen labels) the flags are too noisy to send a run back to scratch; it is fine-tuned as before.
TRUSTED_HELD_OUT = 20


def default_start(project: Project) -> tuple[str, str]:
    """Where a run starts when the trainer does not say, and why in words. A project most of whose films are outside
    the active model's experience gets the default recipe from scratch: a fine-tune would keep that model's
    statistics (BatchNorm frozen at another domain's) and the gate would keep that model active. Without an active
    model the worker asks the starter the same question of the labelled films before it fine-tunes
    (`check_starter_fits`)."""
    active = active_version(project.pk)
    trusted = active is not None and len(active.validation_study_ids or []) >= TRUSTED_HELD_OUT
    summary = outside_summary(project.pk) if trusted else None  # the aggregate only where its verdict counts
    if summary is not None and summary.most:
        return "recipe", (f"{summary.outside} of {summary.predicted} predicted films are outside the experience of "
                          f"{summary.model_name}: {START_WORDS['recipe']}")
    init = _train_default_init(project)
    return init, START_WORDS[init]


def _train_default_init(project: Project) -> str:
    """Fine-tuning is the default: the active model, or for a project's first run the shipped starter weights."""
    return "active" if active_version(project.pk) is not None else _audit_default_init()


def _audit_default_init() -> str:
    from ml.checkpoint import SHIPPED_STARTER

    return "starter" if SHIPPED_STARTER.is_file() else "fresh"


def do_start_training(project: Project, *, actor=None, config: dict[str, Any] | None = None,
                      trigger: str = "manual", enqueue: bool = True) -> TrainingRun:
    """Queue a training run (one at a time per project: a second request while one is going is a 409).

    enqueue=False: the caller runs it in-process with run_training (the starter model of `make run`)."""
    config = config if config is not None else check_run_request(project, {})
    reap_stale_runs(project.pk)  # a run whose worker died must not hold the project's one run slot
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        going = TrainingRun.objects.filter(project=project, state__in=ACTIVE_STATES).first()
        if going is not None:
            raise ModelingError(409, "run_in_progress", f"Training run {going.pk} is {going.state}; wait for it or "
                                "cancel it first.", run=going.pk)
        init = active_version(project.pk) if config.get("init", "active") == "active" else None
        run = TrainingRun.objects.create(project=project, config=config, trigger=trigger, init_from=init,
                                         created_by=actor if getattr(actor, "is_authenticated", False) else None,
                                         progress={"epoch": 0, "step": 0, "total_epochs": config.get("epochs")})
        do_record("training.started", run, actor=actor, project=project,
                  after={"run": run.pk, "trigger": trigger,
                         "init": init.name if init else config.get("init") if config.get("init") == "starter" else "fresh",
                         "epochs": config.get("epochs")})
        publish(project.pk, "training.queued", run=run.pk, trigger=trigger)
        if enqueue:  # the pipeline enqueues the modeling.train task on commit
            training_queued.send(sender=TrainingRun, run_id=run.pk)
    return run


def do_cancel_run(run: TrainingRun, *, actor=None) -> TrainingRun:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if run.state in FINAL_STATES:
            raise ModelingError(409, "run_finished", f"Training run {run.pk} has already {run.state}.")
        if run.state == RunState.CANCELLING:
            return run
        before = run.state
        run.state = RunState.CANCELLED if run.state == RunState.QUEUED else RunState.CANCELLING
        if run.state == RunState.CANCELLED:
            run.finished_at = timezone.now()
        run.save(update_fields=["state", "finished_at"])
        do_record("training.cancel_requested", run, actor=actor, project=run.project,
                  before={"state": before}, after={"state": run.state})
        publish(run.project_id, "training.finished" if run.state == RunState.CANCELLED else "training.cancelling",
                run=run.pk, state=run.state)
    return run


def _finish(run_id: int, state: str, *, error: str = "", result: ModelVersion | None = None,
            extra: dict[str, Any] | None = None, from_states=(RunState.RUNNING, RunState.CANCELLING)) -> bool:
    """Move a run to a final state (only from `from_states`); audit + training.finished on commit."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.state not in from_states:
            return False
        before = run.state
        run.state, run.error, run.result, run.finished_at = state, error[:4000], result, timezone.now()
        run.save(update_fields=["state", "error", "result", "finished_at"])
        do_record("training.finished", run, project=run.project, before={"state": before},
                  after={"state": state, "error": error[:500] or None, "model_version": result.name if result else None})
        publish(run.project_id, "training.finished", run=run.pk, state=state, error=error[:500] or None,
                model_version=result.pk if result else None, **(extra or {}))
    return True


# --- dead workers -----------------------------------------------------------------------------------

def reap_stale_runs(project_id: int | None = None) -> int:
    """Runs that say running but whose worker stopped beating end FAILED. Called by every worker's watchdog (at start,
    then every stale/4 s), by a redelivered task, and before a new run starts (so a dead worker's run never blocks the
    project). GET views only read (docs/architecture.md)."""
    cutoff = timezone.now() - timedelta(seconds=conf.stale_seconds())
    stale = TrainingRun.objects.filter(state__in=(RunState.RUNNING, RunState.CANCELLING), heartbeat_at__lt=cutoff)
    if project_id is not None:
        stale = stale.filter(project_id=project_id)
    count = 0
    for run_id in list(stale.values_list("pk", flat=True)):
        if _finish(run_id, RunState.FAILED, error=f"The worker running this training stopped (no heartbeat for "
                   f"{conf.stale_seconds()} s); nothing was registered. Start a new run."):
            count += 1
    return count


class _Heartbeat(threading.Thread):
    def __init__(self, run_id: int) -> None:
        super().__init__(daemon=True, name=f"heartbeat-run-{run_id}")
        self.run_id, self.stopped = run_id, threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(conf.heartbeat_seconds()):
                TrainingRun.objects.filter(pk=self.run_id, state__in=(RunState.RUNNING, RunState.CANCELLING)).update(
                    heartbeat_at=timezone.now())
        finally:
            connection.close()


# --- the run itself ---------------------------------------------------------------------------------

def json_safe(value: Any) -> Any:
    """A run's numbers as the database's JSON takes them: a diverged epoch's NaN or infinite loss or MAE is null
    (PostgreSQL refuses NaN in JSON, and the run would end FAILED on writing its progress)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


class _PlatformCallback:
    """ml.train callback: stop within one step when cancelled, progress events, the curve."""

    def __init__(self, run: TrainingRun, echo: Callable[[str], None] | None = None) -> None:
        self.run_id, self.project_id, self.echo = run.pk, run.project_id, echo
        self.last_val_mae: float | None = None
        self.epoch = 0
        self.step = 0
        self.total_epochs = run.config.get("epochs")
        self._last_sent = 0.0
        self._last_echo = 0.0
        self.curve: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}  # sent with every progress event (an audit's fold)

    def should_stop(self) -> bool:
        state = TrainingRun.objects.filter(pk=self.run_id).values_list("state", flat=True).first()
        return state != RunState.RUNNING

    def on_step(self, step: int, loss: float) -> None:
        self.step = step
        now = time.monotonic()
        if now - self._last_sent >= 2.0:
            self._last_sent = now
            progress = json_safe({"epoch": self.epoch, "step": step, "loss": round(loss, 4), "val_mae": self.last_val_mae,
                                  "total_epochs": self.total_epochs, **self.extra})
            TrainingRun.objects.filter(pk=self.run_id).update(progress=progress, heartbeat_at=timezone.now())
            publish(self.project_id, "training.progress", run=self.run_id, **progress)
            if self.echo and now - self._last_echo >= 15.0:
                self._last_echo = now
                self.echo(f"  run {self.run_id}: epoch {self.epoch + 1}/{self.total_epochs} step {step} loss {loss:.3f}")

    def on_epoch_end(self, epoch: int, metrics: dict[str, Any]) -> None:
        self.epoch, self.last_val_mae = epoch, json_safe(round(float(metrics["val_mae"]), 3))
        if metrics.get("stage"):  # the default recipe's epochs say which stage they belong to
            self.extra["stage"] = metrics["stage"]
        self.total_epochs = metrics.get("total_epochs", self.total_epochs)  # a run whose budget decides its epochs
        point = json_safe({"epoch": epoch, "step": self.step, "loss": round(float(metrics["loss"]), 4),
                           "val_mae": self.last_val_mae, "lr": metrics.get("lr")})
        self.curve.append(point)
        progress = {"epoch": epoch, "step": self.step, "loss": point["loss"], "val_mae": self.last_val_mae,
                    "total_epochs": self.total_epochs, **self.extra}
        TrainingRun.objects.filter(pk=self.run_id).update(progress=progress, curve=self.curve, heartbeat_at=timezone.now())
        publish(self.project_id, "training.progress", run=self.run_id, **progress)
        if self.echo:
            loss, mae = point["loss"], self.last_val_mae
            self.echo(f"  run {self.run_id}: epoch {epoch}/{self.total_epochs} done, loss "
                      f"{'not a number' if loss is None else f'{loss:.3f}'}, validation MAE "
                      f"{'not a number' if mae is None else f'{mae:.1f} months'}")


def training_samples(project: Project) -> tuple[list, dict[str, str]]:
    """The project's labelled studies as ml Samples (current label; newest expert/review mask, else Canny)."""
    from ml.data import Sample

    samples, label_sources = [], {}
    studies = (Study.objects.filter(project=project, age_labels__isnull=False).distinct()
               .select_related("image").prefetch_related("age_labels").order_by("pk"))
    for study in studies:
        label = current_label(study)
        if label is None:
            continue
        image = ensure_derived_images(study.image)
        masks = MaskRevision.objects.filter(study=study).order_by("-created_at", "-id")
        mask = (masks.filter(source__in=(MaskSource.EXPERT, MaskSource.REVIEW)).first()
                or masks.filter(source=MaskSource.CANNY).first())
        samples.append(Sample(str(study.pk), local_path(image.normalized), local_path(mask.mask) if mask else None,
                              float(label.months), is_male(study.sex)))
        label_sources[str(study.pk)] = label.source
    return samples, label_sources




def heldout_errors(predictor, samples: list) -> list[float]:
    """Absolute errors (months) of a loaded Predictor on samples, in their order: the platform's own inference path,
    so a version's validation figure is the one its predictions will show."""
    from ml.imaging import load_image

    errors: list[float] = []
    for start in range(0, len(samples), 16):
        chunk = samples[start:start + 16]
        preds = predictor.predict_batch([load_image(s.image_path) for s in chunk], [s.male for s in chunk],
                                        with_attention=False, mc_samples=0)
        errors += [abs(float(p.age_months) - s.age_months) for p, s in zip(preds, chunk)]
    return errors


def evaluate_version(version: ModelVersion, samples: list) -> list[float] | None:
    """Absolute errors of a registered model on samples (None when its checkpoint cannot be loaded)."""
    from ml.checkpoint import CheckpointError

    try:
        predictor = get_predictor(version)
    except CheckpointError:
        return None
    return heldout_errors(predictor, samples)


def gate_policy(project: Project):
    return GatePolicy(min_held_out=max(1, int(project.promotion_min_held_out)),
                      confidence=min(0.999, max(0.5, float(project.promotion_confidence))),
                      min_gain_months=float(project.promotion_min_gain_months))


def _claim(run_id: int) -> tuple[TrainingRun | None, bool]:
    """The run to train and whether this attempt claimed it now (False: a redelivery of a run that says running)."""
    with transaction.atomic():
        run = (TrainingRun.objects.select_for_update(of=("self",)).filter(pk=run_id)
               .select_related("project", "init_from").first())
        if run is None or run.state in FINAL_STATES:
            return None, False  # idempotent: a finished run is never trained twice
        if run.state == RunState.CANCELLING:
            run.state = RunState.CANCELLED
            run.finished_at = timezone.now()
            run.save(update_fields=["state", "finished_at"])
            publish(run.project_id, "training.finished", run=run.pk, state=run.state)
            return None, False
        if run.state == RunState.RUNNING:
            return run, False  # a redelivery: the caller decides whether the first attempt is still alive
        run.state, run.started_at, run.heartbeat_at = RunState.RUNNING, timezone.now(), timezone.now()
        run.save(update_fields=["state", "started_at", "heartbeat_at"])
        publish(run.project_id, "training.started", run=run.pk)
    return run, True


def _wait_out_previous_attempt(run_id: int) -> None:
    """A redelivered run still says running: if its heartbeat stops, it ends FAILED; if it goes on, leave it."""
    deadline = time.monotonic() + conf.stale_seconds() + conf.heartbeat_seconds() + 5
    while time.monotonic() < deadline:
        if reap_stale_runs() and not TrainingRun.objects.filter(pk=run_id, state=RunState.RUNNING).exists():
            return
        if not TrainingRun.objects.filter(pk=run_id, state__in=(RunState.RUNNING, RunState.CANCELLING)).exists():
            return
        time.sleep(min(2.0, conf.heartbeat_seconds()))


def run_training(run_id: int, *, echo: Callable[[str], None] | None = None) -> None:
    """The body of the modeling.train task (echo: print progress lines too, for management commands)."""
    from celery.exceptions import SoftTimeLimitExceeded

    from ml.checkpoint import CheckpointError
    from ml.data import DataError
    from ml.train import train

    run, fresh = _claim(run_id)
    if run is None:
        return
    if not fresh:
        _wait_out_previous_attempt(run_id)
        return
    heartbeat = _Heartbeat(run_id)
    heartbeat.start()
    out: Path | None = None
    try:
        samples, sources = training_samples(run.project)
        if not samples:
            raise DataError("This project has no labelled studies to train on: add expert labels or import "
                            "studies with bone_age_months first.")
        if len(samples) < 4:
            raise DataError(f"Only {len(samples)} labelled studies: training needs at least 4 "
                            "(some train, some validate).")
        val = validation_ids([s.id for s in samples], at_least=run.project.promotion_min_held_out)
        run_config = RunConfig.from_dict(run.config)
        if run_config.init == "starter" and run.config.get("init_chosen") == "platform":
            run_config = check_starter_fits(run, run_config, [s for s in samples if s.id not in val])
        out = writable_path(checkpoint_name(run.project_id, run.pk))
        if run_config.init == "recipe":
            result = _train_recipe(run, samples, out, _PlatformCallback(run, echo), val)
            _keep(run, out, result, samples, val, sources)
            return
        init_path, model = None, None
        if run_config.init in ("active", "starter"):
            from ml.checkpoint import SHIPPED_STARTER, load_checkpoint

            init_path = (local_path(run.init_from.checkpoint) if run_config.init == "active" and run.init_from is not None
                         else SHIPPED_STARTER if run_config.init == "starter" else None)
            if init_path is not None:  # a fine-tune keeps its architecture
                model = load_checkpoint(init_path).model_config
        config = run_config.train_config(seed=run.pk % 1000, model=model)
        if run_config.kind == "audit":
            from boneage.modeling.audit import run_audit

            run_audit(run, samples, config, init_path, run_config.folds, _PlatformCallback(run, echo))
            return
        callback = _PlatformCallback(run, echo)
        if run_config.gpus > 1:
            result = _train_in_processes(samples, config, out, run_config.gpus, callback, init_path, val)
        else:
            result = train(samples, config, out, callback=callback, init=init_path, val_ids=val)
        _keep(run, out, result, samples, val, sources)
    except SoftTimeLimitExceeded:
        _cleanup(run, out)
        _finish(run_id, RunState.FAILED, error=f"The run exceeded its time limit ({conf.training_hard_limit()} s hard "
                "limit); nothing was registered.")
    except (DataError, CheckpointError, ModelingError, ValueError, RuntimeError) as exc:
        _cleanup(run, out)
        detail = exc.detail if isinstance(exc, ModelingError) else str(exc)
        _finish(run_id, RunState.FAILED, error=f"{type(exc).__name__}: {detail}")
    except Exception as exc:
        logger.exception("training run %s failed", run_id)
        _cleanup(run, out)
        _finish(run_id, RunState.FAILED, error=f"Unexpected error: {type(exc).__name__}: {exc}")
    finally:
        heartbeat.stopped.set()


def _keep(run: TrainingRun, out: Path, result, samples: list, val: set[str], sources: dict[str, str]) -> None:
    """A finished ml run: cancelled (nothing kept), or its checkpoint checked, stored and registered."""
    from ml.checkpoint import CheckpointError, file_sha256

    if result.cancelled:
        _cleanup(run, out)
        _finish(run.pk, RunState.CANCELLED, error="")
        return
    assert result.sha256 is not None
    if file_sha256(out) != result.sha256:
        raise CheckpointError(f"{out}: the written checkpoint does not match its sha256")
    store_file(out, checkpoint_name(run.project_id, run.pk))
    _register(run, result, samples, val, sources)


# How many labelled films the worker shows the starter before it fine-tunes it on a project without a model.
STARTER_CHECK_FILMS = 32


def check_starter_fits(run: TrainingRun, run_config: RunConfig, train_samples: list) -> RunConfig:
    """A platform-chosen starter fine-tune on a project without a model: the starter reads up to STARTER_CHECK_FILMS of
    the training films first; when most are outside its experience (ml.ood), the run switches to the default recipe
    from scratch and says so (the run's config and progress, the audit history)."""
    from ml.checkpoint import SHIPPED_STARTER
    from ml.imaging import load_image
    from ml.infer import Predictor

    shown = train_samples[:STARTER_CHECK_FILMS]
    if not shown:
        return run_config
    predictor = Predictor(SHIPPED_STARTER)
    flags = [p.outside for p in predictor.predict_batch([load_image(s.image_path) for s in shown],
                                                        [s.male for s in shown], with_attention=False, mc_samples=0)]
    if 2 * sum(flags) <= len(flags):
        return run_config
    reason = (f"{sum(flags)} of {len(flags)} training films are outside the experience of the shipped starter "
              f"(phantoms): {START_WORDS['recipe']}")
    config = {**run.config, "init": "recipe", "init_reason": reason,
              "recipe": dict((run.project.settings or {}).get("training", {}).get("recipe", {}))}
    TrainingRun.objects.filter(pk=run.pk).update(config=config)
    run.config = config
    do_record("training.start_changed", run, project=run.project, before={"init": "starter"},
              after={"init": "recipe", "reason": reason})
    return RunConfig.from_dict(config)


def _train_recipe(run: TrainingRun, samples: list, out: Path, callback, val: set[str]):
    """The default recipe (ml.recipe) for this run: the project's recipe settings, the run's own time budget."""
    from ml import recipe

    settings = {**run.config.get("recipe", {}), "seed": run.pk % 1000}
    if run.config.get("max_seconds"):
        settings["max_seconds"] = float(run.config["max_seconds"])
    config = recipe.recipe_config(settings)
    callback.total_epochs = config.crops.epochs  # the regressor's epochs (the progress bar and its curve)
    callback.extra["stage"] = "segmenter"  # until the regressor's first epoch: its steps have no epoch count yet
    return recipe.run(samples, out, config, callback=callback, quiet=True, val_ids=val)


def _train_in_processes(samples, config, out: Path, processes: int, callback, init_path, val):
    """A run that asked for several GPUs: torchrun, one rank per GPU, progress and cancel as in-process."""
    import shutil
    import tempfile

    import torch

    from ml.launch import train_in_processes

    if torch.cuda.is_available() and torch.cuda.device_count() < processes:
        raise ValueError(f"The run asks for {processes} GPUs but this worker has {torch.cuda.device_count()}.")
    workdir = Path(tempfile.mkdtemp(prefix="boneage-ranks-"))
    try:
        return train_in_processes(samples, config, out, nproc=processes, callback=callback, init=init_path,
                                  val_ids=val, workdir=workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _cleanup(run: TrainingRun, out: Path | None) -> None:
    """Remove a run's checkpoint (the file written and its stored copy) unless a registered version uses it."""
    name = checkpoint_name(run.project_id, run.pk)
    if out is not None and not ModelVersion.objects.filter(checkpoint=name).exists():
        discard(name, scratch=out)
    if out is not None:  # the default recipe's per-epoch state (ml.resume): the platform does not resume runs yet
        from ml.resume import clear_state

        clear_state(out)


def _register(run: TrainingRun, result, samples: list, val: set[str], sources: dict[str, str]) -> None:
    """Register the candidate and let the gate decide, in one transaction with the run's end.

    The candidate and the active model are both measured through the platform's Predictor on the same held-out
    studies (boneage.modeling.gate); that MAE is the version's one validation figure (`metrics["val_mae"]`).
    A candidate the gate turns down is kept as `rejected` (a trainer may still promote it by hand); one that passes
    is promoted when the project auto-promotes, else it waits as a `candidate`.
    """
    import numpy as np

    from ml.infer import Predictor

    project = Project.objects.get(pk=run.project_id)
    val_samples = sorted((s for s in samples if s.id in val), key=lambda s: int(s.id))
    active = active_version(run.project_id)
    if run.init_from is not None and kept_its_start(result.metrics):
        trained = [s.id for s in samples if s.id not in val]
        _record_no_change(run, no_change(run.init_from.name, run.config, result.metrics, len(val_samples),
                                         nothing_new=len(trained) if nothing_new_since(run.init_from, trained) else None),
                          result.curve)
        return
    name = next_version_name(run.project_id)
    # the gate compares on the held-out studies neither model trained on (an active model of a narrower split trained
    # on some of a widened split's: run_outcome.validation_ids)
    trained_on = {str(i) for i in active.training_study_ids} if active is not None else set()
    compared = [i for i, s in enumerate(val_samples) if s.id not in trained_on]
    gate_samples = [val_samples[i] for i in compared]
    all_errors = heldout_errors(Predictor(local_path(checkpoint_name(run.project_id, run.pk))), val_samples)
    candidate_errors = [all_errors[i] for i in compared]
    active_errors = evaluate_version(active, gate_samples) if active is not None else None
    policy = gate_policy(project)
    decision = decide(candidate_errors, active_errors, policy, candidate_name=name,
                      active_name=active.name if active else "", seed=run.pk)
    if active is not None and active_errors is None:
        decision = dc_replace(decision, summary=f"{name} replaces {active.name}, whose checkpoint cannot be read")
    elif active is not None and decision.reason == "too_few_held_out":
        decision = dc_replace(decision, summary=too_few_words(len(gate_samples), len(samples), policy.min_held_out,
                                                              active.name, left_out=len(val_samples) - len(gate_samples)))
    ending = how_it_ended(run.config, result.metrics)  # a run cut short says so, whatever the gate decided
    if ending:
        decision = dc_replace(decision, summary=f"{decision.summary} ({ending})")
    promote = decision.passed and project.auto_promote
    gate = {**decision.to_dict(), "split": [s.id for s in val_samples], "active": active.name if active else None,
            "auto_promote": project.auto_promote}
    metrics = {k: v for k, v in result.metrics.items() if k not in ("val_ids", "val_mae")}
    # the version's one validation figure: all its held-out studies (the gate's, unless it left some out)
    metrics["val_mae"] = round(float(np.mean(np.abs(all_errors))), 3) if all_errors else None
    metrics["training_val_mae"] = result.metrics.get("val_mae")  # the training loop's own figure (its curve)
    metrics["gate"] = gate
    metrics["label_sources"] = {src: sum(1 for v in sources.values() if v == src) for src in set(sources.values())}
    # what its interval pools with when its own held-out studies are too few for the project's level (issue 32)
    metrics["interval_fallback"] = fallback_calibration(run.project_id, metrics.get("interval_scores") or [],
                                                        run.init_from, run.config)
    metrics = json_safe(metrics)
    outcome = decision.summary
    if decision.passed and not project.auto_promote:
        outcome = f"{decision.summary}; auto-promotion is off: a trainer may promote {name}"
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.state not in (RunState.RUNNING, RunState.CANCELLING):
            _cleanup(run, writable_path(checkpoint_name(run.project_id, run.pk)))
            return
        Project.objects.select_for_update().filter(pk=run.project_id).first()
        version = ModelVersion.objects.create(
            project_id=run.project_id, name=name, checkpoint=checkpoint_name(run.project_id, run.pk),
            sha256=result.sha256, config=run.config, metrics=metrics, parent=run.init_from,
            status=ModelStatus.CANDIDATE if decision.passed else ModelStatus.REJECTED,
            # a run of no epochs (make run's starter, as shipped) learned none of them
            training_study_ids=sorted(int(s.id) for s in samples if s.id not in val) if result.metrics.get("epochs")
            else [],
            validation_study_ids=sorted(int(i) for i in val), created_by=run.created_by,
        )
        locked.curve = json_safe(result.curve)
        locked.progress = {**locked.progress, "outcome": outcome}
        locked.save(update_fields=["curve", "progress"])
        do_record("model.registered", version, actor=run.created_by, project=run.project,
                  after={"name": version.name, "run": run.pk, "val_mae": metrics["val_mae"],
                         "gate": decision.passed, "outcome": outcome})
    with transaction.atomic():  # the run's end and the gate's decision commit (and are announced) together
        finished = _finish(run.pk, RunState.SUCCEEDED, result=version,
                           extra={"val_mae": metrics["val_mae"], "active_val_mae": decision.active_mae,
                                  "promoted": promote, "outcome": outcome, "kept": None if promote else
                                  (active.name if active else None)})
        if finished and promote:
            do_promote(version, actor=None, reason=f"gate: {decision.summary}")
        elif finished and not decision.passed:
            publish(run.project_id, "model.rejected_by_gate", model_version=version.pk, name=version.name,
                    val_mae=metrics["val_mae"], active_val_mae=decision.active_mae, outcome=outcome)


def nothing_new_since(start: ModelVersion, trained_ids: list[str]) -> bool:
    """The run trained only on studies its start had trained on, and none of them was labelled since."""
    learned = {str(i) for i in start.training_study_ids}
    return (bool(trained_ids) and set(trained_ids) <= learned and not AgeLabel.objects.filter(
        study_id__in=[int(i) for i in trained_ids], created_at__gt=start.created_at).exists())


def _record_no_change(run: TrainingRun, outcome: str, curve: list) -> None:
    """The run shipped the weights it started from: it succeeded, changed nothing, registers no version to promote,
    and its stored checkpoint (a copy of its start) is removed."""
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.state not in (RunState.RUNNING, RunState.CANCELLING):
            return
        locked.curve, locked.progress = json_safe(curve), {**locked.progress, "outcome": outcome, "no_change": True}
        locked.save(update_fields=["curve", "progress"])
        _finish(run.pk, RunState.SUCCEEDED, extra={"promoted": False, "outcome": outcome,
                                                    "kept": run.init_from.name if run.init_from else None})
    _cleanup(run, writable_path(checkpoint_name(run.project_id, run.pk)))


def auto_retrain_on_label(sender, label, **kwargs) -> None:
    """Receiver of core.signals.label_saved: after N new expert labels (project setting auto_retrain_after_labels)
    a run starts by itself, once the label commits."""
    if label.source != "expert":
        return
    project_id = label.study.project_id
    transaction.on_commit(lambda: maybe_auto_retrain(project_id))


def maybe_auto_retrain(project_id: int) -> TrainingRun | None:
    """After N new expert labels (project setting `auto_retrain_after_labels`, 0 = off) start a run."""
    project = Project.objects.filter(pk=project_id).first()
    threshold = int((project.settings or {}).get("auto_retrain_after_labels", 0) or 0) if project else 0
    if threshold <= 0:
        return None
    last = TrainingRun.objects.filter(project_id=project_id).order_by("-created_at").first()
    new = AgeLabel.objects.filter(study__project_id=project_id, source="expert")
    if last is not None:
        new = new.filter(created_at__gt=last.created_at)
    if new.count() < threshold or TrainingRun.objects.filter(project_id=project_id, state__in=ACTIVE_STATES).exists():
        return None
    try:
        return do_start_training(project, trigger="auto")
    except ModelingError:
        return None


__all__ = [
    "check_run_request",
    "close_old_connections",
    "do_cancel_run",
    "do_start_training",
    "maybe_auto_retrain",
    "reap_stale_runs",
    "run_training",
    "training_samples",
]
