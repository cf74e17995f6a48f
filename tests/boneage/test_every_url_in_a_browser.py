"""Every URL a person may open answers without a 5xx: each pattern of the project's URLconf, its ids filled with the
real objects of a small project, opened the way a browser opens it (`Accept: text/html`) by the owner, a member, an
outsider, someone signed out and site staff."""
from __future__ import annotations

import re

import numpy as np
import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.dicom_factory import dicom_bytes, make_dicom_dataset

pytestmark = pytest.mark.django_db

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def url_patterns(patterns=None, prefix=""):
    """Every (route, name) of the URLconf, included ones spelled out in full."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from url_patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            assert isinstance(pattern, URLPattern)
            yield prefix + str(pattern.pattern)


def fill(route: str, values: dict[str, str]) -> str:
    """The URL a browser would open for `route`: `<int:project_id>` and `(?P<app_label>…)` become real values."""
    names = re.findall(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", route)
    missing = {a or b for a, b in names} - set(values)
    assert not missing, f"no fixture value for {missing} in {route}: give the new URL a real object below"
    url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], url)
    return "/" + url.replace("^", "").replace("$", "")


@pytest.fixture
def small_project(owner, member, project, django_user_model):
    """One object of each kind a URL names: a DICOM study with a mask, a label, a model version, a training run and
    a review item, a password-reset link of the member's."""
    from boneage.annotations.actions import do_save_label, do_save_mask
    from boneage.audit.models import AuditEvent
    from boneage.modeling.models import ModelVersion, TrainingRun
    from boneage.review.models import ReviewItem
    from boneage.studies.actions import do_ingest
    from django.contrib.auth.tokens import default_token_generator
    from django.contrib.contenttypes.models import ContentType
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    dataset = make_dicom_dataset()
    study = do_ingest(project, owner, dicom_bytes(dataset), "hand.dcm").study
    do_save_label(study, 120.0, author=member)
    version = ModelVersion.objects.create(project=project, name="v1", checkpoint="models/x.pt", sha256="0" * 64,
                                          status="active")
    return {
        "project_id": str(project.pk), "study_id": str(study.pk), "version_id": str(version.pk), "part": "mask",
        "revision_id": str(do_save_mask(study, np.ones((64, 48), dtype=bool), source="expert", author=member).pk),
        "run_id": str(TrainingRun.objects.create(project=project).pk),
        "item_id": str(ReviewItem.objects.create(project=project, study=study, reason="model_vs_label", magnitude=30,
                                                 unit="months", priority=1, key="k").pk),
        "user_id": str(member.pk),
        "study_uid": dataset.StudyInstanceUID, "series_uid": dataset.SeriesInstanceUID,
        "sop_uid": dataset.SOPInstanceUID, "frames": "1", "frame": "1", "tag": "7FE00010",
        "uidb64": urlsafe_base64_encode(force_bytes(member.pk)), "token": default_token_generator.make_token(member),
        # the Django admin's own routes
        "object_id": str(AuditEvent.objects.first().pk), "id": str(member.pk), "app_label": "audit",
        "content_type_id": str(ContentType.objects.get_for_model(django_user_model).pk), "url": "no/such/page/",
    }


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="stella_staff", password="stella-Pass-123", is_staff=True,
                                                 is_superuser=True)


def browser_for(user) -> Client:
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize("persona", ["owner", "member", "outsider", "anonymous", "staff"])
def test_every_url_of_the_project_opened_in_a_browser_answers_without_a_server_error(persona, request, small_project):
    client = browser_for(None if persona == "anonymous" else request.getfixturevalue(persona))
    routes = list(url_patterns())
    assert len(routes) > 100  # the whole URLconf, admin and DICOMweb included
    server_errors = []
    for route in routes:
        url = fill(route, small_project)
        response = client.get(url, HTTP_ACCEPT=BROWSER)
        if response.status_code >= 500:
            server_errors.append(f"{response.status_code} {url}")
    assert server_errors == [], f"as {persona}: " + "; ".join(server_errors)


def test_the_browsable_api_shows_the_owner_their_projects_list_as_a_page(owner, project):
    response = browser_for(owner).get("/api/projects/", HTTP_ACCEPT=BROWSER)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"Hands" in response.content


def test_a_refusal_opened_in_a_browser_is_the_same_json_error_with_its_detail(member, project):
    response = browser_for(member).get(f"/api/projects/{project.pk}/studies/?ordering=age", HTTP_ACCEPT=BROWSER)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "invalid_ordering"
    assert response.json()["detail"].startswith("ordering must be one of")
