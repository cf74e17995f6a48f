"""The queue over the API: order, filters, claims with leases, and every decision becoming the gold value."""
from __future__ import annotations

from datetime import timedelta

import pytest
from boneage.annotations.actions import current_label
from boneage.annotations.models import AgeLabel, MaskRevision
from boneage.review.models import ReviewItem
from django.utils import timezone

from tests.boneage.review.helpers import open_items, rectangle

pytestmark = pytest.mark.django_db


@pytest.fixture
def disagreement(make_study, model_version, predict):
    """A study labelled 100 months that the model reads as 150 ± 5: one open model_vs_label item."""
    study = make_study(100)
    predict(study, model_version(), 150, 5)
    [item] = open_items(study)
    return item


def resolve(client, item, **body):
    return client.post(f"/api/review-items/{item.pk}/resolve/", body, format="json")


# --- the queue -------------------------------------------------------------------------------------------

def test_the_queue_lists_the_biggest_disagreement_weighed_by_uncertainty_first(api_as, reviewer, make_study, model_version, predict):
    version = model_version()
    small, sure, unsure = make_study(100), make_study(100), make_study(100)
    predict(small, version, 125, 5)    # 25 months, std 5  → priority 5
    predict(sure, version, 160, 4)     # 60 months, std 4  → priority 15
    predict(unsure, version, 170, 45)  # 70 months, std 45 → inside the 90% interval (± 1.645 × 45): only "model unsure"
    body = api_as(reviewer).get(f"/api/projects/{small.project_id}/review-items/").json()
    assert [(row["study"], row["reason"]) for row in body["results"]] == [
        (sure.pk, "model_vs_label"), (small.pk, "model_vs_label"), (unsure.pk, "model_unsure")]
    assert body["open_count"] == 3 and body["results"][0]["state"] == "open"


def test_the_queue_filters_by_reason(api_as, reviewer, make_study, model_version, predict):
    version = model_version()
    predict(make_study(100), version, 160, 4)
    predict(make_study(), version, 100, 30)
    client = api_as(reviewer)
    project_id = version.project_id
    rows = client.get(f"/api/projects/{project_id}/review-items/?reason=model_unsure").json()["results"]
    assert [row["reason"] for row in rows] == ["model_unsure"]
    rows = client.get(f"/api/projects/{project_id}/review-items/?reason=model_unsure,model_vs_label").json()["results"]
    assert len(rows) == 2


