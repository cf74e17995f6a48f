"""Actions of the modeling app: predictions, the model registry, training runs, the next case.

`check_*` validate and raise ModelingError (status, code, detail); `do_*` change rows, record an audit
event and publish live events on commit. Views and Celery tasks call these; nothing else saves
modeling rows.
"""
from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from boneage.annotations.models import AgeLabel
from boneage.audit.actions import do_record
from boneage.core.device import describe_device
from boneage.core.errors import AppError
from boneage.core.events import publish, publish_many
from boneage.core.signals import model_promoted, reprediction_requested, studies_changed, study_changed
from boneage.core.storage import local_file
from boneage.modeling import conf, reprediction
from boneage.modeling.coreset import STRATEGY as CORESET
from boneage.modeling.coreset import embedding_bytes, rank_version
from boneage.modeling.models import ActiveScore, ModelStatus, ModelVersion, Prediction
from boneage.modeling.prediction_files import (
    PREDICTION_FILES,
    SHEET,
    ensure_prediction_file,
    heatmap_png,
    heatmap_side,
    mask_png,
    prediction_file_name,
    prediction_file_url,
    save_derived,
    sheet_png,
)
from boneage.studies.derive import load_network_input, record_failure
from boneage.studies.models import Project, Study, is_male

logger = logging.getLogger(__name__)

# starter: ml.checkpoint.SHIPPED_STARTER; recipe: the default recipe for real films from scratch (ml.recipe)
INIT_CHOICES = ("active", "fresh", "starter", "recipe")


class ModelingError(AppError):
    """A modeling request refused (boneage.core.errors)."""


# --- files ----------------------------------------------------------------------------------------

def checkpoint_name(project_id: int, run_id: int) -> str:
    return f"models/{project_id}/run-{run_id}.pt"


def local_path(name: str) -> Path:
    """A filesystem path holding a stored file (the Predictor and the ml/ loaders need one); on S3 a cached copy."""
    return local_file(name)


# --- the predictor cache (one per worker process) ---------------------------------------------------

_PREDICTORS: OrderedDict[tuple[int, str], Any] = OrderedDict()
_PREDICTORS_LOCK = threading.Lock()


@contextmanager
def on_threads(threads: int):
    """torch runs on `threads` threads inside, and on what it had before after (one task at a time per worker
    process: a training task after this one gets its own setting back)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def get_predictor(version: ModelVersion):
    """The loaded Predictor of a version; the file's sha256 must match the registry. Raises CheckpointError."""
    from ml.checkpoint import CheckpointError, file_sha256
    from ml.infer import Predictor

    key = (version.pk, version.sha256)
    with _PREDICTORS_LOCK:
        if key in _PREDICTORS:
            _PREDICTORS.move_to_end(key)
            return _PREDICTORS[key]
    path = local_path(version.checkpoint)
    if not path.is_file():
        raise CheckpointError(f"model {version.name}: checkpoint file {version.checkpoint} is missing")
    actual = file_sha256(path)
    if actual != version.sha256:
        raise CheckpointError(f"model {version.name}: checkpoint {version.checkpoint} is corrupt "
                              f"(sha256 {actual[:12]}…, the registry says {version.sha256[:12]}…)")
    predictor = Predictor(path)
    with _PREDICTORS_LOCK:
        _PREDICTORS[key] = predictor
        while len(_PREDICTORS) > 2:
            _PREDICTORS.popitem(last=False)
    return predictor


def active_version(project_id: int) -> ModelVersion | None:
    return ModelVersion.objects.filter(project_id=project_id, status=ModelStatus.ACTIVE).first()


def _male(study: Study) -> bool | None:
    return is_male(study.sex)


# --- predictions ------------------------------------------------------------------------------------

