"""SEG and SR exports made with highdicom, read back with highdicom, and served as new series of the study."""
from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pytest
from boneage.annotations.actions import do_save_label, do_save_mask
from boneage.modeling.models import ModelVersion, Prediction
from boneage.studies.actions import do_ingest
from boneage.studies.models import Study

from tests.boneage.dicomweb.helpers import datasets, json_datasets
from tests.dicom_factory import dicom_bytes, make_dicom_dataset, png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def dicom_study(project, owner):
    ds = make_dicom_dataset(study_date="20240301")
    result = do_ingest(project, owner, dicom_bytes(ds), "hand.dcm")
    return Study.objects.get(pk=result.study.pk), ds


def hand_mask(shape=(64, 48)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[8:56, 10:40] = True
    return mask


def test_the_seg_export_is_the_expert_mask_referencing_its_source(api_as, dicom_study, member):
    study, source = dicom_study
    canny = do_save_mask(study, hand_mask(), source="canny")
    expert = hand_mask()
    expert[8:20, :] = False
    do_save_mask(study, expert, source="expert", author=member, base_revision_id=canny.pk)
    response = api_as(member).get(f"/api/studies/{study.pk}/export/seg/")
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom"
    seg = hd.seg.segread(io.BytesIO(response.content))
    assert seg.SegmentationType == "BINARY" and seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "MANUAL"
    referenced = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert referenced.ReferencedSOPInstanceUID == source.SOPInstanceUID
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])
    assert np.array_equal(pixels[0, :, :, 0] > 0, expert)


def test_a_canny_mask_exports_as_an_automatic_segment_with_its_algorithm(api_as, dicom_study, member):
    study, _ = dicom_study
    do_save_mask(study, hand_mask(), source="canny")
    seg = hd.seg.segread(io.BytesIO(api_as(member).get(f"/api/studies/{study.pk}/export/seg/").content))
    segment = seg.SegmentSequence[0]
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "Canny automask"


def test_exporting_twice_gives_the_same_object_and_it_is_a_new_series_of_the_study(api_as, dicom_study, member, project):
    study, source = dicom_study
    do_save_mask(study, hand_mask(), source="canny")
    client = api_as(member)
    first = client.get(f"/api/studies/{study.pk}/export/seg/").content
    assert client.get(f"/api/studies/{study.pk}/export/seg/").content == first
    seg_uid = hd.seg.segread(io.BytesIO(first)).SeriesInstanceUID
    series = json_datasets(client.get(f"/dicomweb/projects/{project.pk}/studies/{source.StudyInstanceUID}/series"))
    assert {(s.Modality, s.SeriesInstanceUID) for s in series} == {("CR", source.SeriesInstanceUID), ("SEG", seg_uid)}
    studies = json_datasets(client.get(f"/dicomweb/projects/{project.pk}/studies"))
    assert list(studies[0].ModalitiesInStudy) == ["CR", "SEG"]
    retrieved = datasets(client.get(f"/dicomweb/projects/{project.pk}/studies/{source.StudyInstanceUID}/series/{seg_uid}"))
    assert retrieved[0].Modality == "SEG"


def _prediction(study, project, months=118.0, std=10.0):
    version = ModelVersion.objects.create(project=project, name="v3", checkpoint="x", sha256="0" * 64, status="active")
    return Prediction.objects.create(study=study, model_version=version, age_months=months, std_months=std)


def _bone_ages(sr) -> list[tuple[float, str]]:
    report = sr.ContentSequence
    groups = next(item for item in report if item.ConceptNameCodeSequence[0].CodeValue == "126010").ContentSequence
    found = []
    for group in groups:
        for item in group.ContentSequence:
            code = item.ConceptNameCodeSequence[0]
            if (code.CodeValue, code.CodingSchemeDesignator) == ("85151-9", "LN"):
                found.append((float(item.MeasuredValueSequence[0].NumericValue),
                              item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue))
    return found


def test_the_sr_reports_the_readers_label_and_the_models_estimate_coded_loinc_85151_9(api_as, dicom_study, member, project):
    study, source = dicom_study
    member.first_name, member.last_name = "Max", "Member"
    member.save()
    do_save_label(study, 120.0, author=member)
    _prediction(study, project)
    response = api_as(member).get(f"/api/studies/{study.pk}/export/sr/")
    assert response.status_code == 200
    sr = hd.sr.srread(io.BytesIO(response.content))
    assert sr.Modality == "SR" and sr.StudyInstanceUID == source.StudyInstanceUID
    assert _bone_ages(sr) == [(120.0, "mo"), (118.0, "mo")]
    text = str(sr)
    assert "Member^Max" in text and "v3" in text
    assert "Lower limit of 90% prediction interval" in text and "101.6" in text  # the interval the pages state


