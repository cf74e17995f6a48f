"""Deleting a study: project admins may, through the API, DICOMweb and the study page; everything made from it and
its files go, its audit history stays and says so; other members are refused (403) and outsiders see nothing (404)."""
from __future__ import annotations

import numpy as np
import pytest
from boneage.annotations.actions import do_save_label, do_save_mask
from boneage.annotations.models import AgeLabel, MaskRevision
from boneage.audit.models import AuditEvent
from boneage.dicomweb.models import DerivedObject
from boneage.modeling.prediction_files import fast_png, prediction_file_name, save_derived
from boneage.studies.actions import do_ingest
from boneage.studies.models import IngestRecord, Study
from django.core.files.storage import default_storage

from tests.dicom_factory import dicom_bytes, make_dicom_dataset

pytestmark = pytest.mark.django_db


def hand_mask() -> np.ndarray:
    mask = np.zeros((64, 48), bool)
    mask[8:56, 10:40] = True
    return mask


@pytest.fixture
def worked_study(project, owner, member, api_as):
    """A DICOM study with a chain of mask revisions, a corrected label, a prediction file and a SEG export."""
    study = do_ingest(project, owner, dicom_bytes(make_dicom_dataset()), "hand.dcm").study
    canny = do_save_mask(study, hand_mask(), source="canny")
    do_save_mask(study, hand_mask(), source="expert", author=member, base_revision_id=canny.pk)
    first = do_save_label(study, 120.0, author=member)
    do_save_label(study, 126.0, author=owner, base_label_id=first.pk)  # a label whose base is the first
    save_derived(prediction_file_name(study, 1, "mask"), fast_png(hand_mask().astype(np.uint8) * 255))
    assert api_as(member).get(f"/api/studies/{study.pk}/export/seg/").status_code == 200
    return Study.objects.get(pk=study.pk)


def files_of(study: Study) -> list[str]:
    names = [study.image.original, *MaskRevision.objects.filter(study=study).values_list("mask", flat=True),
             *DerivedObject.objects.filter(study=study).values_list("file", flat=True),
             prediction_file_name(study, 1, "mask")]
    assert all(default_storage.exists(name) for name in names)
    return names


def test_the_owner_deletes_a_study_and_its_rows_and_files_go_while_its_history_stays(
        django_capture_on_commit_callbacks, api_as, project, owner, worked_study):
    files = files_of(worked_study)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(owner).delete(f"/api/studies/{worked_study.pk}/")
    assert response.status_code == 204
    assert not Study.objects.filter(pk=worked_study.pk).exists()
    assert not MaskRevision.objects.filter(study_id=worked_study.pk).exists()
    assert not AgeLabel.objects.filter(study_id=worked_study.pk).exists()
    assert not DerivedObject.objects.filter(study_id=worked_study.pk).exists()
    assert [name for name in files if default_storage.exists(name)] == []
    history = AuditEvent.objects.filter(study_id=worked_study.pk)
    assert history.first().verb == "study.ingested" and history.last().verb == "study.deleted"
    deleted = history.last()
    assert deleted.actor == owner and deleted.before["sop_instance_uid"] == worked_study.sop_instance_uid
    assert IngestRecord.objects.get(project=project).study is None  # the upload's record stays, unlinked
    listed = api_as(owner).get(f"/api/projects/{project.pk}/history/").json()
    events = listed["results"] if isinstance(listed, dict) else listed
    assert "study.deleted" in [event["verb"] for event in events]


def test_a_member_who_is_not_an_admin_is_refused_and_nothing_is_deleted(api_as, member, worked_study):
    files = files_of(worked_study)
    response = api_as(member).delete(f"/api/studies/{worked_study.pk}/")
    assert response.status_code == 403 and "admin" in response.json()["detail"]
    assert Study.objects.filter(pk=worked_study.pk).exists() and all(default_storage.exists(name) for name in files)
    assert not AuditEvent.objects.filter(verb="study.deleted").exists()


def test_an_outsider_gets_404_as_for_a_study_that_does_not_exist(api_as, outsider, worked_study):
    response = api_as(outsider).delete(f"/api/studies/{worked_study.pk}/")
    assert response.status_code == 404 and response.json()["detail"] == "No such study."
    assert api_as(outsider).delete("/api/studies/999999/").json()["detail"] == "No such study."
    assert Study.objects.filter(pk=worked_study.pk).exists()


def test_dicomweb_delete_of_a_study_removes_every_film_of_it_for_an_admin_only(
        django_capture_on_commit_callbacks, api_as, project, owner, member, outsider):
    first = make_dicom_dataset()
    second = make_dicom_dataset()
    second.StudyInstanceUID = first.StudyInstanceUID  # two films of one DICOM study
    other = make_dicom_dataset()
    for ds in (first, second, other):
        do_ingest(project, owner, dicom_bytes(ds), "hand.dcm")
    url = f"/dicomweb/projects/{project.pk}/studies/{first.StudyInstanceUID}"
    assert api_as(member).delete(url).status_code == 403
    assert api_as(outsider).delete(url).status_code == 404
    assert api_as(owner).delete(f"{url}/series/{first.SeriesInstanceUID}").status_code == 405  # a study or nothing
    assert Study.objects.filter(project=project).count() == 3
    with django_capture_on_commit_callbacks(execute=True):
        assert api_as(owner).delete(url).status_code == 204
    assert list(Study.objects.filter(project=project).values_list("sop_instance_uid", flat=True)) == [other.SOPInstanceUID]
    assert AuditEvent.objects.filter(verb="study.deleted").count() == 2
    assert api_as(owner).get(url).status_code == 404
    gone = api_as(owner).delete(url)
    assert gone.status_code == 404 and first.StudyInstanceUID in gone.json()["detail"]


def test_the_study_page_shows_the_delete_button_to_admins_only_and_it_deletes(client, project, owner, member, worked_study):
    client.force_login(member)
    assert b'id="delete-study"' not in client.get(f"/studies/{worked_study.pk}/").content
    refused = client.post(f"/studies/{worked_study.pk}/delete/")
    assert refused.status_code == 302 and Study.objects.filter(pk=worked_study.pk).exists()
    client.force_login(owner)
    assert b'id="delete-study"' in client.get(f"/studies/{worked_study.pk}/").content
    response = client.post(f"/studies/{worked_study.pk}/delete/", follow=True)
    assert response.redirect_chain[-1][0] == f"/projects/{project.pk}/"
    assert b"and its files were deleted" in response.content
    assert not Study.objects.filter(pk=worked_study.pk).exists()
