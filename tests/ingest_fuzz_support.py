"""What every fuzzed upload must satisfy, checked one file at a time (used by the fuzz test and its bench)."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HANG_SECONDS = 20.0  # one file taking longer than this counts as a hang


@dataclass
class FuzzTally:
    attempts: int = 0
    outcomes: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    slowest: tuple[float, str] = (0.0, "")
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.attempts} files in {self.seconds:.1f} s ({self.attempts / max(self.seconds, 1e-9):.0f}/s): "
                f"{dict(self.outcomes)}; slowest {self.slowest[0] * 1e3:.0f} ms ({self.slowest[1]}); "
                f"problems {len(self.problems)}")


def ingest_directly(project, user, name: str, data: bytes, tally: FuzzTally) -> None:
    """do_ingest, then for an accepted study the derived images the image endpoints serve."""
    from boneage.studies.actions import do_ingest
    from boneage.studies.derive import ensure_derived_images
    from boneage.studies.models import IngestRecord

    started = time.perf_counter()
    records_before = IngestRecord.objects.filter(project=project).count()
    try:
        result = do_ingest(project, user, data, name)
    except BaseException as exc:  # noqa: BLE001 — the tally says which file escaped the error boundary
        tally.problems.append(f"{name}: do_ingest raised {type(exc).__name__}: {exc}")
        return
    finally:
        _time(tally, name, started)
    if IngestRecord.objects.filter(project=project).count() != records_before + 1:
        tally.problems.append(f"{name}: no IngestRecord for the attempt")
    tally.outcomes[result.outcome] += 1
    if result.error is not None:
        tally.reasons[result.error.code] += 1
        if result.status >= 500 or not (result.error.code and result.error.detail):
            tally.problems.append(f"{name}: refusal {result.status} without a reason")
    elif result.status == 201:
        try:
            ensure_derived_images(result.study.image)
        except BaseException as exc:  # noqa: BLE001
            tally.problems.append(f"{name}: accepted but its image cannot be made: {type(exc).__name__}: {exc}")


def ingest_over_http(client, project, name: str, data: bytes, tally: FuzzTally) -> None:
    """The upload API, then GET image and thumbnail for an accepted study: never a 5xx, always a JSON reason."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    started = time.perf_counter()
    response = client.post(f"/api/projects/{project.pk}/studies/", {"file": SimpleUploadedFile(name, data)},
                           format="multipart")
    _time(tally, name, started)
    tally.outcomes[f"http {response.status_code}"] += 1
    if response.status_code >= 500:
        tally.problems.append(f"{name}: upload answered {response.status_code}")
        return
    body = response.json()
    if response.status_code >= 400:
        tally.reasons[body.get("error", "")] += 1
        if not (body.get("error") and body.get("detail")):
            tally.problems.append(f"{name}: {response.status_code} without a JSON reason: {body}")
        return
    study = body["study"]["id"] if "already_stored" in body else body["id"]
    for url in (f"/api/studies/{study}/image/", f"/api/studies/{study}/thumbnail/"):
        served = client.get(url)
        if served.status_code != 200 or served["Content-Type"] != "image/png":
            tally.problems.append(f"{name}: accepted but {url} answered {served.status_code}")


def fuzz_mutants(client, project, user, count: int, seed: int, http_every: int) -> tuple[FuzzTally, FuzzTally]:
    """`count` seeded mutants: every `http_every`-th over the upload API, the rest through the ingest action."""
    from tests.dicom_mutants import mutants

    direct, http = FuzzTally(), FuzzTally()
    for index, mutant in enumerate(mutants(count, seed)):
        if index % http_every == 0:
            ingest_over_http(client, project, mutant.name, mutant.data, http)
        else:
            ingest_directly(project, user, mutant.name, mutant.data, direct)
    return direct, http


def leftovers(media_root: Path, project) -> list[str]:
    """Files or folders under the project's storage that no stored study owns."""
    from boneage.studies.models import Image

    owned = set()
    for image in Image.objects.filter(study__project=project):
        owned.update(name for name in (image.original, image.normalized, image.display, image.work) if name)
    folders = {str(Path(name).parent) for name in owned}
    found = []
    root = media_root / "studies" / str(project.pk)
    for path in sorted(root.rglob("*")) if root.exists() else []:
        relative = str(path.relative_to(media_root))
        if path.is_dir() and relative not in folders:
            found.append(relative + "/")
        elif path.is_file() and relative not in owned:
            found.append(relative)
    return found


def _time(tally: FuzzTally, name: str, started: float) -> None:
    elapsed = time.perf_counter() - started
    tally.attempts += 1
    tally.seconds += elapsed
    if elapsed > tally.slowest[0]:
        tally.slowest = (elapsed, name)
    if elapsed > HANG_SECONDS:
        tally.problems.append(f"{name}: took {elapsed:.1f} s (a hang)")
