"""The demo's first training run as `make run`'s trainer would start it (issue 32, row 2), timed, in one process.

    DATABASE_URL=postgres://…/fresh_db BONEAGE_VAR_DIR=var/demo-first-run python scripts/demo_first_run.py ['{"epochs": 5}']

Migrates, runs `manage.py demo_setup` (users, the 160-phantom cohort, the starter model v1: `make run`'s starter
step), then does what the trainer's "Start training" does with the form left blank (POST {}: the platform's choice
of start and the project's training defaults) and prints how the run ended, the gate's decision and the outcome
text the models page shows. No worker is needed: the run trains in this process, as `run_training` does in one.
A JSON argument is sent instead of the blank form (e.g. what the outcome advises); run again on the same database,
demo_setup changes nothing and the run starts from the same v1.
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

    request = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}  # {}: the form left blank
    config = check_run_request(project, request)
    print("the trainer's run:", request, {k: config.get(k) for k in ("init", "init_reason", "epochs", "max_seconds", "lr")})
    run = do_start_training(project, config=config, trigger="manual", enqueue=False)
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


if __name__ == "__main__":
    raise SystemExit(main())
