"""Everything `make run` needs on a fresh machine: demo users per role, a project, a synthetic cohort
and a starter model. Idempotent: a second run changes nothing and keeps the same logins (their passwords in var/demo-logins.json)."""
from __future__ import annotations

import csv
import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from tqdm import tqdm

from boneage.studies.actions import IngestFields, do_create_project, do_ingest, do_set_role
from boneage.studies.models import Project

DEMO_PROJECT = "Demo hands"
DEMO_USERS = {"admin": "admin", "labeler": "labeler", "reviewer": "reviewer", "trainer": "trainer"}


def logins_file() -> Path:
    """Where the demo users' random passwords are kept, so that every start prints the same ones."""
    return Path(settings.VAR_DIR) / "demo-logins.json"


# How far a demo child's chronological age lies from its bone age: the phantoms have only a bone age, and a referral's
# two ages differ by about a year either way (the spread bone-age tables report), so "vs chronological" reads as in a
# clinic. Seeded by the study's id: every run gives each study the same age.
CHRONOLOGICAL_SPREAD_MONTHS = 12.0


def chronological_age(external_id: str, bone_age_months: float) -> float:
    """The demo study's chronological age in months (whole months, within 1–239)."""
    import numpy as np

    offset = np.random.default_rng(int(external_id) if external_id.isdigit() else 0).normal(0, CHRONOLOGICAL_SPREAD_MONTHS)
    return float(min(239, max(1, round(bone_age_months - offset))))


class Command(BaseCommand):
    help = "Create demo users (one per role), the 'Demo hands' project, a phantom cohort and a starter model."

    def add_arguments(self, parser):
        parser.add_argument("--studies", type=int, default=160, help="phantom studies in the demo cohort")
        parser.add_argument("--unlabeled", type=int, default=40, help="how many of them arrive without a label")
        parser.add_argument("--no-model", action="store_true", help="skip the starter model")

    def handle(self, *args, **options):
        logins = self._users()
        project = self._project(logins)
        self._cohort(project, options["studies"], options["unlabeled"])
        if not options["no_model"]:
            self._starter_model(project)
        # `make run`'s closing block lists the passwords, once
        self.stdout.write(f"demo logins: {', '.join(logins)} (passwords in {logins_file()})")

    def _users(self) -> dict[str, str]:
        """Random passwords, kept in var/ so every start prints the same ones."""
        store = logins_file()
        logins = json.loads(store.read_text()) if store.exists() else {}
        User = get_user_model()
        for username in DEMO_USERS:
            logins.setdefault(username, secrets.token_urlsafe(9))
            user, created = User.objects.get_or_create(username=username)
            if created or not user.check_password(logins[username]):
                user.set_password(logins[username])
                user.is_staff = user.is_superuser = username == "admin"
                user.save()
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(logins, indent=2))
        store.chmod(0o600)
        return logins

    def _project(self, logins) -> Project:
        User = get_user_model()
        admin = User.objects.get(username="admin")
        project = Project.objects.filter(name=DEMO_PROJECT).first() or do_create_project(
            admin, DEMO_PROJECT, description="Synthetic hand radiographs (ml.phantoms) with a starter model"
        )
        for username, role in DEMO_USERS.items():
            do_set_role(project, User.objects.get(username=username), role, actor=admin)
        return project

    def _cohort(self, project: Project, count: int, unlabeled: int) -> None:
        if project.studies.count() >= count:
            return
        from ml.phantoms import generate_cohort

        folder = Path(settings.VAR_DIR) / "demo-cohort"
        if not (folder / "labels.csv").exists():
            self.stdout.write(f"generating {count} synthetic hand radiographs into {folder} …")
            generate_cohort(folder, count, seed=2026, distractors="random", size=512)
        with open(folder / "labels.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))[:count]
        for index, row in enumerate(tqdm(rows, desc="importing demo cohort", unit="study")):
            labelled = index < len(rows) - unlabeled
            fields = IngestFields(sex="M" if row["male"].lower() == "true" else "F",
                                  bone_age_months=float(row["boneage"]) if labelled else None, external_id=row["id"],
                                  chronological_age_months=chronological_age(row["id"], float(row["boneage"])))
            data = (folder / "images" / f"{row['id']}.png").read_bytes()
            do_ingest(project, None, data, f"{row['id']}.png", fields, channel="import_rsna", source="demo")

    def _starter_model(self, project: Project) -> None:
        from boneage.modeling.starter import ensure_starter_model  # torch: only when the command runs

        version = ensure_starter_model(project, self.stdout)
        self.stdout.write(f"active model: {version.name} (val MAE {version.metrics.get('val_mae', float('nan')):.1f} months)")
