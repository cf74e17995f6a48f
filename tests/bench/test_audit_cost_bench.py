"""Issue 13: what the label audit costs. 200 labelled DICOMs uploaded over the API, then the default audit
(`POST /training-runs/ {"kind": "audit", "folds": 5}`: five fine-tunes of the shipped starter, each predicting the
fold it did not train on). Prints the wall time (target ≤ 10 minutes on the 2-core box) and the out-of-fold MAE
against the phantoms' true ages. `make bench PYTEST_ARGS="-k audit_cost"`.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from tests.bench.test_api_training_bench import upload_case
from tests.live_support import wait_for

pytestmark = [pytest.mark.bench, pytest.mark.live, pytest.mark.django_db(transaction=True), pytest.mark.timeout(3600)]

LABELLED, FOLDS = 200, 5
FIRST_CASE = 1000  # seeds 44000+: none of the training bench's
TARGET_S = 600


def test_a_five_fold_audit_of_200_labelled_studies(celery_worker, project, owner, api_as):
    from boneage.modeling.models import ModelVersion, Prediction, TrainingRun

    client = api_as(owner)
    truth = dict(upload_case(client, project.pk, i, True) for i in range(FIRST_CASE, FIRST_CASE + LABELLED))
    started = time.monotonic()
    response = client.post(f"/api/projects/{project.pk}/training-runs/", {"kind": "audit", "folds": FOLDS}, format="json")
    assert response.status_code == 201, response.json()
    run = wait_for(lambda: TrainingRun.objects.filter(pk=response.json()["id"], state__in=("succeeded", "failed")).first(),
                   timeout=3000, what="the audit run")
    seconds = time.monotonic() - started
    assert run.state == "succeeded", run.error
    folds = ModelVersion.objects.filter(project=project, status="audit")
    out_of_fold = {p.study_id: p.age_months for p in Prediction.objects.filter(model_version__in=folds)}
    assert set(out_of_fold) == set(truth)
    errors = np.abs(np.array([out_of_fold[s] - truth[s] for s in truth]))
    print(f"\n{FOLDS}-fold audit of {LABELLED} labelled studies: {seconds:.0f} s (target ≤ {TARGET_S} s); config "
          f"init={run.config.get('init')} epochs={run.config.get('epochs')}; out-of-fold MAE {errors.mean():.2f} "
          f"months (median {np.median(errors):.2f}, max {errors.max():.1f})")
