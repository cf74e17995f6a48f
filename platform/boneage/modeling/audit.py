"""The label audit: k fold models cross-fitted on a project's labels, an out-of-fold prediction for every labelled study.

A model leans towards the labels it trained on, wrong ones included (review/rules.py), so a label can only be
questioned by a model that never saw it. An audit run (`POST …/training-runs/ {"kind": "audit", "folds": 5}`) splits
the labelled studies into k near-equal folds (dealt in the order of a hash of the study id), trains one model per fold on the other folds (from
the starter weights or from scratch, never from a model that trained on them), and stores its prediction of its own
fold as an out-of-fold Prediction of an `audit` version. The review rules then judge every labelled study by it (the
"model vs label" rule). Nothing is registered until every fold is done: a cancelled or failed audit keeps nothing.

A fold version's interval is calibrated on the other folds' out-of-fold readings (`cross_fold_calibration`), not on
its own validation split: that split is the same ~10 % of the studies in every fold (a hash of the id), 24–29 studies
in a 300-study audit, and one easy split under-stated every fold's interval (0.75 coverage of the true ages).
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.db import transaction

from boneage.core.events import publish
from boneage.core.signals import studies_changed
from boneage.core.storage import discard, store_file, writable_path
from boneage.modeling.models import ModelStatus, ModelVersion, Prediction, RunState, TrainingRun
from boneage.studies.models import Study

MIN_TRAIN_PER_FOLD = 4


def fold_groups(samples: list, folds: int) -> list[list]:
    """k folds of near-equal size: the studies ordered by a hash of their id and dealt out in turn, so two audits of
    the same labels split them alike and no fold is empty while there are k studies. (A fold per id hash alone left
    a fold empty by chance: 3 folds of 12 studies, about 1 time in 40.)"""
    ordered = sorted(samples, key=lambda s: hashlib.sha256(f"audit:{s.id}".encode()).hexdigest())
    return [ordered[fold::folds] for fold in range(folds)]


def fold_checkpoint_name(project_id: int, run_id: int, fold: int) -> str:
    return f"models/{project_id}/audit-{run_id}-fold{fold}.pt"


def run_audit(run: TrainingRun, samples: list, config: Any, init_path: Path | None, folds: int, callback) -> None:
    """Train the fold models, predict each held-out fold, then register everything in one transaction."""
    from boneage.modeling.training import _finish
    from ml.data import DataError, split_ids
    from ml.imaging import load_image
    from ml.infer import Predictor
    from ml.train import train

    groups = fold_groups(samples, folds)
    if any(len(samples) - len(held) < MIN_TRAIN_PER_FOLD or not held for held in groups):
        raise DataError(f"{len(samples)} labelled studies are too few for a {folds}-fold audit: every fold needs "
                        f"studies of its own and at least {MIN_TRAIN_PER_FOLD} to train on.")
    started, written, done = time.monotonic(), [], []
    try:
        for fold, held in enumerate(groups, start=1):
            held_ids = {s.id for s in held}
            train_samples = [s for s in samples if s.id not in held_ids]
            callback.extra = {"fold": fold, "folds": folds}
            callback.curve = []
            name = fold_checkpoint_name(run.project_id, run.pk, fold)
            out = writable_path(name)
            written.append((name, out))
            result = train(train_samples, config, out, callback=callback, init=init_path,
                           val_ids=split_ids([s.id for s in train_samples], 0.1))
            if result.cancelled:
                _discard(written)
                _finish(run.pk, RunState.CANCELLED, error="")
                return
            store_file(out, name)
            predictor = Predictor(out)
            readings = []
            for start in range(0, len(held), 16):
                chunk = held[start:start + 16]
                readings += predictor.predict_batch([load_image(s.image_path) for s in chunk],
                                                    [s.male for s in chunk], with_attention=False)
            done.append((fold, name, result, train_samples, held, readings))
            publish(run.project_id, "training.progress", run=run.pk, epoch=len(result.curve), step=callback.step,
                    loss=None, val_mae=result.metrics.get("val_mae"), total_epochs=callback.total_epochs,
                    fold=fold, folds=folds)
    except BaseException:
        _discard(written)
        raise
    _register(run, done, folds, time.monotonic() - started)


def _discard(written: Sequence[tuple[str, Path | None]]) -> None:
    for name, out in written:
        discard(name, scratch=out)


def cross_fold_calibration(done: list) -> dict[int, dict[str, Any]]:
    """Per fold, the interval metrics (`interval_scores`, `interval_heldout`) from every other fold's held-out readings
    against the labels they were trained without: hundreds of scores where the fold's own validation split has a few
    dozen, each from a model that did not train on the study it scores (the cross-fitting of CV+, Barber et al. 2021).
    Wrong labels among them are the far-out scores the interval leaves out (ml.uncertainty.inlier_scores)."""
    import numpy as np

    from ml.uncertainty import conformal_scores, heldout_points

    rows = {fold: (np.array([float(r.age_months) for r in readings]), np.array([s.age_months for s in held], float),
                   np.array([float(r.std_months) for r in readings]))
            for fold, _, _, _, held, readings in done}
    calibration = {}
    for fold in rows:
        others = [rows[other] for other in rows if other != fold]
        pred, label, std = (np.concatenate([part[i] for part in others]) for i in range(3))
        calibration[fold] = {"interval_scores": conformal_scores(pred - label, std),
                             "interval_heldout": heldout_points(pred, label, std),
                             "interval_source": "the other folds' out-of-fold readings"}
    return calibration


def _register(run: TrainingRun, done: list, folds: int, seconds: float) -> None:
    from boneage.modeling.training import _finish

    errors, study_ids = [], []
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.state not in (RunState.RUNNING, RunState.CANCELLING):
            _discard([(name, None) for _, name, *_ in done])  # stored files; the scratch copies are gone
            return
        studies = Study.objects.in_bulk([int(s.id) for *_, held, _ in done for s in held])
        calibration = cross_fold_calibration(done)
        for fold, name, result, train_samples, held, readings in done:
            version = ModelVersion.objects.create(
                project_id=run.project_id, name=f"audit {run.pk} · fold {fold}/{folds}", checkpoint=name,
                sha256=result.sha256, config=run.config, status=ModelStatus.AUDIT,
                metrics={**{k: v for k, v in result.metrics.items() if k != "val_ids"}, **calibration[fold],
                         "audit_run": run.pk, "fold": fold, "folds": folds},
                training_study_ids=sorted(int(s.id) for s in train_samples),
                validation_study_ids=sorted(int(s.id) for s in held), created_by=run.created_by)
            for sample, reading in zip(held, readings):
                Prediction.objects.create(study=studies[int(sample.id)], model_version=version,
                                          age_months=float(reading.age_months), std_months=float(reading.std_months),
                                          box=[float(v) for v in reading.box], score=float(reading.score),
                                          out_of_fold=True)
                errors.append(abs(float(reading.age_months) - sample.age_months))
                study_ids.append(int(sample.id))
        mae = sum(errors) / len(errors)
        outcome = (f"audit: {len(errors)} out-of-fold predictions from {folds} fold models, MAE {mae:.1f} months "
                   f"against the current labels, {seconds / 60:.1f} min")
        locked.progress = {**locked.progress, "outcome": outcome, "audit_mae": round(mae, 2),
                           "audited_studies": len(errors)}
        locked.save(update_fields=["progress"])
        _finish(run.pk, RunState.SUCCEEDED, extra={"outcome": outcome, "val_mae": round(mae, 2)})
        # the review rules judge every audited study again, now by a model that never saw its label
        transaction.on_commit(lambda: studies_changed.send(sender=Prediction, study_ids=study_ids, reason="prediction"))