def do_predict_study(study_id: int, version_id: int | None = None) -> Prediction | None:
    """Predict one study with the active (or given) model, publishing each part as soon as it exists.

    Idempotent: an existing prediction of the same version is returned untouched. No transaction is
    held while the network runs, so prediction.mask/age/attention leave the moment they are computed.
    """
    from ml.checkpoint import CheckpointError

    t0 = time.perf_counter()
    study = Study.objects.select_related("image", "project").filter(pk=study_id).first()
    if study is None:
        return None
    version = (ModelVersion.objects.filter(pk=version_id, project_id=study.project_id).first() if version_id
               else active_version(study.project_id))
    if version is None:
        publish(study.project_id, "prediction.skipped", study=study.pk, reason="no_model",
                detail="This project has no active model yet: train one (POST /api/projects/{p}/training-runs/).")
        return None
    existing = Prediction.objects.filter(study=study, model_version=version).first()
    if existing is not None:
        return existing
    try:
        predictor = get_predictor(version)
    except CheckpointError as exc:
        logger.error("prediction of study %s skipped: %s", study_id, exc)
        publish(study.project_id, "prediction.failed", study=study.pk, model_version=version.pk,
                reason="bad_checkpoint", detail=str(exc)[:500])
        return None

    publish(study.project_id, "prediction.started", study=study.pk, model_version=version.pk, model=version.name)
    unit = load_network_input(study.image, predictor.config.work_size)
    t_load = time.perf_counter()
    files: dict[str, str] = {}
    result = None
    for event in predictor.predict_stream(unit, _male(study), attention_side=heatmap_side(predictor)):
        kind = event[0]
        if kind == "mask":
            _, mask, box, score = event
            files["mask"] = save_derived(prediction_file_name(study, version.pk, "mask"), mask_png(mask))
            publish(study.project_id, "prediction.mask", study=study.pk, model_version=version.pk,
                    url=prediction_file_url(study.pk, version.pk, "mask"), box=[round(v, 1) for v in box],
                    score=round(float(score), 4))
        elif kind == "age":
            publish(study.project_id, "prediction.age", study=study.pk, model_version=version.pk,
                    age_months=round(float(event[1]), 2), std_months=round(float(event[2]), 2))
        elif kind == "attention":
            _, name, map_ = event
            files[name] = save_derived(prediction_file_name(study, version.pk, name), heatmap_png(map_))
            publish(study.project_id, "prediction.attention", study=study.pk, model_version=version.pk,
                    name=name, url=prediction_file_url(study.pk, version.pk, name))
        else:
            result = event[1]
    assert result is not None
    timings = {**{k: round(v, 1) for k, v in result.timings.items()}, "load": round((t_load - t0) * 1e3, 1),
               "task_total": round((time.perf_counter() - t0) * 1e3, 1)}
    return _store_prediction(study, version, result, files, timings)


def _trained_on(version: ModelVersion) -> frozenset[str]:
    return frozenset(map(str, version.training_study_ids))


def prediction_fields(study: Study, result, files: dict[str, str], timings: dict[str, float],
                      trained_on: frozenset[str]) -> dict[str, Any]:
    """A Prediction's values from an ml.infer result and its stored files: the one place a prediction is built (one
    study at a time and in batches). out_of_fold: the version did not train on this study (`trained_on`, ids as
    text: the stored list may hold numbers or strings)."""
    return {"age_months": float(result.age_months), "std_months": float(result.std_months),
            "mask": files.get("mask", ""), "box": [float(v) for v in result.box], "score": float(result.score),
            "attention": {k: v for k, v in files.items() if k != "mask"}, "timings": timings,
            "device": describe_device(), "out_of_fold": str(study.pk) not in trained_on,
            "embedding": embedding_bytes(result.embedding),
            # outside the model's experience (ml.ood): judged by the predictor against the version's reference
            "outside": bool(result.outside), "outside_reason": str(result.outside_reason),
            "ood_score": float(result.ood_score) if math.isfinite(result.ood_score) else None}


def _store_prediction(study: Study, version: ModelVersion, result, files: dict[str, str],
                      timings: dict[str, float], *, announce: bool = True) -> Prediction:
    with transaction.atomic():
        Study.objects.select_for_update().filter(pk=study.pk).first()  # one writer per study
        prediction, created = Prediction.objects.get_or_create(
            study=study, model_version=version,
            defaults=prediction_fields(study, result, files, timings, _trained_on(version)),
        )
        if created:
            if not AgeLabel.objects.filter(study=study).exists():
                _score_studies(version, [prediction])
            if announce:
                publish(study.project_id, "prediction.ready", study=study.pk, prediction=prediction.pk,
                        model_version=version.pk, age_months=round(prediction.age_months, 2),
                        std_months=round(prediction.std_months, 2))
            transaction.on_commit(lambda: study_changed.send(sender=Prediction, study_id=study.pk, reason="prediction"))
    return prediction


