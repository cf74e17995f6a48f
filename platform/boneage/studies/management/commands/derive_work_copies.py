from __future__ import annotations

from django.core.management.base import BaseCommand

from boneage.studies.derive import ensure_work_copy
from boneage.studies.models import Image


class Command(BaseCommand):
    help = ("Write the network-input copy (Image.work, NETWORK_WORK_SIDE px) of every study derived before such copies "
            "existed, so that re-predictions read it instead of decoding the full image. Idempotent; resumable.")

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, help="only this project's studies (its id)")

    def handle(self, *args, **options):
        todo = Image.objects.filter(work="").exclude(normalized="").order_by("pk")
        if options["project"] is not None:
            todo = todo.filter(study__project_id=options["project"])
        total = todo.count()
        written, failed = 0, 0
        for done, image in enumerate(todo.iterator(chunk_size=500), start=1):
            try:
                written += ensure_work_copy(image) is not None
            except Exception as exc:  # noqa: BLE001 — one unreadable file must not stop the others; say which
                failed += 1
                self.stderr.write(f"study {image.study_id}: cannot read {image.normalized}: {type(exc).__name__}: {exc}")
            if done % 500 == 0 or done == total:
                self.stdout.write(f"derive_work_copies: {done}/{total}")
        self.stdout.write(f"derive_work_copies: wrote {written} work cop{'y' if written == 1 else 'ies'}"
                          f"{f', {failed} failed' if failed else ''}")
