"""A client that accepts only `image/png` gets the PNG, or the real error with its JSON reason (issue 34).

The image endpoints answer a PNG, their errors JSON. An image viewer or a script that sends `Accept: image/png` got
406 Not Acceptable for every answer, the error's status and reason lost: DRF chose the renderer of the (JSON) errors
before the view ran, and none of them renders image/png.
"""
from __future__ import annotations

import numpy as np
import pytest
from boneage.studies.actions import IngestFields, do_ingest
from boneage.studies.models import Image
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from tests.dicom_factory import png_bytes

pytestmark = pytest.mark.django_db
ONLY_PNG = {"HTTP_ACCEPT": "image/png"}
IMAGE_ENDPOINTS = ("/api/studies/{id}/image/", "/api/studies/{id}/thumbnail/")


def a_hand(project, owner):
    pixels = np.zeros((96, 80), np.uint8)
    pixels[20:80, 20:60] = 200
    return do_ingest(project, owner, png_bytes(pixels), "hand.png", IngestFields(sex="F")).study


def a_study_whose_stored_film_is_damaged(project, owner):
    """Stored by ingest, then its original cut short on disk before anything was derived from it."""
    study = a_hand(project, owner)
    image = Image.objects.get(study=study)
    damaged = default_storage.open(image.original, "rb").read()[:60]
    default_storage.delete(image.original)
    default_storage.save(image.original, ContentFile(damaged))
    Image.objects.filter(pk=image.pk).update(normalized="", display="", work="")
    return study


@pytest.mark.parametrize("endpoint", IMAGE_ENDPOINTS)
def test_a_member_who_accepts_only_png_gets_the_png(endpoint, project, owner, member, api_as):
    study = a_hand(project, owner)
    response = api_as(member).get(endpoint.format(id=study.pk), **ONLY_PNG)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"


@pytest.mark.parametrize("endpoint", IMAGE_ENDPOINTS)
def test_an_undecodable_film_is_a_422_with_its_reason_for_a_client_that_accepts_only_png(
        endpoint, project, owner, member, api_as):
    study = a_study_whose_stored_film_is_damaged(project, owner)
    for persona in (owner, member):
        response = api_as(persona).get(endpoint.format(id=study.pk), **ONLY_PNG)
        assert response.status_code == 422
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"] == "image_undecodable"
        assert response.json()["detail"].startswith("The stored original cannot be decoded: ")


@pytest.mark.parametrize("endpoint", IMAGE_ENDPOINTS)
def test_an_outsider_and_a_missing_study_get_the_same_json_404_when_accepting_only_png(
        endpoint, project, owner, outsider, api_as):
    study = a_hand(project, owner)
    for persona, study_id in ((outsider, study.pk), (owner, study.pk + 1000)):
        response = api_as(persona).get(endpoint.format(id=study_id), **ONLY_PNG)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_someone_not_signed_in_gets_a_401_not_a_406(project, owner):
    study = a_hand(project, owner)
    response = APIClient().get(f"/api/studies/{study.pk}/image/", **ONLY_PNG)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_a_missing_mask_or_prediction_file_is_a_404_when_accepting_only_png(project, owner, member, api_as):
    study = a_hand(project, owner)
    client = api_as(member)
    assert client.get("/api/masks/999999/png/", **ONLY_PNG).status_code == 404
    response = client.get(f"/api/studies/{study.pk}/predictions/999999/mask.png", **ONLY_PNG)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_json_endpoint_asked_for_only_png_answers_its_json_as_http_allows(project, owner, member, api_as):
    study = a_hand(project, owner)
    response = api_as(member).get(f"/api/studies/{study.pk}/", **ONLY_PNG)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["id"] == study.pk
