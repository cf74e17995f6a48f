"""Growth figures (issue 17): worklist and next-case p95 with 1k, 10k and 100k studies in one project.

Rows are seeded in bulk (studies, images, labels on a third, the active model's predictions and active-learning
scores on every study), then each endpoint is asked REQUESTS times through Django's test client, so the figure is the
server's own time (no socket). Run with `make bench PYTEST_ARGS="-k growth"`; `GROWTH_SIZES=1000,10000` trims it.
"""
from __future__ import annotations

import os
import statistics
import time

import pytest

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]

SIZES = tuple(int(s) for s in os.environ.get("GROWTH_SIZES", "1000,10000,100000").split(","))
REQUESTS = 30
TARGET_P95_MS = 150.0
BATCH = 5000


def grow(project, version, owner, start: int, stop: int) -> None:
    """Add studies start..stop-1 with an image, the active model's prediction and score, and a label on every third."""
    from boneage.annotations.models import AgeLabel
    from boneage.modeling.models import ActiveScore, Prediction
    from boneage.studies.models import Image, Study

    for first in range(start, stop, BATCH):
        numbers = range(first, min(first + BATCH, stop))
        studies = Study.objects.bulk_create([
            Study(project=project, instance_key=f"k{n}", sop_instance_uid=f"1.2.3.{n}", external_id=str(10_000 + n),
                  sex="M" if n % 2 else "F", original_name=f"{n}.png", checksum=f"{n:064d}", automask_state="done",
                  created_by=owner) for n in numbers])
        Image.objects.bulk_create([Image(study=s, original=f"studies/{s.pk}.png", width=512, height=512,
                                         media_type="image/png") for s in studies])
        Prediction.objects.bulk_create([Prediction(study=s, model_version=version, age_months=(s.pk * 7) % 228,
                                                   std_months=5 + s.pk % 13) for s in studies])
        ActiveScore.objects.bulk_create([ActiveScore(study=s, model_version=version, strategy=strategy,
                                                     score=((s.pk * 31) % 1000) / 1000)
                                         for s in studies for strategy in ("uncertainty", "diverse", "random")])
        AgeLabel.objects.bulk_create([AgeLabel(study=s, months=(s.pk * 5) % 228, author=owner, source="expert")
                                      for s in studies if s.pk % 3 == 0])


def timed_ms(client, url: str) -> list[float]:
    client.get(url)  # warm-up: the first request after seeding pays for cold caches
    times = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def test_worklist_and_next_case_stay_fast_as_a_project_grows(project, owner):
    from boneage.modeling.models import ModelVersion
    from django.db import connection
    from django.test import Client

    version = ModelVersion.objects.create(project=project, name="v1", checkpoint="models/v1.pt", sha256="0" * 64,
                                          status="active")
    client = Client()
    client.force_login(owner)
    endpoints = {
        "worklist (newest first)": f"/api/projects/{project.pk}/worklist/",
        "worklist (by uncertainty)": f"/api/projects/{project.pk}/worklist/?ordering=-uncertainty",
        "worklist (unlabelled filter)": f"/api/projects/{project.pk}/worklist/?state=unlabeled",
        "next case": f"/api/projects/{project.pk}/next-case/?strategy=uncertainty",
    }
    rows, have = [], 0
    for size in SIZES:
        seed_start = time.perf_counter()
        grow(project, version, owner, have, size)
        have = size
        seeded_s = time.perf_counter() - seed_start
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        for name, url in endpoints.items():
            times = timed_ms(client, url)
            rows.append((size, name, statistics.median(times), p95(times)))
        print(f"\n{size:>7} studies (seeded in {seeded_s:.1f} s)")
        for row in rows[-len(endpoints):]:
            print(f"  {row[1]:<30} p50 {row[2]:7.1f} ms   p95 {row[3]:7.1f} ms")
    worst = max(rows, key=lambda r: r[3])
    print(f"\nworst p95: {worst[1]} at {worst[0]} studies: {worst[3]:.1f} ms (target < {TARGET_P95_MS:.0f} ms)")
    for name in endpoints:
        by_size = [r[3] for r in rows if r[1] == name]
        print(f"  {name:<30} p95 ratio largest/smallest: {by_size[-1] / by_size[0]:.2f}")
