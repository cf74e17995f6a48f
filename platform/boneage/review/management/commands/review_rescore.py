"""Score a finished review_benchmark project's queue again under other interval methods, levels and min_months.

    python manage.py review_rescore --project rb1000-h13 --workdir var/helper13/rb1000 \\
        --methods plain,symmetric,signed,bands,bias --levels 0.9,0.95 --min-months 12,20 [--json FILE]

No model runs: the predictions and each version's stored held-out readings are what the benchmark left; for every
combination the rules re-run over the project (`evaluate_project`, what a settings change triggers) with
`boneage.modeling.intervals.METHOD` set to that method, and the queue is read as the API orders it (`score_queue`).
The project's settings and METHOD are restored afterwards. One run per project at a time (a Redis lock): two would
overwrite each other's settings between re-running the rules and reading the queue.

Methods: `plain` is the interval before issue 13 (one symmetric multiplier from `interval_scores`); the others are
ml.age_intervals.Method spelled with `+`: `symmetric`, `signed`, `bands`, `bias`, e.g. `bias+signed+bands`. `bands`
splits the predicted age at BANDS (thirds of 0–228 months, fixed before any measurement).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ml.age_intervals import Method

BANDS = (76.0, 152.0)
LOCK_SECONDS = 6 * 3600  # a run that dies frees its project after this long


def rescore_lock(project_id: int):
    """The lock a re-scoring run holds on its project (redis-py's Lock: released by its owner, or on expiry)."""
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL).lock(f"boneage:review_rescore:{project_id}", timeout=LOCK_SECONDS)


def parse_method(text: str) -> Method | None:
    if text == "plain":
        return None
    parts = set(text.split("+"))
    unknown = parts - {"symmetric", "signed", "bands", "bias"}
    if unknown:
        raise CommandError(f"unknown interval method part(s) {sorted(unknown)} in {text!r}")
    return Method(correct_bias="bias" in parts, signed="signed" in parts, bands=BANDS if "bands" in parts else ())


def read_ages(path: Path) -> dict[str, float]:
    with path.open(newline="") as handle:
        return {row["id"]: float(row["boneage"]) for row in csv.DictReader(handle)}


class Command(BaseCommand):
    help = "Re-score a review_benchmark project's queue under other interval methods, levels and min_months."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="the benchmark's project name")
        parser.add_argument("--workdir", required=True, help="the benchmark's --workdir (cohort/labels.csv, labels-corrupted.csv)")
        parser.add_argument("--methods", default="plain,bias", help="comma-separated (module docstring)")
        parser.add_argument("--levels", default="0.9", help="interval levels, comma-separated")
        parser.add_argument("--min-months", default="12", help="model_vs_label.min_months values, comma-separated")
        parser.add_argument("--top", type=int, default=None, help="queue head to score (default n/10)")
        parser.add_argument("--json", default=None, help="write every row here")

    def handle(self, *args, **options):
        from boneage.studies.models import Project

        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        lock = rescore_lock(project.pk)
        if not lock.acquire(blocking=False):
            raise CommandError(f"project {project.name!r} is being re-scored by another review_rescore run; wait for it "
                               "to finish (two runs would overwrite each other's settings and queue)")
        try:
            self._rescore(project, options)
        finally:
            lock.release()

    def _rescore(self, project, options) -> None:
        from boneage.modeling import intervals
        from boneage.review.actions import evaluate_project
        from boneage.review.management.commands._audit_benchmark import score_queue
        from boneage.review.rules import merge_settings, review_settings
        from boneage.studies.models import Study

        work = Path(options["workdir"])
        truth, labels = read_ages(work / "cohort" / "labels.csv"), read_ages(work / "labels-corrupted.csv")
        corrupted = {eid: (truth[eid], labels[eid]) for eid in truth if abs(truth[eid] - labels[eid]) > 1e-6}
        studies = {study.external_id: study for study in Study.objects.filter(project=project)}
        by_pk = {study.pk: eid for eid, study in studies.items()}
        top = options["top"] or len(studies) // 10
        methods = [(name, parse_method(name)) for name in options["methods"].split(",") if name]
        levels = [float(v) for v in options["levels"].split(",") if v]
        floors = [float(v) for v in options["min_months"].split(",") if v]
        judging = judging_readings(studies)
        oof = {eid: (age, std) for eid, (age, std, _) in judging.items()}

        settings_before, method_before, rows = dict(project.settings or {}), intervals.METHOD, []
        try:
            for name, method in methods:
                intervals.METHOD = method
                for level in levels:
                    for floor in floors:
                        project.settings = {**settings_before, "interval_level": level, "review": merge_settings(
                            review_settings(project), {"model_vs_label": {"min_months": floor}})}
                        project.save(update_fields=["settings"])
                        evaluate_project(project.pk, cause="settings")
                        row = {"method": name, "level": level, "min_months": floor,
                               **score_queue(project, by_pk, corrupted, top, oof),
                               **interval_figures(project, judging, truth, corrupted, by_pk, top)}
                        rows.append(row)
                        self.stdout.write(
                            f"{name:22s} level {level:<5g} min_months {floor:<4g}: {row['open_items']:4d} open, top {top} "
                            f"holds {row['corrupted_in_top']}/{len(corrupted)} (recall {row['recall']:.0%}), precision "
                            f"{row['precision']:.0%}; false alarms in the head by true age {row['false_alarms_by_age']}; "
                            f"coverage of the true ages {row['coverage_vs_truth']:.3f}, mean width {row['mean_width']:.1f}")
        finally:
            intervals.METHOD = method_before
            project.settings = settings_before
            project.save(update_fields=["settings"])
            evaluate_project(project.pk, cause="settings")
        if options["json"]:
            Path(options["json"]).write_text(json.dumps({"project": project.name, "top": top, "rows": rows}, indent=1))


def judging_readings(studies: dict[str, Any]) -> dict[str, tuple[float, float, Any]]:
    """The reading that judges each study's label (out-of-fold), with its version's metrics."""
    from boneage.review.actions import judging_prediction

    readings = {}
    for eid, study in studies.items():
        chosen = judging_prediction(study, labelled=True)
        if chosen is not None:
            readings[eid] = (float(chosen.age_months), float(chosen.std_months), chosen.model_version)
    return readings


def interval_figures(project, judging: dict[str, tuple[float, float, Any]], truth: dict[str, float],
                     corrupted: dict[str, tuple[float, float]], by_pk: dict[int, str], top: int) -> dict[str, Any]:
    """Coverage of the true ages by the stated intervals, their mean width, and the head's false alarms by true age."""
    from boneage.modeling.intervals import IntervalRule
    from boneage.review.actions import queue

    rules: dict[int, IntervalRule] = {}
    inside, widths = [], []
    for eid, (age, std, version) in judging.items():
        rule = rules.setdefault(version.pk, IntervalRule.of(version.metrics, project))
        interval = rule.around(age, std)
        inside.append(interval.low <= truth[eid] <= interval.high)
        widths.append(interval.high - interval.low)
    bands = {"<144": 0, "144-200": 0, "200+": 0}
    for item in list(queue(project, reasons=[], state="open"))[:top]:
        eid = by_pk[item.study_id]
        if eid not in corrupted:
            age = truth[eid]
            bands["200+" if age >= 200 else "144-200" if age >= 144 else "<144"] += 1
    return {"coverage_vs_truth": sum(inside) / max(1, len(inside)), "mean_width": sum(widths) / max(1, len(widths)),
            "false_alarms_by_age": bands}