def _store_batch(version: ModelVersion, items: list[tuple[Study, Any, dict[str, str], dict[str, float]]]) -> int:
    """One transaction for a batch of re-predictions (scores are recomputed once at the end)."""
    with transaction.atomic():
        trained_on = _trained_on(version)
        rows = [Prediction(study=study, model_version=version, **prediction_fields(study, r, files, timings, trained_on))
                for study, r, files, timings in items]
        existing = set(Prediction.objects.filter(model_version=version, study__in=[s for s, *_ in items])
                       .values_list("study_id", flat=True))
        rows = [row for row in rows if row.study_id not in existing]
        Prediction.objects.bulk_create(rows, ignore_conflicts=True)
        publish_many(version.project_id, [
            {"type": "prediction.ready", "study": row.study_id, "model_version": version.pk,
             "age_months": round(row.age_months, 2), "std_months": round(row.std_months, 2)} for row in rows])
        ids = [row.study_id for row in rows]
        if ids:  # the review rules of the whole batch run on the cpu queue: the gpu worker goes on predicting
            transaction.on_commit(lambda: studies_changed.send(sender=Prediction, study_ids=ids, reason="prediction"))
    return len(rows)


def _load_units(studies: list[Study], work_side: int) -> list[tuple[Study, Any]]:
    """Each study's network input (load_network_input: its work copy, or the full image decoded), in a helper thread;
    None for a study that cannot be read (recorded on it)."""
    out: list[tuple[Study, Any]] = []
    for study in studies:
        try:
            unit = load_network_input(study.image, work_side)
            if isinstance(unit, np.ndarray) and unit.ndim != 2:
                raise ValueError(f"expected one 2-D grey image, got shape {unit.shape}")
            out.append((study, unit))
        except Exception as exc:  # one unreadable study must not stop the others
            logger.exception("re-prediction: cannot load study %s", study.pk)
            _skip_study(study, f"{type(exc).__name__}: {exc}")
            out.append((study, None))
    if any(unit is None for _, unit in out):
        connection.close()  # the failure record opened this helper thread's own database connection
    return out


def _skip_study(study: Study, detail: str) -> None:
    """Record on the study why the batch skipped it, and tell the project page."""
    record_failure(study.pk, f"could not predict: {detail}")
    publish(study.project_id, "prediction.failed", study=study.pk, reason="study_failed", detail=detail[:500])


def _predict_all(predictor, ok: list[tuple[Study, Any]]) -> list[tuple[tuple[Study, Any], Any]]:
    """(study, input) pairs with their predictions; a batch that fails is predicted study by study."""
    if not ok:
        return []
    try:
        return list(zip(ok, predictor.predict_batch([u for _, u in ok], [_male(s) for s, _ in ok],
                                                    attention_side=heatmap_side(predictor))))
    except Exception:  # one bad study must not cost the whole batch its predictions
        logger.exception("re-prediction: a batch failed; predicting its studies one by one")
        return _predict_each(predictor, ok)


def _predict_each(predictor, ok: list[tuple[Study, Any]]) -> list[tuple[tuple[Study, Any], Any]]:
    """The batch failed: predict its studies one by one, skipping (and recording) those that fail alone."""
    done = []
    for study, unit in ok:
        try:
            done.append(((study, unit), predictor.predict_batch([unit], [_male(study)],
                                                               attention_side=heatmap_side(predictor))[0]))
        except Exception as exc:
            logger.exception("re-prediction: study %s failed", study.pk)
            _skip_study(study, f"{type(exc).__name__}: {exc}")
    return done