def test_an_export_of_a_png_study_is_a_409_with_the_reason(api_as, project, owner):
    result = do_ingest(project, owner, png_bytes(np.full((64, 48), 200, np.uint8)), "hand.png")
    do_save_mask(result.study, hand_mask(), source="canny")
    for kind in ("seg", "sr"):
        response = api_as(owner).get(f"/api/studies/{result.study.pk}/export/{kind}/")
        assert response.status_code == 409 and response.json()["error"] in ("no_dicom_source", "no_bone_age")
    assert api_as(owner).get(f"/api/studies/{result.study.pk}/export/seg/").json()["error"] == "no_dicom_source"


def test_a_film_of_a_sop_class_highdicom_does_not_know_is_a_409_with_the_reason_not_a_500(api_as, project, owner):
    ds = make_dicom_dataset()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.826.0.1.3680043.99.7"  # a valid UID, a private class
    study = do_ingest(project, owner, dicom_bytes(ds), "private.dcm").study
    do_save_mask(study, hand_mask(), source="canny")
    do_save_label(study, 120.0, source="expert", author=owner)
    for kind in ("seg", "sr"):
        response = api_as(owner).get(f"/api/studies/{study.pk}/export/{kind}/")
        assert response.status_code == 409 and response.json()["error"] == "unsupported_source", response.content
        assert "1.2.826.0.1.3680043.99.7" in response.json()["detail"]


def test_a_study_without_mask_or_age_cannot_be_exported_yet(api_as, dicom_study, owner):
    study, _ = dicom_study
    assert api_as(owner).get(f"/api/studies/{study.pk}/export/seg/").json()["error"] == "no_mask"
    assert api_as(owner).get(f"/api/studies/{study.pk}/export/sr/").json()["error"] == "no_bone_age"


def test_an_outsider_cannot_export(api_as, dicom_study, outsider):
    study, _ = dicom_study
    assert api_as(outsider).get(f"/api/studies/{study.pk}/export/seg/").status_code == 404


def test_under_blind_review_a_labeler_gets_no_report_and_qido_does_not_list_it(api_as, dicom_study, owner, member, project):
    study, source = dicom_study
    do_save_label(study, 120.0, author=owner)
    assert api_as(owner).get(f"/api/studies/{study.pk}/export/sr/").status_code == 200
    project.settings = {"review": {"blind": True}}
    project.save(update_fields=["settings"])
    labeler = api_as(member)
    response = labeler.get(f"/api/studies/{study.pk}/export/sr/")
    assert response.status_code == 403 and response.json()["error"] == "blind_review"
    series = json_datasets(labeler.get(f"/dicomweb/projects/{project.pk}/studies/{source.StudyInstanceUID}/series"))
    assert [s.Modality for s in series] == ["CR"]
    assert {s.Modality for s in json_datasets(api_as(owner).get(
        f"/dicomweb/projects/{project.pk}/studies/{source.StudyInstanceUID}/series"))} == {"CR", "SR"}


def test_the_study_page_links_the_dicom_downloads_only_for_dicom_studies(api_as, dicom_study, project, owner):
    study, _ = dicom_study
    page = api_as(owner).get(f"/studies/{study.pk}/").content.decode()
    assert f'href="/api/studies/{study.pk}/export/seg/"' in page and f'href="/api/studies/{study.pk}/export/sr/"' in page
    png = do_ingest(project, owner, png_bytes(np.full((64, 48), 90, np.uint8)), "b.png").study
    assert "export/seg" not in api_as(owner).get(f"/studies/{png.pk}/").content.decode()


def test_the_sr_says_when_the_models_reading_is_outside_its_experience_and_states_the_whole_age_range(
        api_as, dicom_study, member, project):
    study, _ = dicom_study
    prediction = _prediction(study, project)
    Prediction.objects.filter(pk=prediction.pk).update(outside=True, ood_score=3.2, outside_reason=(
        "the film's features are unlike anything this model was trained on (distance 38.1, threshold 11.8)"))
    sr = hd.sr.srread(io.BytesIO(api_as(member).get(f"/api/studies/{study.pk}/export/sr/").content))
    texts: list[str] = []
    sr.walk(lambda _, element: texts.append(str(element.value)) if element.keyword == "TextValue" else None)
    assert ("Model uncertainty. Outside this model's experience: the film's features are unlike anything this model "
            "was trained on (distance 38.1, threshold 11.8)") in texts
    assert "Lower limit of 90% prediction interval" in str(sr) and "'240.0'" in str(sr)  # the whole age range


