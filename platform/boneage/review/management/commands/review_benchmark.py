"""The queue's worth on phantoms: does the review queue surface corrupted labels?

    python manage.py review_benchmark [--n 1000] [--seed 7] [--corrupt 0.05] [--folds 5] [--top 100] ...

1. Render N phantoms with their true ages (ml.phantoms.generate_cohort).
2. Corrupt a seeded 5% of the labels by ±24–60 months and import the cohort with the real
   `manage.py import_rsna` into a fresh project: the corrupted ages are the imported labels.
3. K-fold out-of-fold predictions (docs/benchmarks.md: a model trained on a study leans towards its label, wrong or
   not): for each fold, ml.train on the other folds' current labels (corrupted ones included, as a real
   project would), then ml.infer's Predictor on the held-out fold. Each fold model is a ModelVersion
   (status retired, training_study_ids = its training folds); each prediction a Prediction row with
   out_of_fold=True, followed by the review hook — exactly what the rules see in production.
   --predictor audit instead runs the product's own path (_audit_benchmark.py): derive + automask, the project's
   default training run, then its label audit run (kind "audit"), all through the actions the workers call.
4. Read the queue as GET /api/projects/{p}/review-items/ orders it and count the corrupted studies in
   its top K. Targets (issue 7): recall ≥ 90% of the corrupted studies, precision ≥ 50% of the top K.
   --levels re-scores the same predictions at other interval levels (the project setting the rule uses).

Prints one summary line (and --json FILE for the details). CPU-heavy: use --n 300 and a small --epochs
for a quick run; run it in a separate database and Redis db (ingest enqueues automask/infer tasks).
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

BENCH_MODEL = {"width": 0.125, "segmenter": None, "work_size": 96, "crop_size": 96, "dropout": 0.2}


def fold_of(external_id: str, folds: int) -> int:
    return int(hashlib.sha256(f"fold:{external_id}".encode()).hexdigest(), 16) % folds


def corrupt_labels(rows: list[dict[str, str]], fraction: float, seed: int) -> dict[str, tuple[float, float]]:
    """Seeded: pick round(fraction × n) rows and move their age by ±24–60 months (sign flipped to stay in 0–228).

    Returns {id: (true months, corrupted months)}; changes `rows` in place."""
    rng = np.random.default_rng(seed)
    n_bad = round(fraction * len(rows))
    chosen = rng.choice(len(rows), size=n_bad, replace=False)
    corrupted = {}
    for index in sorted(int(i) for i in chosen):
        row = rows[index]
        true = float(row["boneage"])
        shift = float(rng.uniform(24, 60)) * (1 if rng.random() < 0.5 else -1)
        if not 0 <= true + shift <= 228:
            shift = -shift
        row["boneage"] = f"{true + shift:.1f}"
        corrupted[row["id"]] = (true, true + shift)
    return corrupted


class Command(BaseCommand):
    help = "Measure how many corrupted labels the review queue's top K holds (phantoms, k-fold out-of-fold models)."

    def add_arguments(self, parser):
        parser.add_argument("--n", type=int, default=1000, help="phantom studies (default 1000)")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--corrupt", type=float, default=0.05, help="fraction of labels to corrupt (default 0.05)")
        parser.add_argument("--folds", type=int, default=5, help="k of the k-fold out-of-fold models (default 5)")
        parser.add_argument("--top", type=int, default=None, help="queue head to score (default n/10, i.e. 100 of 1000)")
        parser.add_argument("--size", type=int, default=None, help="phantom render size in px (default 160; audit: 512)")
        parser.add_argument("--distractors", choices=["none", "random"], default=None,
                            help="phantom distractors (default none; audit: random, as the starter was trained on)")
        parser.add_argument("--epochs", type=int, default=20, help="training epochs per fold (default 20)")
        parser.add_argument("--batch-size", type=int, default=16)
        parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
        parser.add_argument("--model", default=json.dumps(BENCH_MODEL), help="ml ModelConfig as JSON")
        parser.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (ml.train's default 0.01)")
        parser.add_argument("--init", default=None, help="unified: fine-tune each fold from this checkpoint (its architecture; "
                            "'starter' = the shipped starter weights) instead of training from scratch")
        parser.add_argument("--predictor", choices=["unified", "simulated", "audit"], default="unified",
                            help="unified: k-fold ml.train + ml.infer (the ML core). simulated: a stand-in model whose "
                                 "error is N(0, ~--sim-sd) with that sd as its std — measures the queue alone. audit: "
                                 "the product's default training run, then its label audit run (--folds k)")
        parser.add_argument("--train-request", default="{}", help="audit: the training run's POST body as JSON "
                            "(default {}: the project's default run)")
        parser.add_argument("--audit-request", default="{}", help='audit: extra fields of the audit run\'s POST body '
                            'as JSON, e.g. \'{"epochs": 1}\' (kind and folds are set)')
        parser.add_argument("--levels", default="", help="also score the queue at these interval levels, e.g. "
                            "0.95,0.975 (the project setting is restored afterwards)")
        parser.add_argument("--rules", default=None, help='review settings for the project as JSON, e.g. '
                            '\'{"model_vs_label": {"min_months": 18}}\' (default: the defaults)')
        parser.add_argument("--sim-sd", type=float, default=10.0, help="simulated model's error sd in months (default 10)")
        parser.add_argument("--project", default=None, help="project name (default review-benchmark-<n>-<seed>-<time>)")
        parser.add_argument("--workdir", default=None, help="keep the cohort and checkpoints here (default: a temp dir)")
        parser.add_argument("--json", dest="json_out", default=None, help="write the full result as JSON here")

    def handle(self, *args, **options):
        n, folds = options["n"], options["folds"]
        if n < 20 or not 2 <= folds <= 20 or not 0 < options["corrupt"] < 0.5:
            raise CommandError("need --n ≥ 20, 2 ≤ --folds ≤ 20 and 0 < --corrupt < 0.5")
        top = options["top"] or max(1, n // 10)
        audit = options["predictor"] == "audit"
        options["size"] = options["size"] or (512 if audit else 160)
        options["distractors"] = options["distractors"] or ("random" if audit else "none")
        try:
            options["levels"] = [float(v) for v in options["levels"].split(",") if v.strip()]
        except ValueError as exc:
            raise CommandError(f"--levels: {exc}") from exc
        if not all(0 < level < 1 for level in options["levels"]):
            raise CommandError("--levels must lie between 0 and 1")
        try:
            model_config = json.loads(options["model"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--model is not JSON: {exc}") from exc
        if options["init"] and not audit:
            from ml.checkpoint import SHIPPED_STARTER, CheckpointError, load_checkpoint

            options["init"] = str(SHIPPED_STARTER) if options["init"] == "starter" else options["init"]
            try:
                model_config = load_checkpoint(options["init"]).model_config.to_dict()
            except CheckpointError as exc:
                raise CommandError(f"--init: {exc}") from exc
        work = Path(options["workdir"] or tempfile.mkdtemp(prefix="review-bench-"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            result = self._run(work, n, folds, top, model_config, options)
        finally:
            if not options["workdir"]:
                shutil.rmtree(work, ignore_errors=True)
        if options["json_out"]:
            Path(options["json_out"]).write_text(json.dumps(result, indent=2))
        q = result["queue"]
        self.stdout.write(
            f"review_benchmark n={n} corrupted={result['corrupted']} folds={folds}: top {top} holds "
            f"{q['corrupted_in_top']}/{result['corrupted']} corrupted (recall {q['recall']:.0%}, target ≥ 90%), "
            f"precision {q['precision']:.0%} (target ≥ 50%); {q['open_items']} open items; predictor {options['predictor']}, "
            f"OOF MAE vs truth {result['oof']['mae_vs_truth']:.1f} mo; {result['seconds']['total']:.0f} s "
            f"({', '.join(f'{k} {v:.0f}' for k, v in result['seconds'].items() if k != 'total')})")

    def _run(self, work: Path, n: int, folds: int, top: int, model_config: dict[str, Any], options) -> dict[str, Any]:
        from django.db import transaction

        from boneage.annotations.actions import current_label
        from boneage.modeling.models import ModelVersion, Prediction
        from boneage.review.hooks import study_changed
        from boneage.studies.models import Project, Study
        from ml.checkpoint import file_sha256
        from ml.data import Sample
        from ml.imaging import load_image
        from ml.infer import Predictor
        from ml.models import ModelConfig
        from ml.phantoms import generate_cohort
        from ml.train import TrainConfig, train

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        cohort = work / "cohort"
        if not (cohort / "labels.csv").is_file():
            generate_cohort(cohort, n, seed=options["seed"], size=options["size"], distractors=options["distractors"],
                            progress=False)
        with (cohort / "labels.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        truth = {row["id"]: float(row["boneage"]) for row in rows}
        corrupted = corrupt_labels(rows, options["corrupt"], options["seed"])
        corrupted_csv = work / "labels-corrupted.csv"
        with corrupted_csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        timings["cohort"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        name = options["project"] or f"review-benchmark-{n}-{options['seed']}-{int(time.time())}"
        import io

        log = io.StringIO()
        call_command("import_rsna", str(corrupted_csv), str(cohort / "images"), project=name, create=True,
                     stdout=log, stderr=io.StringIO())
        self.stdout.write(log.getvalue().strip().splitlines()[-1])
        project = Project.objects.get(name=name)
        if options["rules"]:
            from boneage.review.rules import SettingsError, merge_settings, review_settings

            try:
                project.settings = {**project.settings, "review": merge_settings(review_settings(project), json.loads(options["rules"]))}
            except (SettingsError, json.JSONDecodeError) as exc:
                raise CommandError(f"--rules: {exc}") from exc
            project.save(update_fields=["settings"])
        studies = {study.external_id: study for study in Study.objects.filter(project=project).select_related("image")}
        if len(studies) != n:
            raise CommandError(f"import_rsna stored {len(studies)} of {n} studies; see the ingest records")
        timings["import"] = time.perf_counter() - t1

        # The samples are the project's current labels as the platform stores them (corrupted ones included),
        # the image files the ones the platform stored at ingest.
        from django.core.files.storage import default_storage

        samples = {}
        for external_id, study in studies.items():
            label = current_label(study)
            if label is None:
                raise CommandError(f"study {study.pk} ({external_id}) has no imported label")
            samples[external_id] = Sample(str(study.pk), Path(default_storage.path(study.image.original)), None,
                                          float(label.months), study.sex == "M")
        fold_stats: list[dict[str, Any]] = []
        oof: dict[str, tuple[float, float]] = {}

        def store(version, chunk: list[str], ages: list[float], stds: list[float]) -> None:
            """Prediction rows as modeling stores them, then the review hook on commit (what production runs)."""
            for eid, age, std in zip(chunk, ages, stds):
                study = studies[eid]
                with transaction.atomic():
                    Prediction.objects.create(study=study, model_version=version, age_months=float(age),
                                              std_months=float(std), out_of_fold=True)
                    transaction.on_commit(lambda pk=study.pk: study_changed(pk, "prediction"))
                oof[eid] = (float(age), float(std))

        def register(k: int, train_ids: list[str], **fields) -> ModelVersion:
            return ModelVersion.objects.create(project=project, name=f"fold{k}", status="retired",
                                               training_study_ids=[studies[eid].pk for eid in train_ids], **fields)

        predictor_kind = options["predictor"]
        detail: dict[str, Any] = {}
        if predictor_kind == "audit":
            from boneage.review.management.commands._audit_benchmark import parse_request, run_product_path

            path = run_product_path(project, studies, folds=folds, threads=options["threads"], echo=self.stdout.write,
                                    train_request=parse_request(options["train_request"], "--train-request"),
                                    audit_request=parse_request(options["audit_request"], "--audit-request"))
            oof.update(path.oof)
            fold_stats, detail = path.folds, path.detail
            timings.update(path.seconds)
        else:
            config = TrainConfig(model=ModelConfig.from_dict(model_config), epochs=options["epochs"],
                                 batch_size=options["batch_size"], threads=options["threads"], mc_samples=8,
                                 precise_bn_batches=4, teacher_epochs=1 if options["init"] else 0,
                                 teacher_decay_epochs=2 if options["init"] else 0, seed=options["seed"],
                                 lr=options["lr"])
            rng = np.random.default_rng(options["seed"] + 1)
            for k in range(folds):
                t_fold = time.perf_counter()
                held = [eid for eid in studies if fold_of(eid, folds) == k]
                train_ids = [eid for eid in studies if fold_of(eid, folds) != k]
                if predictor_kind == "simulated":
                    # A stand-in model of known quality: error ~ N(0, s) with a per-study s around --sim-sd, and that
                    # s reported as its (perfectly calibrated) std. It measures the queue, not the network.
                    version = register(k, train_ids, checkpoint="", sha256="", config={"simulated_sd": options["sim_sd"], "fold": k})
                    sds = options["sim_sd"] * np.exp(rng.normal(0, 0.25, len(held)))
                    ages = [truth[eid] + rng.normal(0, sd) for eid, sd in zip(held, sds)]
                    store(version, held, ages, list(sds))
                    fold_stats.append({"fold": k, "train": len(train_ids), "held_out": len(held)})
                    continue
                ckpt = work / f"fold{k}.pt"
                result = train([samples[eid] for eid in train_ids], config, ckpt,
                               init=Path(options["init"]) if options["init"] else None)
                if result.checkpoint is None:
                    raise CommandError(f"fold {k}: training stopped without a checkpoint")
                with ckpt.open("rb") as checkpoint_file:
                    stored = default_storage.save(f"models/{project.pk}/review-bench-fold{k}.pt", checkpoint_file)
                version = register(k, train_ids, checkpoint=stored, sha256=file_sha256(ckpt),
                                   config={"model": model_config, "benchmark": "review", "fold": k},
                                   metrics={key: value for key, value in result.metrics.items() if key != "val_ids"})
                predictor = Predictor(ckpt)
                t_pred = time.perf_counter()
                for start in range(0, len(held), 32):
                    chunk = held[start:start + 32]
                    preds = predictor.predict_batch([load_image(samples[eid].image_path) for eid in chunk],
                                                    [samples[eid].male for eid in chunk], with_attention=False)
                    store(version, chunk, [p.age_months for p in preds], [p.std_months for p in preds])
                fold_stats.append({"fold": k, "train": len(train_ids), "held_out": len(held),
                                   "val_mae": round(result.metrics.get("val_mae", float("nan")), 2),
                                   "coverage90": result.metrics.get("coverage90"), "curve_val_mae":
                                   [round(row["val_mae"], 1) for row in result.curve],
                                   "train_s": round(t_pred - t_fold, 1), "predict_s": round(time.perf_counter() - t_pred, 1)})
                self.stdout.write(f"fold {k}: trained on {len(train_ids)} in {t_pred - t_fold:.0f} s "
                                  f"(val MAE {result.metrics.get('val_mae', float('nan')):.1f}), predicted {len(held)}")
            timings["folds"] = time.perf_counter() - t1 - timings["import"]

        from boneage.review.management.commands._audit_benchmark import rescore_at_levels, score_queue

        by_pk = {study.pk: eid for eid, study in studies.items()}
        t_score = time.perf_counter()
        scored = score_queue(project, by_pk, corrupted, top, oof)
        at_levels = rescore_at_levels(project, options["levels"], by_pk, corrupted, top, oof) if options["levels"] else []
        for row in at_levels:
            self.stdout.write(f"  at interval level {row['interval_level']}: top {top} holds {row['corrupted_in_top']}/"
                              f"{len(corrupted)} (recall {row['recall']:.0%}), precision {row['precision']:.0%}, "
                              f"{row['open_items']} open items")
        timings["scoring"] = time.perf_counter() - t_score
        # Baselines on the same predictions: rank every study by |prediction − label| alone, and by the z-score.
        labels_now = {eid: samples[eid].age_months for eid in studies}
        by_abs = sorted(oof, key=lambda eid: -abs(oof[eid][0] - labels_now[eid]))[:top]
        errors_true = [abs(oof[eid][0] - truth[eid]) for eid in oof]
        std_all = [oof[eid][1] for eid in oof]
        inside = [abs(oof[eid][0] - truth[eid]) <= 1.645 * oof[eid][1] for eid in oof]
        return {
            "n": n, "corrupted": len(corrupted), "folds": folds, "top": top, "project": name,
            "predictor": options["predictor"], "rules": options["rules"], "sim_sd": options["sim_sd"] if options["predictor"] == "simulated" else None,
            "model": None if predictor_kind == "audit" else model_config, "train": {"epochs": options["epochs"], "batch_size": options["batch_size"],
                                             "threads": options["threads"], "size": options["size"], "lr": options["lr"],
                                             "init": options["init"], "distractors": options["distractors"]},
            "queue": scored, "at_levels": at_levels, "product_path": detail,
            "baseline_abs_diff": {"corrupted_in_top": sum(1 for eid in by_abs if eid in corrupted),
                                  "recall": sum(1 for eid in by_abs if eid in corrupted) / max(1, len(corrupted))},
            "oof": {"mae_vs_truth": float(np.mean(errors_true)),
                    "mae_vs_labels": float(np.mean([abs(oof[eid][0] - labels_now[eid]) for eid in oof])),
                    "std_median": float(np.median(std_all)), "coverage90_vs_truth": float(np.mean(inside))},
            "folds_detail": fold_stats,
            "seconds": {**{k: round(v, 1) for k, v in timings.items()}, "total": round(time.perf_counter() - t0, 1)},
        }
