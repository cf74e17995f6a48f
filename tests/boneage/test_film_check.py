"""The automask stage checks each film before anyone trusts a reading of it (ml.gate, issue 29): a negative or a film
turned on its side is stated on the study, in the API and on the study page, with the reason in words."""
from __future__ import annotations

import numpy as np
import pytest
from boneage.annotations.actions import do_automask
from boneage.studies.actions import IngestFields, do_ingest
from boneage.studies.derive import do_derive
from boneage.studies.models import Study

from ml.phantoms import render
from tests.dicom_factory import png_bytes

pytestmark = pytest.mark.django_db


def ingest(project, owner, image: np.ndarray, name: str) -> Study:
    result = do_ingest(project, owner, png_bytes(image), name, IngestFields(sex="F"))
    assert result.study is not None, result.error
    assert do_derive(result.study.pk)
    assert do_automask(result.study.pk)
    return Study.objects.get(pk=result.study.pk)


def test_a_plain_film_is_read_and_says_nothing(project, owner, api_as, member):
    study = ingest(project, owner, render(100, False, seed=11, size=320).image, "plain.png")
    assert study.film_check["verdict"] == "read" and study.film_check["reason"] == ""
    page = api_as(member).get(f"/studies/{study.pk}/")
    assert b'id="film-check"' not in page.content


def test_a_film_on_its_side_is_stated_on_the_study_the_api_and_the_page(project, owner, api_as, member, outsider):
    film = np.rot90(render(100, False, seed=11, size=320).image).copy()
    study = ingest(project, owner, film, "turned.png")
    assert study.film_check["verdict"] in ("corrected", "flagged") and "fingers-up" in study.film_check["reason"]
    body = api_as(member).get(f"/api/studies/{study.pk}/").json()
    assert body["film_check"]["reason"] == study.film_check["reason"]
    page = api_as(member).get(f"/studies/{study.pk}/").content.decode()
    assert 'id="film-check"' in page and "turn the film 90° clockwise to read it fingers-up" in page
    assert api_as(outsider).get(f"/api/studies/{study.pk}/").status_code == 404


def test_the_worklist_row_carries_the_check_so_a_labeler_sees_it_before_opening_the_study(project, owner, api_as, member):
    film = np.rot90(render(100, False, seed=11, size=320).image).copy()
    study = ingest(project, owner, film, "turned.png")
    rows = api_as(member).get(f"/api/projects/{project.pk}/worklist/").json()["results"]
    row = next(r for r in rows if r["id"] == study.pk)
    assert row["film_check"]["verdict"] == study.film_check["verdict"] and "fingers-up" in row["film_check"]["reason"]
