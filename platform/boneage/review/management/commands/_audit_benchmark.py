"""review_benchmark --predictor audit: the product's own path from imported labels to the review queue.

After the cohort is imported (review_benchmark does that with `import_rsna`), everything below is what the workers
would do, called synchronously through the same actions their Celery tasks call — nothing reimplemented:

1. the cpu worker's post-ingest stages for every study: `do_derive`, then the Canny `do_automask`
   (boneage.pipeline.tasks; the prediction stage that follows finds no active model yet and is skipped);
2. the project's default training run, as `POST /training-runs/ {}` queues it (`check_run_request`,
   `do_start_training`), run by `run_training` (the modeling.train task's body); when the gate promotes the result,
   `do_repredict_project` (the task the promotion enqueues) reads every study with it;
3. the default label audit, `POST /training-runs/ {"kind": "audit", "folds": k}`, run the same way: k fine-tunes of
   the starter, each predicting the fold it did not train on (boneage.modeling.audit);
4. the review rules over the project (`evaluate_project`, what the review.evaluate_studies task runs for the
   audited studies), so the queue is what GET /review-items/ then lists.

`score_queue` reads that queue as the API orders it; `rescore_at_levels` re-runs the rules at another interval level
(the project setting the model_vs_label rule uses) on the same predictions.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import CommandError

from boneage.modeling.actions import ModelingError, do_repredict_project
from boneage.modeling.models import ModelStatus, ModelVersion, Prediction, RunState, TrainingRun
from boneage.modeling.training import check_run_request, do_start_training, run_training
from boneage.review.actions import evaluate_project, judging_prediction, queue
from boneage.studies.models import Project, Study

Echo = Callable[[str], None]


@dataclass
class AuditPathResult:
    """The audit's out-of-fold readings by external id (age, std), per-fold figures, phase wall times (s), details."""

    oof: dict[str, tuple[float, float]]
    folds: list[dict[str, Any]]
    seconds: dict[str, float]
    detail: dict[str, Any] = field(default_factory=dict)