@pytest.mark.parametrize("source", ["expert", "review"])
def test_the_sr_of_an_experts_or_reviewers_value_is_final_and_verified_by_them(api_as, dicom_study, member, project,
                                                                               source):
    study, _ = dicom_study
    member.first_name, member.last_name = "Max", "Member"
    member.save()
    label = do_save_label(study, 120.0, author=member, source=source)
    _prediction(study, project)
    sr = hd.sr.srread(io.BytesIO(api_as(member).get(f"/api/studies/{study.pk}/export/sr/").content))
    assert (sr.CompletionFlag, sr.PreliminaryFlag, sr.VerificationFlag) == ("COMPLETE", "FINAL", "VERIFIED")
    observer = sr.VerifyingObserverSequence[0]
    assert observer.VerifyingObserverName == "Member^Max" and observer.VerifyingOrganization.startswith(project.name)
    assert observer.VerificationDateTime == label.created_at.strftime("%Y%m%d%H%M%S")


def test_the_sr_of_an_imported_label_or_of_the_model_alone_is_preliminary_and_unverified(api_as, dicom_study, member,
                                                                                          project):
    from boneage.annotations.actions import do_import_label

    study, _ = dicom_study
    _prediction(study, project)
    client = api_as(member)
    model_only = hd.sr.srread(io.BytesIO(client.get(f"/api/studies/{study.pk}/export/sr/").content))
    do_import_label(study, 121.0)
    imported = hd.sr.srread(io.BytesIO(client.get(f"/api/studies/{study.pk}/export/sr/").content))
    for sr in (model_only, imported):
        assert (sr.PreliminaryFlag, sr.VerificationFlag) == ("PRELIMINARY", "UNVERIFIED")
        assert "VerifyingObserverSequence" not in sr
    assert imported.SOPInstanceUID != model_only.SOPInstanceUID


def _regions(sr) -> list[tuple[str, str, np.ndarray]]:
    """(graphic type, referenced SOP instance, points) of every SCOORD in the report's measurement groups."""
    found = []

    def visit(items):
        for item in items:
            if item.ValueType == "SCOORD":
                image = item.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                found.append((item.GraphicType, image, np.asarray(item.GraphicData, np.float32).reshape(-1, 2)))
            if "ContentSequence" in item:
                visit(item.ContentSequence)

    visit(sr.ContentSequence)
    return found


def test_with_a_mask_each_bone_age_of_the_sr_is_measured_on_the_hand_outlined_in_the_films_pixels(api_as, dicom_study,
                                                                                                  member, project):
    study, source = dicom_study
    do_save_mask(study, hand_mask(), source="expert", author=member)  # rows 8-55, columns 10-39
    do_save_label(study, 120.0, author=member)
    _prediction(study, project)
    sr = hd.sr.srread(io.BytesIO(api_as(member).get(f"/api/studies/{study.pk}/export/sr/").content))
    assert _bone_ages(sr) == [(120.0, "mo"), (118.0, "mo")]
    regions = _regions(sr)
    assert [(kind, image) for kind, image, _ in regions] == [("POLYLINE", source.SOPInstanceUID)] * 2
    points = regions[0][2]
    assert np.array_equal(points[0], points[-1])  # closed
    # DICOM image coordinates: the mask's edge pixels' outer sides are x = 10 … 40, y = 8 … 56, within half a pixel
    assert abs(points[:, 0].min() - 10) <= 0.5 and abs(points[:, 0].max() - 40) <= 0.5
    assert abs(points[:, 1].min() - 8) <= 0.5 and abs(points[:, 1].max() - 56) <= 0.5
    groups = next(item for item in sr.ContentSequence if item.ConceptNameCodeSequence[0].CodeValue == "126010")
    findings = [item.ConceptCodeSequence[0].CodeMeaning for group in groups.ContentSequence
                for item in group.ContentSequence if item.ConceptNameCodeSequence[0].CodeValue == "121071"]
    assert findings == ["Hand", "Hand"]


def test_a_new_mask_makes_a_new_sr_whose_outline_follows_it(api_as, dicom_study, member):
    study, _ = dicom_study
    revision = do_save_mask(study, hand_mask(), source="expert", author=member)
    do_save_label(study, 120.0, author=member)
    client = api_as(member)
    first = hd.sr.srread(io.BytesIO(client.get(f"/api/studies/{study.pk}/export/sr/").content))
    smaller = hand_mask()
    smaller[8:30, :] = False
    do_save_mask(study, smaller, source="expert", author=member, base_revision_id=revision.pk)
    second = hd.sr.srread(io.BytesIO(client.get(f"/api/studies/{study.pk}/export/sr/").content))
    assert second.SOPInstanceUID != first.SOPInstanceUID
    assert abs(_regions(second)[0][2][:, 1].min() - 30) <= 0.5


def test_without_a_mask_the_sr_has_no_region(api_as, dicom_study, member):
    study, _ = dicom_study
    do_save_label(study, 120.0, author=member)
    sr = hd.sr.srread(io.BytesIO(api_as(member).get(f"/api/studies/{study.pk}/export/sr/").content))
    assert _bone_ages(sr) == [(120.0, "mo")] and _regions(sr) == []
