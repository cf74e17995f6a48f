"""A reading outside the model's experience (ml.ood, issue 29) is stored on its prediction row, stated by the API, the
worklist and the pages with its reason, gets the project's whole age range as its interval, and a project whose
films are mostly outside its model's experience is told so, with the count and what to do."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from boneage.modeling.actions import prediction_fields
from boneage.modeling.models import ModelVersion, Prediction
from boneage.modeling.outside import outside_summary

pytestmark = pytest.mark.django_db

FAR = "the film's features are unlike anything this model was trained on (distance 38.1, threshold 11.8)"


@pytest.fixture
def version(project):
    return ModelVersion.objects.create(project=project, name="starter", checkpoint="x", sha256="0" * 64,
                                       status="active", metrics={"val_mae": 9.0})


def read(study, version, *, outside: bool, age=175.0, std=6.0):
    return Prediction.objects.create(study=study, model_version=version, age_months=age, std_months=std,
                                     outside=outside, outside_reason=FAR if outside else "",
                                     ood_score=3.2 if outside else 0.5)


def test_the_row_is_built_with_the_predictors_verdict(project, owner, add_studies):
    (study,) = add_studies(project, owner, 1, labelled=False)
    result = SimpleNamespace(age_months=80.0, std_months=6.0, box=(0, 0, 1, 1), score=0.99, embedding=np.zeros(4),
                             outside=True, outside_reason=FAR, ood_score=3.2)
    fields = prediction_fields(study, result, {}, {}, frozenset())
    assert (fields["outside"], fields["outside_reason"], fields["ood_score"]) == (True, FAR, 3.2)
    unknown = SimpleNamespace(**{**vars(result), "outside": False, "outside_reason": "no reference: …",
                                 "ood_score": math.nan})
    assert prediction_fields(study, unknown, {}, {}, frozenset())["ood_score"] is None  # nan is not stored


def test_a_model_trained_by_the_platforms_trainer_carries_a_reference(tiny_checkpoint):
    from ml.checkpoint import load_checkpoint
    from ml.infer import Predictor

    ood = load_checkpoint(tiny_checkpoint).ood
    assert ood["method"].startswith("mahalanobis") and ood["n_train"] >= 2 and ood["n_val"] >= 1
    assert Predictor(tiny_checkpoint, device="cpu").ood_reference is not None


def test_the_latest_prediction_says_outside_with_the_reason_and_states_the_whole_age_range(
        api_as, member, outsider, project, owner, add_studies, version):
    (study,) = add_studies(project, owner, 1, labelled=False)
    read(study, version, outside=True)
    body = api_as(member).get(f"/api/studies/{study.pk}/predictions/latest/").json()
    assert body["outside_experience"] is True and body["outside_reason"] == FAR and body["ood_score"] == 3.2
    assert body["interval_months"] == [project.min_age_months, project.max_age_months]
    assert api_as(outsider).get(f"/api/studies/{study.pk}/predictions/latest/").status_code == 404


def test_a_reading_inside_keeps_its_narrow_interval(api_as, member, project, owner, add_studies, version):
    (study,) = add_studies(project, owner, 1, labelled=False)
    read(study, version, outside=False, age=100.0)
    body = api_as(member).get(f"/api/studies/{study.pk}/predictions/latest/").json()
    assert body["outside_experience"] is False and body["outside_reason"] == ""
    low, high = body["interval_months"]
    assert 80 < low < 100 < high < 120


def test_the_worklist_row_says_outside_with_the_reason(api_as, member, project, owner, add_studies, version):
    inside, outside = add_studies(project, owner, 2, labelled=False)
    read(inside, version, outside=False)
    read(outside, version, outside=True)
    body = api_as(member).get(f"/api/projects/{project.pk}/worklist/").json()
    rows = {row["id"]: row["prediction"] for row in body["results"]}
    assert rows[outside.pk]["outside_experience"] is True and rows[outside.pk]["outside_reason"] == FAR
    assert rows[outside.pk]["interval_months"] == [0.0, 240.0]
    assert rows[inside.pk]["outside_experience"] is False
    assert body["outside_summary"] == {"model": "starter", "predicted": 2, "outside": 1, "most": False, "message": ""}


def test_the_study_page_has_the_place_for_the_note(client, member, project, owner, add_studies, version):
    (study,) = add_studies(project, owner, 1, labelled=False)
    client.force_login(member)
    assert 'id="pred-outside"' in client.get(f"/studies/{study.pk}/").content.decode()


def test_most_films_outside_puts_a_banner_with_the_count_and_what_to_do_on_the_worklist_and_models_page(
        client, member, outsider, project, owner, add_studies, version):
    studies = add_studies(project, owner, 3, labelled=False)
    for study, outside in zip(studies, (True, True, False)):
        read(study, version, outside=outside)
    summary = outside_summary(project.pk)
    assert summary is not None and summary.most and (summary.outside, summary.predicted) == (2, 3)
    client.force_login(member)
    for page in (f"/projects/{project.pk}/", f"/projects/{project.pk}/models/"):
        html = client.get(page).content.decode()
        assert 'id="outside-banner"' in html and "2 of 3 predicted films are outside the experience" in html
        assert "label films" in html and "train a model" in html
    client.force_login(outsider)
    assert client.get(f"/projects/{project.pk}/").status_code == 404


def test_no_banner_while_most_films_are_inside(client, member, project, owner, add_studies, version):
    studies = add_studies(project, owner, 2, labelled=False)
    for study, outside in zip(studies, (True, False)):
        read(study, version, outside=outside)
    client.force_login(member)
    assert 'id="outside-banner"' not in client.get(f"/projects/{project.pk}/").content.decode()