def do_repredict_project(version_id: int, *, batch_size: int = conf.REPREDICT_BATCH,
                         progress: Any = None) -> int:
    """Predict every study of the version's project that has no prediction of it yet, in batches.

    Stops early when the version is no longer active. Returns how many predictions it made.
    """
    from ml.checkpoint import CheckpointError

    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None or version.status != ModelStatus.ACTIVE:
        return 0
    project_id = version.project_id
    done_ids = Prediction.objects.filter(model_version=version).values("study_id")
    todo = list(Study.objects.filter(project_id=project_id).exclude(pk__in=done_ids)
                .select_related("image").order_by("pk"))
    total, made = len(todo), 0
    try:
        predictor = get_predictor(version)
    except CheckpointError as exc:
        reprediction.mark(version.pk, reprediction.FAILED)
        publish(project_id, "model.repredict.failed", model_version=version.pk, detail=str(exc)[:500])
        return 0
    reprediction.mark(version.pk, reprediction.RUNNING, done=0, total=total)
    publish(project_id, "model.repredict.progress", model_version=version.pk, done=0, total=total)
    batches = [todo[i:i + batch_size] for i in range(0, total, batch_size)]
    work_side = predictor.config.work_size

    def write_files(pairs: list) -> list[dict[str, str]]:
        out = []
        for (study, _), result in pairs:
            files = {"mask": save_derived(prediction_file_name(study, version.pk, "mask"), mask_png(result.mask))}
            if result.attention:  # one sheet; each overlay is drawn from it on first view (prediction_files.py)
                save_derived(prediction_file_name(study, version.pk, SHEET), sheet_png(result.attention))
                files.update({name: prediction_file_name(study, version.pk, name) for name in result.attention})
            out.append(files)
        return out

    def finish(pairs: list, timings: dict[str, float], done: int) -> int:
        """Write a predicted batch's files (two threads), store its rows, say how far the project is."""
        half = len(pairs) // 2
        other_half = helpers.submit(write_files, pairs[half:])
        files = write_files(pairs[:half]) + other_half.result()
        stored = _store_batch(version, [(study, result, f, timings)
                                        for ((study, _), result), f in zip(pairs, files)]) if pairs else 0
        reprediction.mark(version.pk, reprediction.RUNNING, done=done)  # for pages opened mid-run
        publish(project_id, "model.repredict.progress", model_version=version.pk, done=done, total=total)
        if progress is not None:
            progress(done, total)
        return stored

    # On a CPU the network and the rest take turns, each with every core: the network runs a batch on
    # conf.repredict_threads() threads, then the next batch decodes (a helper thread) while this one's files are
    # written (two threads) and its rows stored. Running them beside a 2-thread network instead cost it more than their
    # own CPU time (OpenMP threads wait for a preempted peer): docs/benchmarks.md, re-prediction third pass. On an
    # accelerator the network does not need the cores, so the files and rows of batch k run (one batch at a time, in
    # order) while the device predicts batch k+1.
    overlap = conf.repredict_overlaps(predictor.device.type)
    finishing: list = []
    superseded = False
    with reprediction.heartbeat(version.pk), on_threads(conf.repredict_threads()), \
            ThreadPoolExecutor(max_workers=2) as helpers, ThreadPoolExecutor(max_workers=1) as finisher:
        loaded = helpers.submit(_load_units, batches[0], work_side).result() if batches else []
        for index in range(len(batches)):
            if not ModelVersion.objects.filter(pk=version.pk, status=ModelStatus.ACTIVE).exists():
                superseded = True
                break  # superseded: the newer version re-predicts
            ok = [(s, u) for s, u in loaded if u is not None]
            t0 = time.perf_counter()
            pairs = _predict_all(predictor, ok)
            timings = {"batch_ms_per_study": round((time.perf_counter() - t0) * 1e3 / max(len(ok), 1), 1)}
            following = helpers.submit(_load_units, batches[index + 1], work_side) if index + 1 < len(batches) else None
            done = min(total, (index + 1) * batch_size)
            if overlap:
                if len(finishing) >= 2:  # at most two batches wait for their files: memory stays bounded
                    made += finishing.pop(0).result()
                finishing.append(finisher.submit(finish, pairs, timings, done))
            else:
                made += finish(pairs, timings, done)
            loaded = following.result() if following is not None else []
        made += sum(future.result() for future in finishing)
        finisher.submit(lambda: connection.close()).result()  # the finisher's own database connection (the rows)
    do_rescore_project(version.pk)  # the next-case ranking of the new model, before announcing it is done
    reprediction.mark(version.pk, reprediction.SUPERSEDED if superseded else reprediction.DONE)
    publish(project_id, "model.repredicted", model_version=version.pk, predicted=made, total=total)
    return made


