"""Issue 28's product path on the real development films, as a team would take it, timed (a measurement, not a test).

    DATABASE_URL=postgres://…/real_product BONEAGE_VAR_DIR=var/real-product python -m boneage.launcher --no-demo --port 8093 &
    DATABASE_URL=postgres://…/real_product BONEAGE_VAR_DIR=var/real-product python scripts/real_product_path.py \
        --url http://127.0.0.1:8093 --data data/real-dev [--limit N] [--out var/real-product/result.json]

1. an admin (created here) and a project; `manage.py import_rsna` of the train part's labels and films;
2. waits until the worker has derived and masked every film;
3. the models page's "Start training" with the form left blank (`POST …/training-runs/ {}`: the platform picks the
   start and the budget), polled to its end;
4. the run's model promoted where the platform did not make it active by itself;
5. the test part imported unlabelled (`import_rsna` of a copy of its labels with the bone age blanked);
6. every test film's reading read back through `GET /api/studies/{id}/predictions/latest/` once it comes from the new
   model: MAE against the held-back truth, the mean predictor, the 90 % interval's coverage, flagged outside.

The films are the RSNA licence's (non-commercial research): nothing here writes them anywhere but the platform's own
var folder, which git ignores. Without the folder it says so and stops.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "platform"), str(REPO)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boneage.settings")
PROJECT = "Real films (RSNA dev)"
ADMIN, PASSWORD = "real-admin", "real-admin-password-1"


class Api:
    def __init__(self, base: str) -> None:
        self.base, self.token = base.rstrip("/"), ""

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Accept": "application/json", "Content-Type": "application/json",
                                                  **({"Authorization": f"Bearer {self.token}"} if self.token else {})})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return {"http_status": error.code, **json.loads(error.read() or b"{}")}

    def pages(self, path: str) -> list[dict]:
        rows, page = [], 1
        while True:
            sep = "&" if "?" in path else "?"
            data = self.call("GET", f"{path}{sep}page={page}")
            rows += data.get("results", [])
            if not data.get("next"):
                return rows
            page += 1


def log(t0: float, text: str) -> None:
    print(f"[{time.perf_counter() - t0:7.0f} s] {text}", flush=True)


def setup(data: Path, limit: int | None, test_limit: int | None) -> tuple[int, dict[str, float], float, Path]:
    """The admin, the project, both imports (the test part unlabelled); returns the project id and the test truth."""
    import django

    django.setup()
    from boneage.studies.models import Membership, Project
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username=ADMIN)
    user.set_password(PASSWORD)
    user.save()
    t = time.perf_counter()
    args = ["--limit", str(limit)] if limit else []
    call_command("import_rsna", str(data / "train" / "labels.csv"), str(data / "train" / "images"),
                 "--project", PROJECT, "--create", *args)
    import_seconds = time.perf_counter() - t
    project = Project.objects.get(name=PROJECT)
    Membership.objects.get_or_create(project=project, user=user, defaults={"role": "admin"})
    truth = {}
    blank = Path(os.environ.get("BONEAGE_VAR_DIR", REPO / "var")) / "real-product-test-unlabelled.csv"
    with open(data / "test" / "labels.csv", newline="") as handle, open(blank, "w", newline="") as out:
        reader = csv.DictReader(handle)
        writer = csv.DictWriter(out, fieldnames=reader.fieldnames)
        writer.writeheader()
        for row in list(reader)[:test_limit]:
            truth[row["id"]] = float(row["boneage"])
            writer.writerow({**row, "boneage": ""})
    project_id = project.pk
    return project_id, truth, import_seconds, blank


def import_test(blank: Path, data: Path) -> None:
    from django.core.management import call_command

    call_command("import_rsna", str(blank), str(data / "test" / "images"), "--project", PROJECT)


def wait_derived(api: Api, project: int, t0: float, expected: int) -> None:
    while True:
        studies = api.pages(f"/api/projects/{project}/studies/")
        states = {}
        for s in studies:
            states[s["automask_state"]] = states.get(s["automask_state"], 0) + 1
        pending = sum(n for state, n in states.items() if state in ("pending", "running", "", None))
        log(t0, f"studies {len(studies)}/{expected}: {states}")
        if len(studies) >= expected and not pending:
            return
        time.sleep(20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "real-dev")
    parser.add_argument("--limit", type=int, default=None, help="import only the first N train-part films")
    parser.add_argument("--test-limit", type=int, default=None, help="read only the first N test-part films")
    parser.add_argument("--max-seconds", type=float, default=None, help="the run's budget (default: the form left "
                        "blank, the platform's choice)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--run", type=int, default=None, help="go on from this finished training run (after an "
                        "interruption): no import, no new run")
    options = parser.parse_args()
    if not (options.data / "train" / "labels.csv").is_file():
        print(f"skipped: no real development films at {options.data} (scripts/build_real_dev.py builds them)")
        return 0
    t0 = time.perf_counter()
    project, truth, import_seconds, blank = setup(options.data, options.limit, options.test_limit)
    n_train = options.limit or len((options.data / "train" / "labels.csv").read_text().splitlines()) - 1
    log(t0, f"import_rsna of {n_train} labelled train-part films: {import_seconds:.0f} s")
    api = Api(options.url)
    api.token = api.call("POST", "/api/auth/token/", {"username": ADMIN, "password": PASSWORD})["token"]
    t = time.perf_counter()
    derive_seconds = 0.0
    if options.run is None:
        wait_derived(api, project, t0, n_train)
        derive_seconds = time.perf_counter() - t
        request = {"max_seconds": options.max_seconds} if options.max_seconds else {}
        run = api.call("POST", f"/api/projects/{project}/training-runs/", request)
        log(t0, f"training run {run.get('id')}: {run.get('state')} "
                f"{json.dumps(run.get('config', {}).get('init_reason'))}")
    else:
        run = api.call("GET", f"/api/training-runs/{options.run}/")
    t = time.perf_counter()
    while run.get("state") not in ("succeeded", "failed", "cancelled"):
        time.sleep(30)
        run = api.call("GET", f"/api/training-runs/{run['id']}/")
        log(t0, f"run {run['id']}: {run.get('state')} {json.dumps(run.get('progress', {}))[:300]}")
    train_seconds = time.perf_counter() - t
    log(t0, f"run ended {run['state']} in {train_seconds:.0f} s: {json.dumps(run.get('progress', {}).get('outcome'))}")
    if run["state"] != "succeeded" or not run.get("result"):
        print(json.dumps(run, indent=1)[:4000])
        return 1
    version = run["result"]
    models = {m["id"]: m for m in api.pages(f"/api/projects/{project}/models/")}
    if models[version]["status"] != "active":
        promoted = api.call("POST", f"/api/models/{version}/promote/", {})
        log(t0, f"promoted {version}: {json.dumps(promoted)[:300]}")
    t = time.perf_counter()
    import_test(blank, options.data)
    log(t0, f"test part imported unlabelled ({len(truth)} films) in {time.perf_counter() - t:.0f} s")
    test_studies = [s for s in api.pages(f"/api/projects/{project}/studies/?state=unlabeled")
                    if s["external_id"] in truth]
    readings: dict[str, dict] = {}
    t = time.perf_counter()
    while len(readings) < len(test_studies) and time.perf_counter() - t < 3600:
        for s in test_studies:
            if s["external_id"] in readings:
                continue
            p = api.call("GET", f"/api/studies/{s['id']}/predictions/latest/")
            if p.get("model_version") == version and p.get("age_months") is not None:
                readings[s["external_id"]] = p
        log(t0, f"readings from {models[version]['name']}: {len(readings)}/{len(test_studies)}")
        if len(readings) < len(test_studies):
            time.sleep(20)
    read_seconds = time.perf_counter() - t
    result = summarise(readings, truth, models[version], run, import_seconds, derive_seconds, train_seconds,
                       read_seconds)
    print(json.dumps(result, indent=1))
    if options.out:
        options.out.write_text(json.dumps(result, indent=1))
    return 0


def summarise(readings, truth, version, run, import_seconds, derive_seconds, train_seconds, read_seconds) -> dict:
    import numpy as np

    ids = sorted(readings)
    age = np.array([readings[i]["age_months"] for i in ids])
    true = np.array([truth[i] for i in ids])
    low = np.array([readings[i]["interval_months"][0] for i in ids])
    high = np.array([readings[i]["interval_months"][1] for i in ids])
    outside = np.array([bool(readings[i].get("outside_experience")) for i in ids])
    held = (low <= true) & (true <= high)
    return {"films_read": len(ids), "mae": float(np.abs(age - true).mean()),
            "mean_predictor_mae": float(np.abs(true.mean() - true).mean()),
            "correlation": float(np.corrcoef(age, true)[0, 1]), "interval_level": readings[ids[0]].get("interval_level"),
            "coverage": float(held.mean()), "coverage_not_flagged": float(held[~outside].mean()) if (~outside).any()
            else None, "flagged_outside": int(outside.sum()), "model": version["name"],
            "val_mae": version.get("val_mae"), "run_config_init": run["config"].get("init"),
            "init_reason": run["config"].get("init_reason"), "seconds": {
                "import_train": round(import_seconds), "derive_wait": round(derive_seconds),
                "training": round(train_seconds), "test_readings": round(read_seconds)}}


if __name__ == "__main__":
    sys.exit(main())