def parse_request(text: str | None, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise CommandError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CommandError(f"{what} must be a JSON object")
    return value


def run_request(project: Project, request: dict[str, Any], echo: Echo) -> TrainingRun:
    """One training run exactly as the API starts it, run in this process (the worker's task body)."""
    try:
        config = check_run_request(project, request)
        run = do_start_training(project, config=config, trigger="manual", enqueue=False)
    except ModelingError as exc:
        raise CommandError(f"training run {request}: {exc.detail}") from exc
    run_training(run.pk, echo=echo)
    run.refresh_from_db()
    if run.state != RunState.SUCCEEDED:
        raise CommandError(f"training run {run.pk} ({request}) ended {run.state}: {run.error}")
    return run


def run_product_path(project: Project, studies: dict[str, Study], *, folds: int, train_request: dict[str, Any],
                     audit_request: dict[str, Any], threads: int, echo: Echo) -> AuditPathResult:
    import torch

    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _product_path(project, studies, folds=folds, train_request=train_request, audit_request=audit_request,
                             echo=echo)
    finally:
        torch.set_num_threads(threads_before)


def _product_path(project: Project, studies: dict[str, Study], *, folds: int, train_request: dict[str, Any],
                  audit_request: dict[str, Any], echo: Echo) -> AuditPathResult:
    from boneage.annotations.actions import do_automask
    from boneage.studies.derive import do_derive

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    masked = sum(1 for study in studies.values() if do_derive(study.pk) and do_automask(study.pk))
    seconds["pipeline"] = time.perf_counter() - t
    echo(f"derive + Canny automask: {masked} of {len(studies)} studies in {seconds['pipeline']:.0f} s")

    t = time.perf_counter()
    train = run_request(project, train_request, echo)
    seconds["training_run"] = time.perf_counter() - t
    version = ModelVersion.objects.get(pk=train.result_id)
    echo(f"training run {train.pk}: {version.name} {version.status}, validation MAE "
         f"{version.metrics.get('val_mae')} months ({seconds['training_run']:.0f} s); {train.progress.get('outcome')}")
    t = time.perf_counter()
    repredicted = do_repredict_project(version.pk) if version.status == ModelStatus.ACTIVE else 0
    seconds["repredict"] = time.perf_counter() - t
    echo(f"re-prediction with {version.name}: {repredicted} studies in {seconds['repredict']:.0f} s")

    t = time.perf_counter()
    audit = run_request(project, {**audit_request, "kind": "audit", "folds": folds}, echo)
    seconds["audit_run"] = time.perf_counter() - t
    echo(f"audit run {audit.pk}: {audit.progress.get('outcome')}")
    t = time.perf_counter()
    totals = evaluate_project(project.pk, cause="prediction")
    seconds["rules"] = time.perf_counter() - t
    echo(f"review rules over {totals['studies']} studies in {seconds['rules']:.0f} s: {totals}")

    by_pk = {study.pk: eid for eid, study in studies.items()}
    fold_versions = list(ModelVersion.objects.filter(project=project, status=ModelStatus.AUDIT,
                                                     metrics__audit_run=audit.pk).order_by("pk"))
    predictions = list(Prediction.objects.filter(model_version__in=fold_versions).order_by("pk"))
    oof = {by_pk[p.study_id]: (float(p.age_months), float(p.std_months)) for p in predictions}
    checks = audit_checks(fold_versions, predictions, set(by_pk))
    if checks["problems"]:
        raise CommandError(f"the audit broke its own contract: {checks['problems'][:5]}")
    judged_by: dict[str, int] = {}
    for study in studies.values():
        chosen = judging_prediction(study, labelled=True)
        key = "none" if chosen is None else chosen.model_version.status
        judged_by[key] = judged_by.get(key, 0) + 1
    fold_stats = [{"fold": v.metrics.get("fold"), "train": len(v.training_study_ids), "held_out": len(v.validation_study_ids),
                   "val_mae": v.metrics.get("val_mae"), "coverage90": v.metrics.get("coverage90"),
                   "epochs": v.metrics.get("epochs"), "train_s": v.metrics.get("seconds")} for v in fold_versions]
    return AuditPathResult(oof, fold_stats, seconds, {
        "training_run": {"id": train.pk, "config": train.config, "version": version.name, "status": version.status,
                         "val_mae": version.metrics.get("val_mae"), "outcome": train.progress.get("outcome"),
                         "repredicted": repredicted},
        "audit_run": {"id": audit.pk, "config": audit.config, "outcome": audit.progress.get("outcome"),
                      "audit_mae_vs_labels": audit.progress.get("audit_mae")},
        "checks": checks, "judged_by": judged_by, "rules": totals})


def audit_checks(fold_versions: list[ModelVersion], predictions: list[Prediction], labelled: set[int]) -> dict[str, Any]:
    """What holds by construction: one out-of-fold prediction per labelled study, by a fold that never trained on it."""
    problems: list[str] = []
    per_study: dict[int, int] = {}
    trained = {v.pk: set(v.training_study_ids) for v in fold_versions}
    held = {v.pk: set(v.validation_study_ids) for v in fold_versions}
    for p in predictions:
        per_study[p.study_id] = per_study.get(p.study_id, 0) + 1
        if not p.out_of_fold:
            problems.append(f"prediction {p.pk} is not marked out-of-fold")
        if p.study_id in trained[p.model_version_id] or p.study_id not in held[p.model_version_id]:
            problems.append(f"study {p.study_id} predicted by a fold that trained on it or did not hold it out")
    problems += [f"study {s} has {per_study.get(s, 0)} audit predictions" for s in sorted(labelled)
                 if per_study.get(s, 0) != 1]
    for v in fold_versions:
        if trained[v.pk] & held[v.pk]:
            problems.append(f"{v.name} trained on studies it held out")
    return {"fold_models": len(fold_versions), "predictions": len(predictions),
            "studies_with_one": sum(1 for s in labelled if per_study.get(s, 0) == 1), "problems": problems}


def score_queue(project: Project, by_pk: dict[int, str], corrupted: dict[str, tuple[float, float]], top: int,
                oof: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """The open queue as GET /api/projects/{p}/review-items/ orders it; corrupted studies in its first `top` items."""
    items = list(queue(project, reasons=[], state="open"))
    head = items[:top]
    hits = {by_pk[item.study_id] for item in head} & set(corrupted)
    missed = sorted(set(corrupted) - hits)
    return {"interval_level": project.interval_level, "open_items": len(items),
            "by_reason": {r: sum(1 for i in items if i.reason == r) for r in sorted({i.reason for i in items})},
            "head_reasons": {r: sum(1 for i in head if i.reason == r) for r in sorted({i.reason for i in head})},
            "corrupted_in_top": len(hits), "recall": len(hits) / max(1, len(corrupted)),
            "precision": sum(1 for item in head if by_pk[item.study_id] in corrupted) / max(1, len(head)),
            "missed": [{"id": eid, "true": corrupted[eid][0], "label": corrupted[eid][1],
                        "pred": round(oof[eid][0], 1) if eid in oof else None,
                        "std": round(oof[eid][1], 1) if eid in oof else None} for eid in missed]}


def rescore_at_levels(project: Project, levels: list[float], by_pk: dict[int, str],
                      corrupted: dict[str, tuple[float, float]], top: int,
                      oof: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """The same predictions judged at other interval levels: the project setting changes and the rules re-run, as the
    review.reevaluate_project task does after a settings change. The project's level is restored afterwards."""
    before, scores = project.interval_level, []
    try:
        for level in levels:
            project.interval_level = level
            project.save(update_fields=["settings"])
            evaluate_project(project.pk, cause="settings")
            scores.append(score_queue(project, by_pk, corrupted, top, oof))
    finally:
        project.interval_level = before
        project.save(update_fields=["settings"])
        evaluate_project(project.pk, cause="settings")
    return scores