def latest_prediction(study: Study) -> Prediction | None:
    """The active model's prediction of the study; until it has read the study (a re-prediction under way), the
    reading of the version it replaced; else the newest one."""
    active = active_version(study.project_id)
    for version in (active, reprediction.replaced_version(active)):
        found = (Prediction.objects.filter(study=study, model_version=version).select_related("model_version").first()
                 if version is not None else None)
        if found is not None:
            return found
    return Prediction.objects.filter(study=study).select_related("model_version").first()


def check_latest_prediction(study: Study) -> Prediction:
    prediction = latest_prediction(study)
    if prediction is not None:
        return prediction
    if active_version(study.project_id) is None:
        raise ModelingError(404, "no_model", "This project has no active model yet, so the study has no "
                            "prediction. A trainer can start a training run.")
    raise ModelingError(404, "prediction_pending", "The active model has not predicted this study yet; "
                        "it will appear with the prediction.ready event.")


def check_prediction_file(study: Study, version_id: int, part: str) -> str:
    if part not in PREDICTION_FILES:
        raise ModelingError(404, "not_found", f"No prediction file {part!r}; known: {', '.join(PREDICTION_FILES)}.")
    if not ModelVersion.objects.filter(pk=version_id, project_id=study.project_id).exists():
        raise ModelingError(404, "not_found", "No such model version in this project.")
    name = ensure_prediction_file(study, version_id, part)
    if name is None:
        raise ModelingError(404, "not_found", "This part of the prediction is not ready (yet).")
    return name


# --- active-learning scores and the next case -------------------------------------------------------

def _labelled_features(project_id: int) -> np.ndarray:
    from ml.active import features

    rows = list(AgeLabel.objects.filter(study__project_id=project_id).values_list("study_id", "months", "study__sex"))
    latest: dict[int, tuple[float, str]] = {}
    for study_id, months, sex in rows:
        latest[study_id] = (months, sex)
    return features([m for m, _ in latest.values()], [is_male(s) for _, s in latest.values()])


def _score_studies(version: ModelVersion, predictions: list[Prediction]) -> None:
    """Upsert the ActiveScore rows (every strategy) of these predictions' studies for this version."""
    from ml.active import STRATEGIES, features, scores

    if not predictions:
        return
    keys = [str(p.study_id) for p in predictions]
    std = [p.std_months for p in predictions]
    feats = features([p.age_months for p in predictions], [is_male(p.study.sex) for p in predictions])
    labelled = _labelled_features(version.project_id)
    rows = [ActiveScore(study_id=prediction.study_id, model_version=version, strategy=strategy, score=float(value))
            for strategy in STRATEGIES
            for prediction, value in zip(predictions, scores(strategy, keys, std, feats, labelled, seed=version.pk))]
    # One upsert instead of a get + save per (study, strategy); last_served_at survives a re-score.
    ActiveScore.objects.bulk_create(rows, batch_size=1000, update_conflicts=True, update_fields=["score"],
                                    unique_fields=["study", "model_version", "strategy"])


def do_rank_project(project_id: int) -> int:
    """Re-rank the core-set order of the project's active model (the cpu task's action); 0 when it has none."""
    version = active_version(project_id)
    if version is None:
        return 0
    with transaction.atomic():
        return rank_version(version)


def do_rescore_project(version_id: int) -> int:
    """Recompute every unlabelled study's scores for the version (after re-prediction or new labels)."""
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        return 0
    labelled = AgeLabel.objects.filter(study=OuterRef("study"))
    predictions = list(Prediction.objects.filter(model_version=version).exclude(Exists(labelled))
                       .select_related("study"))
    with transaction.atomic():
        _score_studies(version, predictions)
        rank_version(version)  # the core-set order, over all of them at once
        publish(version.project_id, "active.ranked", model_version=version.pk, scored=len(predictions))
    return len(predictions)


