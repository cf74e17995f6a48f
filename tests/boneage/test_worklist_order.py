"""The worklist's "by uncertainty" order is read in two index-friendly parts (web.api.NullsLastIds): paging through
it must give exactly the one-query order: the active model's std, largest first (ties: newest id first), then the
studies it has not read yet."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed_project(project, owner):
    """23 studies: 15 with the active model's prediction (std with ties), 8 without; an older model's predictions
    on every study, which must not count."""
    from boneage.modeling.models import ModelVersion, Prediction
    from boneage.studies.models import Image, Study

    older = ModelVersion.objects.create(project=project, name="v1", checkpoint="m/v1.pt", sha256="1" * 64, status="retired")
    active = ModelVersion.objects.create(project=project, name="v2", checkpoint="m/v2.pt", sha256="2" * 64, status="active")
    studies = Study.objects.bulk_create([
        Study(project=project, instance_key=f"k{n}", sop_instance_uid=f"1.2.3.{n}", external_id=str(n), sex="MF"[n % 2],
              original_name=f"{n}.png", checksum=f"{n:064d}", automask_state="done", created_by=owner) for n in range(23)])
    Image.objects.bulk_create([Image(study=s, original=f"s/{s.pk}.png", width=64, height=64, media_type="image/png")
                               for s in studies])
    Prediction.objects.bulk_create([Prediction(study=s, model_version=older, age_months=50, std_months=99) for s in studies])
    Prediction.objects.bulk_create([Prediction(study=s, model_version=active, age_months=60, std_months=float(n % 4))
                                    for n, s in enumerate(studies) if n % 3 != 0])
    return project, studies, active


def expected_order(studies, active) -> list[int]:
    from boneage.modeling.models import Prediction

    std = dict(Prediction.objects.filter(model_version=active).values_list("study_id", "std_months"))
    predicted = sorted((s.pk for s in studies if s.pk in std), key=lambda pk: (-std[pk], -pk))
    return predicted + sorted((s.pk for s in studies if s.pk not in std), reverse=True)


def pages(client, project, limit: int) -> list[int]:
    ids, offset = [], 0
    while True:
        body = client.get(f"/api/projects/{project.pk}/worklist/?ordering=-uncertainty&limit={limit}&offset={offset}").json()
        ids += [row["id"] for row in body["results"]]
        assert body["count"] == 23
        if not body["next"]:
            return ids
        offset += limit


@pytest.mark.parametrize("limit", [1, 4, 7, 15, 16, 50])
def test_paging_by_uncertainty_gives_the_one_query_order_across_the_unpredicted_tail(api_as, owner, mixed_project,
                                                                                     limit):
    project, studies, active = mixed_project
    assert pages(api_as(owner), project, limit) == expected_order(studies, active)


def test_an_offset_past_every_predicted_study_starts_in_the_unpredicted_tail(api_as, owner, mixed_project):
    project, studies, active = mixed_project
    body = api_as(owner).get(f"/api/projects/{project.pk}/worklist/?ordering=-uncertainty&limit=3&offset=17").json()
    assert [row["id"] for row in body["results"]] == expected_order(studies, active)[17:20]
    assert all(row["prediction"] is None for row in body["results"])


def test_filters_apply_to_both_parts(api_as, owner, mixed_project):
    project, studies, active = mixed_project
    males = [s for s in studies if s.sex == "M"]
    ids = [row["id"] for row in api_as(owner).get(
        f"/api/projects/{project.pk}/worklist/?ordering=-uncertainty&sex=M&limit=100").json()["results"]]
    assert ids == [pk for pk in expected_order(studies, active) if pk in {s.pk for s in males}]