@pytest.mark.parametrize("query", ["reason=typo", "state=stuck"])
def test_an_unknown_filter_is_a_clear_400(api_as, reviewer, project, query):
    response = api_as(reviewer).get(f"/api/projects/{project.pk}/review-items/?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_filter" and response.json()["detail"]


# --- claims and leases -----------------------------------------------------------------------------------

def test_a_claim_gives_the_reviewer_a_lease_that_others_see(api_as, reviewer, second_reviewer, disagreement):
    response = api_as(reviewer).post(f"/api/review-items/{disagreement.pk}/claim/")
    assert response.status_code == 200
    assert response.json()["state"] == "claimed" and response.json()["claimed_by"] == reviewer.username
    other = api_as(second_reviewer).post(f"/api/review-items/{disagreement.pk}/claim/")
    assert other.status_code == 409 and other.json()["error"] == "claimed_by_other"
    assert other.json()["claimed_by"] == reviewer.username


def test_an_expired_lease_frees_the_item_for_the_next_reviewer(api_as, reviewer, second_reviewer, disagreement):
    assert api_as(reviewer).post(f"/api/review-items/{disagreement.pk}/claim/").status_code == 200
    ReviewItem.objects.filter(pk=disagreement.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    rows = api_as(second_reviewer).get(f"/api/projects/{disagreement.project_id}/review-items/?state=unclaimed").json()["results"]
    assert [row["id"] for row in rows] == [disagreement.pk] and rows[0]["claimed_by"] is None
    response = api_as(second_reviewer).post(f"/api/review-items/{disagreement.pk}/claim/")
    assert response.status_code == 200 and response.json()["claimed_by"] == second_reviewer.username


def test_the_lease_lasts_the_projects_lease_minutes(api_as, reviewer, project, disagreement):
    project.settings = {"review": {"lease_minutes": 5}}
    project.save()
    before = timezone.now()
    api_as(reviewer).post(f"/api/review-items/{disagreement.pk}/claim/")
    disagreement.refresh_from_db()
    assert timedelta(minutes=4.9) < disagreement.lease_expires_at - before < timedelta(minutes=5.1)


def test_a_reviewer_can_release_their_claim_but_not_someone_elses(api_as, reviewer, second_reviewer, disagreement):
    api_as(reviewer).post(f"/api/review-items/{disagreement.pk}/claim/")
    assert api_as(second_reviewer).post(f"/api/review-items/{disagreement.pk}/release/").status_code == 409
    response = api_as(reviewer).post(f"/api/review-items/{disagreement.pk}/release/")
    assert response.status_code == 200 and response.json()["state"] == "open"


def test_a_reviewer_cannot_resolve_an_item_another_reviewer_holds(api_as, reviewer, second_reviewer, disagreement):
    api_as(reviewer).post(f"/api/review-items/{disagreement.pk}/claim/")
    response = resolve(api_as(second_reviewer), disagreement, decision="accept_model")
    assert response.status_code == 409 and response.json()["error"] == "claimed_by_other"
    assert not AgeLabel.objects.filter(study=disagreement.study, source="review").exists()


# --- decisions become the gold value -----------------------------------------------------------------------

def test_accepting_the_label_makes_it_the_gold_review_label(api_as, reviewer, disagreement, committed):
    with committed():
        response = resolve(api_as(reviewer), disagreement, decision="accept_label")
    assert response.status_code == 200 and response.json()["state"] == "resolved"
    gold = current_label(disagreement.study)
    assert (gold.source, gold.months, gold.author) == ("review", 100, reviewer)
    assert response.json()["outcome"]["gold_label"] == gold.pk
    assert open_items(disagreement.study) == []  # the rules do not re-open what a reviewer decided


def test_accepting_the_model_makes_its_age_the_gold_label(api_as, reviewer, disagreement, committed):
    with committed():
        assert resolve(api_as(reviewer), disagreement, decision="accept_model").status_code == 200
    gold = current_label(disagreement.study)
    assert (gold.source, gold.months) == ("review", 150)
    assert api_as(reviewer).get(f"/api/studies/{disagreement.study_id}/").json()["label"]["months"] == 150


def test_a_new_value_becomes_the_gold_label(api_as, reviewer, disagreement, committed):
    with committed():
        assert resolve(api_as(reviewer), disagreement, decision="new_value", months=131.5).status_code == 200
    assert current_label(disagreement.study).months == 131.5
    disagreement.refresh_from_db()
    assert disagreement.decision == "new_value" and disagreement.resolved_by == reviewer


def test_a_dismissal_keeps_the_labels_and_is_not_reopened_by_the_same_evidence(api_as, reviewer, disagreement, committed):
    from boneage.review.actions import evaluate_study

    with committed():
        response = resolve(api_as(reviewer), disagreement, decision="dismiss", reason="atypical hand, label is right")
    assert response.status_code == 200 and response.json()["state"] == "dismissed"
    assert not AgeLabel.objects.filter(study=disagreement.study, source="review").exists()
    evaluate_study(disagreement.study_id)
    assert open_items(disagreement.study) == []


def test_new_evidence_after_a_dismissal_opens_a_new_item(api_as, reviewer, member, disagreement, label, committed):
    with committed():
        resolve(api_as(reviewer), disagreement, decision="dismiss", reason="fine")
    label(disagreement.study, 60, member)
    [item] = open_items(disagreement.study)
    assert item.pk != disagreement.pk and item.evidence["label"]["months"] == 60


def test_a_corrected_mask_becomes_the_gold_review_mask(api_as, reviewer, make_study, model_version, predict, draw_mask, member, committed):
    from tests.dicom_factory import png_bytes

    study = make_study()
    predict(study, model_version(), 100, 5, mask=rectangle((0, 48, 0, 32)))
    draw_mask(study, (0, 48, 16, 48), member)
    [item] = open_items(study, "mask_vs_mask")
    upload = png_bytes((rectangle((0, 48, 0, 30)) * 255).astype("uint8"))
    from django.core.files.uploadedfile import SimpleUploadedFile

    with committed():
        response = api_as(reviewer).post(f"/api/review-items/{item.pk}/resolve/",
                                         {"decision": "mask", "file": SimpleUploadedFile("m.png", upload, "image/png")},
                                         format="multipart")
    assert response.status_code == 200, response.json()
    gold = MaskRevision.objects.get(pk=response.json()["outcome"]["gold_mask"])
    assert gold.source == "review" and gold.author == reviewer
    assert open_items(study) == []


def test_accepting_the_models_mask_copies_it_as_the_gold_mask(api_as, reviewer, make_study, model_version, predict, draw_mask, member, committed):
    study = make_study()
    predict(study, model_version(), 100, 5, mask=rectangle((0, 48, 0, 32)))
    draw_mask(study, (0, 48, 16, 48), member)
    [item] = open_items(study, "mask_vs_mask")
    with committed():
        response = resolve(api_as(reviewer), item, decision="accept_model")
    assert response.status_code == 200
    gold = MaskRevision.objects.get(pk=response.json()["outcome"]["gold_mask"])
    assert (gold.source, round(gold.area_fraction, 3)) == ("review", 0.5)


@pytest.mark.parametrize("body, status, code", [
    ({"decision": "shrug"}, 400, "invalid_decision"),
    ({}, 400, "invalid_decision"),
    ({"decision": "new_value"}, 400, "months_required"),
    ({"decision": "new_value", "months": 300}, 400, "invalid_months"),
    ({"decision": "new_value", "months": "ten"}, 400, "invalid_months"),
    ({"decision": "dismiss"}, 400, "reason_required"),
    ({"decision": "dismiss", "reason": "   "}, 400, "reason_required"),
    ({"decision": "mask"}, 400, "mask_required"),
    ({"decision": "accept_label", "label": 999999}, 400, "invalid_label"),
])
def test_a_bad_decision_is_a_clear_error_and_writes_nothing(api_as, reviewer, disagreement, body, status, code):
    response = resolve(api_as(reviewer), disagreement, **body)
    assert response.status_code == status and response.json()["error"] == code, response.json()
    assert response.json()["detail"]
    disagreement.refresh_from_db()
    assert disagreement.state == "open" and disagreement.decision == ""
    assert not AgeLabel.objects.filter(study=disagreement.study, source="review").exists()


def test_a_mask_of_the_wrong_size_is_refused_and_writes_nothing(api_as, reviewer, disagreement):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.dicom_factory import png_bytes

    upload = SimpleUploadedFile("m.png", png_bytes((rectangle((0, 10, 0, 10), shape=(20, 20)) * 255).astype("uint8")), "image/png")
    response = api_as(reviewer).post(f"/api/review-items/{disagreement.pk}/resolve/", {"decision": "mask", "file": upload},
                                     format="multipart")
    assert response.status_code == 422 and response.json()["error"] == "mask_size_mismatch"
    assert not MaskRevision.objects.filter(study=disagreement.study, source="review").exists()


def test_a_label_vs_label_item_needs_to_know_which_label_is_accepted(api_as, reviewer, make_study, label, member, second_labeler, committed):
    study = make_study()
    label(study, 100, member)
    second = label(study, 130, second_labeler)
    [item] = open_items(study)
    response = resolve(api_as(reviewer), item, decision="accept_label")
    assert response.status_code == 400 and response.json()["error"] == "label_required"
    with committed():
        assert resolve(api_as(reviewer), item, decision="accept_label", label=second.pk).status_code == 200
    assert current_label(study).months == 130


def test_a_finished_item_cannot_be_decided_twice(api_as, reviewer, second_reviewer, disagreement, committed):
    with committed():
        resolve(api_as(reviewer), disagreement, decision="accept_label")
    response = resolve(api_as(second_reviewer), disagreement, decision="accept_model")
    assert response.status_code == 409 and response.json()["error"] == "item_finished"
    assert current_label(disagreement.study).months == 100


def test_an_item_closed_by_the_rules_answers_409_to_a_late_decision(api_as, reviewer, member, disagreement, label):
    api_as(reviewer).post(f"/api/review-items/{disagreement.pk}/claim/")
    label(disagreement.study, 149, member)  # the cause disappears while the reviewer looks
    response = resolve(api_as(reviewer), disagreement, decision="accept_model")
    assert response.status_code == 409 and "closed" in response.json()["detail"]