@dataclass
class NextCase:
    study: Study
    strategy: str
    score: float | None
    model_version: ModelVersion | None
    rank: int | None
    reason: str = ""


def project_strategy(project: Project) -> str:
    """The strategy the project's next case uses when the request names none (project setting, else the platform's)."""
    return str((project.settings or {}).get(conf.NEXT_CASE_SETTING) or conf.NEXT_CASE_DEFAULT_STRATEGY)


def ranking_strategy(project: Project, version: ModelVersion | None) -> str:
    """The scores the worklist's "most informative first" follows: the ones "Next case" serves by default (the
    project's strategy; uncertainty while core-set has not ranked the version, as do_next_case falls back)."""
    strategy = project_strategy(project)
    if strategy == CORESET and not ActiveScore.objects.filter(model_version=version, strategy=CORESET).exists():
        return "uncertainty"
    return strategy


def check_strategy(value: str | None, project: Project) -> str:
    from ml.active import NEXT_CASE_STRATEGIES

    strategy = (value or "").strip() or project_strategy(project)
    if strategy not in NEXT_CASE_STRATEGIES:
        raise ModelingError(400, "invalid_strategy",
                            f"strategy must be one of {', '.join(NEXT_CASE_STRATEGIES)}, not {strategy!r}.")
    return strategy


def do_next_case(project: Project, strategy: str, *, top_k: int = conf.NEXT_CASE_TOP_K,
                 skip: Collection[int] = ()) -> NextCase:
    """The least recently served of the top-k unlabelled studies by score; serving stamps it.

    Two labelers asking one after the other (or at once: rows are locked, skip_locked) get different studies.
    `skip`: studies this labeler just passed over; they come back only when nothing else waits.
    """
    labelled = Exists(AgeLabel.objects.filter(study=OuterRef("study")))
    version = active_version(project.pk)
    if version is not None:
        with transaction.atomic():
            top = list(ActiveScore.objects.select_for_update(skip_locked=True, of=("self",))
                       .filter(model_version=version, strategy=strategy, study__project=project)
                       .exclude(labelled).select_related("study").order_by("-score", "study_id")[:top_k])
            ranked = {s.pk: rank for rank, s in enumerate(top, start=1)}  # in the strategy's order, skips included
            top = [s for s in top if s.study_id not in skip] or top
            if top:
                epoch = timezone.make_aware(timezone.datetime(1970, 1, 1))
                chosen = min(top, key=lambda s: (s.last_served_at or epoch, ranked[s.pk]))
                chosen.last_served_at = timezone.now()
                chosen.save(update_fields=["last_served_at"])
                return NextCase(chosen.study, strategy, chosen.score, version, ranked[chosen.pk])
        if strategy == CORESET:
            # Not ranked yet (a prediction without an embedding, or a ranking still waiting on the cpu queue): the
            # uncertainty order is the next best informed one, and the response says so.
            case = do_next_case(project, "uncertainty", top_k=top_k, skip=skip)
            case.reason = case.reason or "coreset_not_ranked"
            return case
    # No scores yet: the least recently served of the k oldest unlabelled studies, so labelers asking at the same time
    # spread over them instead of all opening the oldest (the load test's 470 conflicts in a minute).
    unlabelled = (Study.objects.filter(project=project).exclude(Exists(AgeLabel.objects.filter(study=OuterRef("pk"))))
                  .order_by("created_at", "pk"))
    reason = "no_model" if version is None else "not_scored_yet"
    with transaction.atomic():
        oldest = list(unlabelled.select_for_update(skip_locked=True)[:top_k]) or list(unlabelled[:top_k])
        waiting = [s for s in oldest if s.pk not in skip] or oldest
        if not waiting:
            raise ModelingError(404, "no_unlabelled_studies", "Every study of this project has a label.")
        epoch = timezone.make_aware(timezone.datetime(1970, 1, 1))
        study = min(waiting, key=lambda s: (s.served_at or epoch, s.created_at, s.pk))
        study.served_at = timezone.now()
        study.save(update_fields=["served_at"])
    return NextCase(study, "oldest", None, version, None, reason)


