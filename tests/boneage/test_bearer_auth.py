"""Viewers authenticate as they do elsewhere: `Authorization: Bearer <token>` (OHIF, dicomweb-client) works wherever
`Token` does, on the API and on DICOMweb; a request without credentials is a 401 whose WWW-Authenticate names the
scheme, and a bad token is a 401 too."""
from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(member):
    return Token.objects.create(user=member).key


def endpoints(project) -> list[str]:
    return ["/api/projects/", f"/api/projects/{project.pk}/studies/", f"/dicomweb/projects/{project.pk}/studies"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "Token"])
def test_a_member_with_a_bearer_or_token_header_reads_the_api_and_dicomweb(project, token, scheme):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {token}")
    for url in endpoints(project):
        assert client.get(url).status_code == 200, url


def test_a_bearer_token_writes_without_csrf_like_any_api_token(project, token):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post("/api/projects/", {"name": "Wrists"}, format="json")
    assert response.status_code == 201


def test_a_request_without_credentials_is_a_401_that_names_the_bearer_scheme(project):
    for url in endpoints(project):
        response = APIClient().get(url)
        assert response.status_code == 401, url
        assert response["WWW-Authenticate"] == 'Bearer realm="boneage"'
        assert response.json()["error"] == "not_authenticated"


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer", "Bearer two words", "Token nope"])
def test_a_bad_or_malformed_token_is_a_401_with_the_challenge(project, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(f"/dicomweb/projects/{project.pk}/studies")
    assert response.status_code == 401 and response["WWW-Authenticate"] == 'Bearer realm="boneage"'
    assert response.json()["error"] == "authentication_failed" and response.json()["detail"]


def test_a_token_in_the_query_string_is_not_read(project, token):
    response = APIClient().get(f"/dicomweb/projects/{project.pk}/studies", {"token": token})
    assert response.status_code == 401


def test_an_outsiders_bearer_token_gets_404_as_before(project, outsider):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.create(user=outsider).key}")
    assert client.get(f"/dicomweb/projects/{project.pk}/studies").status_code == 404
