"""Fixtures of the review tests: reviewer personas, tiny studies, model outputs as plain rows.

The rules read rows, not checkpoints, so a ModelVersion with a dummy checkpoint name and Prediction
rows written here stand in for a model. `committed()` runs the on-commit hooks (rules, live events)
of the block, as a real request's commit would.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.boneage.review.helpers import mask_file, rectangle

_counter = itertools.count(1)


@pytest.fixture
def second_reviewer(member_with_role):
    return member_with_role("rob_reviewer", "reviewer")


@pytest.fixture
def second_labeler(member_with_role):
    return member_with_role("lena_labeler", "labeler")


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """`with committed(): ...` runs the block's on-commit callbacks (rule runs, events) when it ends."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def make_study(project, owner):
    """A 64×48 PNG study, optionally with an imported bone age."""
    from boneage.studies.actions import IngestFields, do_ingest

    from tests.dicom_factory import png_bytes

    def make(months: float | None = None, *, in_project=None):
        n = next(_counter)
        pixels = np.full((48, 64), n % 250, np.uint8)
        pixels[n % 48, :] = 255
        fields = IngestFields(sex="F", bone_age_months=months)
        result = do_ingest(in_project or project, owner, png_bytes(pixels), f"hand-{n}.png", fields)
        assert result.study is not None, result.error
        return result.study

    return make


@pytest.fixture
def model_version(project):
    from boneage.modeling.models import ModelVersion

    def make(*, status="active", name=None, trained_on=(), in_project=None):
        target = in_project or project
        return ModelVersion.objects.create(project=target, name=name or f"v{next(_counter)}", checkpoint="models/dummy.pt",
                                           sha256="0" * 64, status=status, training_study_ids=[s.pk for s in trained_on])

    return make


@pytest.fixture
def predict(committed):
    """Write a prediction row and tell the review hook, as modeling's _store_prediction does."""
    from boneage.modeling.models import Prediction
    from boneage.review.hooks import study_changed

    def make(study, version, age, std, *, out_of_fold=True, mask: np.ndarray | None = None, **fields):
        with committed():
            prediction = Prediction.objects.create(study=study, model_version=version, age_months=age, std_months=std,
                                                   out_of_fold=out_of_fold, mask=mask_file(mask) if mask is not None else "",
                                                   **fields)
            from django.db import transaction

            transaction.on_commit(lambda: study_changed(study.pk, "prediction"))
        return prediction

    return make


@pytest.fixture
def label(committed):
    from boneage.annotations.actions import do_save_label

    def make(study, months, by):
        with committed():
            return do_save_label(study, months, author=by, enforce_base=False)

    return make


@pytest.fixture
def draw_mask(committed):
    """Save an expert mask revision of the study: a rectangle [y0:y1, x0:x1] on the 48×64 image."""
    from boneage.annotations.actions import do_save_mask

    def make(study, box, by, source="expert"):
        array = rectangle(box)
        with committed():
            return do_save_mask(study, array, source=source, author=by, enforce_base=False)

    return make