# --- the registry: promotion ------------------------------------------------------------------------

def check_checkpoint_intact(version: ModelVersion) -> None:
    """A promotion (a web request) checks the file's sha256 with hashlib, not ml.checkpoint: that imports torch."""
    try:
        path = local_path(version.checkpoint)
    except ModelingError:
        return
    if not path.is_file():
        raise ModelingError(409, "checkpoint_missing", f"Model {version.name}: its checkpoint file is missing.")
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    if digest != version.sha256:
        raise ModelingError(409, "checkpoint_corrupt", f"Model {version.name}: its checkpoint file does not match "
                            "the recorded sha256.")


def do_promote(version: ModelVersion, *, actor=None, reason: str = "manual") -> ModelVersion:
    """Make `version` the project's active model (retiring the current one) and re-predict every study.

    Promoting the active version again changes nothing. Rolling back = promoting an older version.
    """
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=version.project_id).first()
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.status == ModelStatus.ACTIVE:
            return version
        if version.status == ModelStatus.TRAINING:
            raise ModelingError(409, "not_trained", f"Model {version.name} is still training.")
        if version.status == ModelStatus.AUDIT:
            raise ModelingError(409, "audit_model", f"{version.name} is a label-audit fold model: it saw only part of "
                                "the labels and only judges the rest; train a model to promote.")
        check_checkpoint_intact(version)
        previous = active_version(version.project_id)
        if previous is not None:
            previous.status = ModelStatus.RETIRED
            previous.save(update_fields=["status"])
        version.status = ModelStatus.ACTIVE
        version.promoted_at = timezone.now()
        version.save(update_fields=["status", "promoted_at"])
        reprediction.mark_queued(version, previous, total=Study.objects.filter(project_id=version.project_id).exclude(
            pk__in=Prediction.objects.filter(model_version=version).values("study_id")).count())
        do_record("model.promoted", version, actor=actor, project=version.project,
                  before={"active": previous.name if previous else None},
                  after={"active": version.name, "reason": reason, "val_mae": version.metrics.get("val_mae")})
        publish(version.project_id, "model.promoted", model_version=version.pk, name=version.name, reason=reason,
                previous=previous.pk if previous else None, val_mae=version.metrics.get("val_mae"))
        model_promoted.send(sender=ModelVersion, version_id=version.pk)  # the pipeline re-predicts on commit
    return version


def do_rerun_reprediction(version: ModelVersion, *, actor=None) -> ModelVersion:
    """Run again the active version's re-prediction after its worker died (reprediction.reap_stale ended it FAILED):
    it reads the studies the version has not read yet; until then the replaced model's readings stay."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.status != ModelStatus.ACTIVE:
            raise ModelingError(409, "not_active", f"{version.name} is not the active model: only the active model's "
                                "re-prediction can run again.")
        if (version.reprediction or {}).get("state") != reprediction.FAILED:
            raise ModelingError(409, "reprediction_not_stopped", f"{version.name}'s re-prediction has not stopped, "
                                "so there is nothing to run again.")
        left = Study.objects.filter(project_id=version.project_id).exclude(
            pk__in=Prediction.objects.filter(model_version=version).values("study_id")).count()
        reprediction.mark(version.pk, reprediction.QUEUED, done=0, total=left)
        do_record("model.repredict_again", version, actor=actor, project=version.project,
                  after={"model": version.name, "studies_left": left})
        publish(version.project_id, "model.repredict.progress", model_version=version.pk, done=0, total=left)
        reprediction_requested.send(sender=ModelVersion, version_id=version.pk)  # the pipeline enqueues on commit
    version.refresh_from_db(fields=["reprediction"])
    return version


def next_version_name(project_id: int) -> str:
    return f"v{ModelVersion.objects.filter(project_id=project_id).exclude(status=ModelStatus.AUDIT).count() + 1}"
