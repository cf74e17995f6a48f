"""The audit history is append-only through every interface."""
from __future__ import annotations

import pytest
from boneage.audit.models import AuditEvent, AuditHistoryIsAppendOnly
from boneage.studies.actions import do_ingest
from django.db import connection

from tests.dicom_factory import dicom_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(project, owner):
    return do_ingest(project, owner, dicom_bytes(), "hand.dcm").study


def test_ingest_and_labels_land_in_the_study_history(api_as, study, owner):
    client = api_as(owner)
    assert client.post(f"/api/studies/{study.pk}/labels/", {"months": 120}, format="json").status_code == 201
    history = client.get(f"/api/studies/{study.pk}/history/").json()
    assert [event["verb"] for event in history] == ["study.ingested", "label.saved"]
    assert history[1]["actor"] == owner.username and history[1]["after"]["months"] == 120


def test_an_event_cannot_be_changed_or_deleted_through_the_orm(study):
    event = AuditEvent.objects.filter(study=study).first()
    event.verb = "forged"
    with pytest.raises(AuditHistoryIsAppendOnly):
        event.save()
    with pytest.raises(AuditHistoryIsAppendOnly):
        event.delete()
    with pytest.raises(AuditHistoryIsAppendOnly):
        AuditEvent.objects.filter(study=study).update(verb="forged")
    with pytest.raises(AuditHistoryIsAppendOnly):
        AuditEvent.objects.filter(study=study).delete()


def test_the_history_endpoint_accepts_no_writes(api_as, study, owner):
    client = api_as(owner)
    for method in (client.post, client.put, client.patch, client.delete):
        assert method(f"/api/studies/{study.pk}/history/", {}, format="json").status_code == 405


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL only")
def test_postgresql_refuses_raw_sql_updates_of_the_history(study):
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET verb = 'forged'")
    assert not AuditEvent.objects.filter(verb="forged").exists()
