"""An automatic mask that scored low goes to a labeler first (issue 28): the worklist tags it "check the mask", can
show only those studies or order them first, and the study page says so above the mask editor, until a person
replaces the mask."""
from __future__ import annotations

import numpy as np
import pytest
from boneage.annotations.actions import do_save_mask
from boneage.annotations.models import CHECK_MASK_BELOW, MaskSource
from boneage.studies.actions import IngestFields, do_ingest

from ml.phantoms import render
from tests.dicom_factory import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def masked(project, owner):
    """Three studies: a Canny mask scored 0.55, a Canny mask scored 0.95, and one whose low Canny mask a labeler
    replaced."""
    studies = {}
    for k, (name, quality) in enumerate((("doubtful", 0.55), ("good", 0.95), ("fixed", 0.40))):
        film = render(100 + k, bool(k % 2), seed=21 + k, size=160).image
        study = do_ingest(project, owner, png_bytes(film), f"{name}.png", IngestFields(sex="F")).study
        do_save_mask(study, film > film.mean(), source=MaskSource.CANNY, quality=quality, enforce_base=False)
        studies[name] = study
    do_save_mask(studies["fixed"], np.ones((160, 160), bool), source=MaskSource.EXPERT, author=owner,
                 enforce_base=False)
    return studies


def rows(client, project, **params) -> list[dict]:
    response = client.get(f"/api/projects/{project.pk}/worklist/", params)
    assert response.status_code == 200, response.json()
    return response.json()["results"]


def test_a_low_scoring_automatic_mask_is_tagged_for_a_labeler_and_a_good_or_fixed_one_is_not(
        api_as, project, member, masked):
    by_id = {row["id"]: row for row in rows(api_as(member), project)}
    doubtful, good, fixed = (by_id[masked[name].pk] for name in ("doubtful", "good", "fixed"))
    assert doubtful["mask_to_check"] is True and doubtful["mask_quality"] == pytest.approx(0.55)
    assert good["mask_to_check"] is False and good["mask_quality"] == pytest.approx(0.95)
    assert fixed["mask_to_check"] is False and fixed["mask_quality"] is None  # a person's mask has no Canny score
    assert 0.55 < CHECK_MASK_BELOW < 0.95


def test_the_worklist_shows_only_the_masks_to_check_or_orders_them_first(api_as, project, member, masked):
    client = api_as(member)
    assert [row["id"] for row in rows(client, project, mask="check")] == [masked["doubtful"].pk]
    ordered = [row["id"] for row in rows(client, project, ordering="mask_quality")]
    assert ordered == [masked["doubtful"].pk, masked["good"].pk, masked["fixed"].pk]


def test_an_unknown_mask_filter_is_refused_with_what_it_accepts(api_as, project, member, masked):
    response = api_as(member).get(f"/api/projects/{project.pk}/worklist/", {"mask": "bad"})
    assert response.status_code == 400 and "mask must be check" in response.json()["detail"]


def test_the_study_page_asks_for_the_mask_to_be_checked_until_a_person_replaces_it(api_as, member, owner, masked):
    client = api_as(member)
    page = client.get(f"/studies/{masked['doubtful'].pk}/").content.decode()
    assert 'id="mask-check"' in page and "0.55" in page
    assert 'id="mask-check"' not in client.get(f"/studies/{masked['good'].pk}/").content.decode()
    assert 'id="mask-check"' not in client.get(f"/studies/{masked['fixed'].pk}/").content.decode()
