"""The demo's first training run as `make run`'s trainer would start it (issue 32, row 2), timed, in one process.

    DATABASE_URL=postgres://…/fresh_db BONEAGE_VAR_DIR=var/demo-first-run python scripts/demo_first_run.py ['{"epochs": 5}']
    … python scripts/demo_first_run.py --label 20     # the labeler labels 20 studies first: the demo's auto-retrain

Migrates, runs `manage.py demo_setup` (users, the 160-phantom cohort, the starter model v1: `make run`'s starter
step), then does what the trainer's "Start training" does with the form left blank (POST {}: the platform's choice
of start and the project's training defaults) and prints how the run ended, the gate's decision and the outcome
text the models page shows. No worker is needed: the run trains in this process, as `run_training` does in one.
A JSON argument is sent instead of the blank form (e.g. what the outcome advises); run again on the same database,
demo_setup changes nothing and the run starts from the same v1. `--label N` first saves N expert labels (the
cohort's true ages) on studies that arrived without one, as the demo's labeler does; the demo retrains by itself
after 20 (`auto_retrain_after_labels`), and that run is the one trained here.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "platform"), str(REPO)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boneage.settings")


def main() -> int:
    import django

    django.setup()
    from boneage.modeling.models import ModelVersion, TrainingRun
    from boneage.modeling.training import check_run_request, do_start_training, run_training
    from boneage.studies.models import Project
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    t0 = time.perf_counter()
    call_command("demo_setup")
    print(f"demo_setup (cohort and starter model): {time.perf_counter() - t0:.0f} s", flush=True)
    project = Project.objects.get(name="Demo hands")
    v1 = ModelVersion.objects.get(project=project, status="active")
    print(f"{v1.name}: validation MAE {v1.metrics.get('val_mae')} on {len(v1.validation_study_ids)} held-out studies")

    args = sys.argv[1:]
    queued = label_unlabelled(project, int(args[args.index("--label") + 1])) if "--label" in args else None
    request = json.loads(args[0]) if args and not args[0].startswith("--") else {}  # {}: the form left blank
    if queued is not None:  # the auto-retrain the labels started (enqueued for a worker: trained here instead)
        run, config = queued, queued.config
    else:
        config = check_run_request(project, request)
        run = do_start_training(project, config=config, trigger="manual", enqueue=False)
    print("the run:", run.trigger, request, {k: config.get(k) for k in ("init", "init_reason", "epochs", "max_seconds",
                                                                         "lr")})
    t0 = time.perf_counter()
    run_training(run.pk, echo=lambda line: print(line, flush=True))
    seconds = time.perf_counter() - t0
    run = TrainingRun.objects.get(pk=run.pk)
    print(f"run {run.pk}: {run.state} in {seconds:.0f} s; result {run.result.name if run.result else None}")
    print("outcome:", run.progress.get("outcome"))
    if run.result is not None:
        metrics = run.result.metrics
        print("val MAE", metrics.get("val_mae"), "gate", metrics.get("gate", {}).get("summary"),
              "epochs", metrics.get("epochs"), "final candidates", metrics.get("final_candidates"))
    print("curve:", [(row.get("epoch"), row.get("val_mae")) for row in run.curve])
    return 0


def label_unlabelled(project, count: int):
    """The labeler saves `count` expert labels (the cohort's true ages); returns the run they started, if any."""
    import csv

    from boneage.annotations.actions import do_save_label
    from boneage.modeling.models import TrainingRun
    from django.conf import settings
    from django.contrib.auth import get_user_model

    with open(Path(settings.VAR_DIR) / "demo-cohort" / "labels.csv", newline="") as handle:
        truth = {row["id"]: float(row["boneage"]) for row in csv.DictReader(handle)}
    labeler = get_user_model().objects.get(username="labeler")
    waiting = project.studies.filter(age_labels__isnull=True).order_by("pk")[:count]
    for study in waiting:
        do_save_label(study, truth[study.external_id], author=labeler)
    print(f"labelled {len(waiting)} studies as the labeler", flush=True)
    return TrainingRun.objects.filter(project=project, state="queued").order_by("-pk").first()


if __name__ == "__main__":
    raise SystemExit(main())
