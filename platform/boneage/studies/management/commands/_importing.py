"""What import_dicom and import_rsna share: the project lookup, the progress bar and the summary."""
from __future__ import annotations

from collections import Counter

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from tqdm import tqdm

from boneage.studies.actions import IngestResult
from boneage.studies.models import Project


def project_by_name(name: str, *, create: bool, stdout) -> Project:
    named = list(Project.objects.filter(name=name)[:2])  # names are unique per owner, not site-wide
    if len(named) > 1:
        raise CommandError(f"Several projects are named {name!r}; rename one so the name says which.")
    project = named[0] if named else None
    if project is not None:
        return project
    if not create:
        raise CommandError(f"No project named {name!r}. Create it first, or pass --create.")
    from boneage.studies.actions import do_create_project

    admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
    if admin is None:
        project = Project.objects.create(name=name)
    else:
        project = do_create_project(admin, name)
    stdout.write(f"created project {name!r} (id {project.pk})")
    return project


class ImportTally:
    def __init__(self, total: int, description: str):
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.bar = tqdm(total=total, desc=description, unit="file", dynamic_ncols=True)

    def add(self, file_name: str, result: IngestResult | None, *, reason: str = "", detail: str = "") -> None:
        outcome = result.outcome if result is not None else "rejected"
        self.counts[outcome] += 1
        if result is not None and result.error is not None:
            reason, detail = result.error.code, result.error.detail
        if outcome in ("rejected", "conflict"):
            self.reasons[reason] += 1
            self.examples.setdefault(reason, f"{file_name}: {detail}")
        self.bar.update(1)
        self.bar.set_postfix(accepted=self.counts["accepted"], rejected=self.counts["rejected"] + self.counts["conflict"])

    def summary(self) -> str:
        self.bar.close()
        line = (f"accepted {self.counts['accepted']}, already stored {self.counts['already_stored']}, "
                f"conflicts {self.counts['conflict']}, rejected {self.counts['rejected']}")
        if self.reasons:
            line += " — " + "; ".join(f"{reason} ×{count} (e.g. {self.examples[reason]})" for reason, count in self.reasons.most_common())
        return line
