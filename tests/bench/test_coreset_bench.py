"""What ranking core-set costs the cpu worker (issue 13): `rank_version` (k-center greedy on every unlabelled study's
256 stored features) against the per-study scores the platform already computed (`_score_studies`: uncertainty,
random, diverse) on the same project, in the same run, at 1k and 10k studies with a third labelled.

    make bench PYTEST_ARGS="-k coreset"        # CORESET_SIZES=1000 trims it; CORESET_SIZES=100000 (4 min) grows it
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from tests.bench.results import BenchResults

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]

SIZES = tuple(int(s) for s in os.environ.get("CORESET_SIZES", "1000,10000").split(","))
RESULTS = BenchResults("var/bench/coreset.json", lambda: {"cpus": os.cpu_count()})
BATCH = 5000


def seed(project, version, owner, n: int) -> None:
    from boneage.annotations.models import AgeLabel
    from boneage.modeling.coreset import embedding_bytes
    from boneage.modeling.models import Prediction
    from boneage.studies.models import Study

    rng = np.random.default_rng(0)
    for first in range(0, n, BATCH):
        numbers = range(first, min(first + BATCH, n))
        studies = Study.objects.bulk_create([
            Study(project=project, instance_key=f"k{i}", sop_instance_uid=f"1.2.3.{i}", external_id=str(i),
                  sex="M" if i % 2 else "F", original_name=f"{i}.png", checksum=f"{i:064d}", created_by=owner)
            for i in numbers])
        Prediction.objects.bulk_create([
            Prediction(study=s, model_version=version, age_months=float(rng.uniform(0, 228)),
                       std_months=float(rng.uniform(3, 15)),
                       embedding=embedding_bytes(rng.gamma(2.0, 0.5, 256).astype(np.float32))) for s in studies])
        AgeLabel.objects.bulk_create([AgeLabel(study=s, months=100.0, author=owner, source="expert")
                                      for k, s in zip(numbers, studies) if k % 3 == 0])


def best_of(runs: int, action) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


@pytest.mark.parametrize("n", SIZES)
def test_ranking_core_set_fits_the_rank_tasks_time_limit(n, project, owner):
    from boneage.annotations.models import AgeLabel
    from boneage.modeling.actions import _score_studies
    from boneage.modeling.coreset import rank_version
    from boneage.modeling.models import ModelVersion, Prediction
    from django.db.models import Exists, OuterRef

    version = ModelVersion.objects.create(project=project, name="v1", checkpoint="x.pt", sha256="0" * 64,
                                          status="active")
    seed(project, version, owner, n)
    unlabelled = list(Prediction.objects.filter(model_version=version)
                      .exclude(Exists(AgeLabel.objects.filter(study=OuterRef("study")))).select_related("study"))
    per_study = best_of(2, lambda: _score_studies(version, unlabelled))
    coreset = best_of(2, lambda: rank_version(version))
    RESULTS.record(f"{n} studies", {"unlabelled": len(unlabelled), "per_study_scores_s": round(per_study, 2),
                                    "coreset_s": round(coreset, 2), "ratio": round(coreset / per_study, 2)})
    assert coreset < 300  # modeling.rank_coreset's soft time limit
