"""The DICOM objects the platform makes with highdicom: a binary SEG of a hand mask and a TID 1500
bone-age report. Pure functions of a source dataset and values: no database, no storage."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

MANUFACTURER = "boneage-platform"
SOFTWARE_VERSION = "0.1.0"
BONE_AGE = hd.sr.CodedConcept("85151-9", "LN", "XR Bone age")
# No standard code names a prediction interval's ends; a local scheme says exactly what they are, level included
# (the project's one interval level: BA-PI90-LO = the lower limit of the 90% interval).
def interval_concepts(level: float) -> tuple[hd.sr.CodedConcept, hd.sr.CodedConcept]:
    percent = f"{level * 100:g}"
    return (hd.sr.CodedConcept(f"BA-PI{percent}-LO", "99BONEAGE", f"Lower limit of {percent}% prediction interval"),
            hd.sr.CodedConcept(f"BA-PI{percent}-HI", "99BONEAGE", f"Upper limit of {percent}% prediction interval"))
SEG_SERIES_NUMBER, SR_SERIES_NUMBER = 901, 902


@dataclass(frozen=True)
class Algorithm:
    name: str
    version: str


@dataclass(frozen=True)
class Reading:
    """One bone age for the report: a reader's label (reader set) or a model's estimate (algorithm set)."""

    months: float
    reader: str = ""  # a DICOM person name, "Family^Given" or "username^"
    algorithm: Algorithm | None = None
    interval: tuple[float, float] | None = None
    interval_level: float = 0.9
    std_months: float | None = None
    outside_reason: str = ""  # the model's reading is outside its experience (ml.ood): why, in words


# Type 2 attributes highdicom copies from the source: present (maybe empty) in every derived object.
_TYPE2_SOURCE = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
                 "AccessionNumber", "ReferringPhysicianName")


def with_type2(source: Dataset) -> Dataset:
    """A copy of the source where the empty type 2 attributes exist, as highdicom expects (UIDs unchanged)."""
    ds = source.copy()
    for keyword in _TYPE2_SOURCE:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def make_seg(source: Dataset, mask: np.ndarray, *, series_uid: str, sop_uid: str, created: dt.datetime,
             algorithm: Algorithm | None, label: str = "Hand") -> hd.seg.Segmentation:
    """A binary SEG of `mask` (bool, the source's rows × columns) on `source`; automatic when an algorithm made it."""
    if mask.shape != (int(source.Rows), int(source.Columns)):
        raise ValueError(f"the mask is {mask.shape} but the image is {(source.Rows, source.Columns)}")
    source = with_type2(source)
    identification = None
    if algorithm is not None:
        identification = hd.AlgorithmIdentificationSequence(
            name=algorithm.name, version=algorithm.version, family=codes.cid7162.ArtificialIntelligence)
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label=label,
        segmented_property_category=codes.SCT.AnatomicalStructure, segmented_property_type=codes.SCT.Hand,
        algorithm_type=(hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if algorithm is not None
                        else hd.seg.SegmentAlgorithmTypeValues.MANUAL),
        algorithm_identification=identification,
    )
    seg = hd.seg.Segmentation(
        source_images=[source], pixel_array=mask.astype(bool)[np.newaxis],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[description],
        series_instance_uid=series_uid, series_number=SEG_SERIES_NUMBER, sop_instance_uid=sop_uid,
        instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name="Bone age platform",
        software_versions=SOFTWARE_VERSION, device_serial_number="0", series_description="Hand mask",
    )
    _stamp(seg, created)
    if "PatientOrientation" not in seg:  # type 2C on a projection image's SEG (no plane orientation): the film's own
        seg.PatientOrientation = source.get("PatientOrientation", "") or ""
    return seg


@dataclass(frozen=True)
class Verification:
    """Who stands behind the report's value: an expert's or reviewer's reading makes it FINAL and VERIFIED."""

    observer: str  # a DICOM person name, "Family^Given" or "username^"
    organization: str
    when: dt.datetime


HAND = hd.sr.CodedConcept("85562004", "SCT", "Hand")


def mask_outline(mask: np.ndarray, tolerance: float = 1.0) -> np.ndarray | None:
    """The outline of a mask's largest region as a closed polyline in image coordinates: (N, 2) float32 (column,
    row) points, the first repeated last, simplified to within `tolerance` pixels; None for an empty mask.
    mask: (rows, columns) bool, in the source image's own pixel grid."""
    from skimage import measure

    padded = np.pad(np.asarray(mask, bool), 1).astype(np.float32)  # a region touching the border still closes
    contours = measure.find_contours(padded, 0.5)
    if not contours:
        return None
    # find_contours's points lie between pixel centres, in array indices of the padded mask; DICOM image coordinates
    # (PS3.3 C.18.6.1.2) put the first pixel's centre at (0.5, 0.5): index i of the mask is i + 0.5, i.e. padded i + 1
    # is i + 0.5 after taking the padding's 1 off.
    contour = measure.approximate_polygon(max(contours, key=len), tolerance) - 0.5
    rows, columns = mask.shape
    points = np.stack([np.clip(contour[:, 1], 0, columns), np.clip(contour[:, 0], 0, rows)], axis=1)
    if not np.array_equal(points[0], points[-1]):
        points = np.vstack([points, points[:1]])
    return points.astype(np.float32)


def make_bone_age_report(source: Dataset, readings: list[Reading], *, series_uid: str, sop_uid: str,
                         created: dt.datetime, verification: Verification | None = None,
                         outline: np.ndarray | None = None) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 measurement report with one measurement group per reading, coded LOINC 85151-9. PRELIMINARY and
    UNVERIFIED, unless a `verification` names the expert or reviewer whose value it reports: then FINAL, VERIFIED.

    With an `outline` (the hand mask's, `mask_outline`), each group is a planar ROI measurement group (TID 1410): the
    bone age is a measurement of the hand, whose region is a POLYLINE in the film's image coordinates. Viewers draw
    such an SR on the film without any patient-space geometry, which a projection radiograph does not have: stock OHIF
    shows the outline and "XR Bone age: … mo" on the film (tests/e2e/test_ohif_viewer.py), where it cannot show a SEG
    of a projection radiograph."""
    if not readings:
        raise ValueError("a report needs at least one reading")
    source = with_type2(source)
    region = None
    if outline is not None:
        region = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=outline,
                                   source_image=hd.sr.SourceImageForRegion.from_source_image(source))
    groups: list[hd.sr.MeasurementsAndQualitativeEvaluations | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations] = []
    for index, reading in enumerate(readings, start=1):
        who = reading.reader or (reading.algorithm.name if reading.algorithm else "unknown")
        measurement = hd.sr.Measurement(
            name=BONE_AGE, value=round(float(reading.months), 2), unit=codes.UCUM.Month,
            algorithm_id=(hd.sr.AlgorithmIdentification(name=reading.algorithm.name, version=reading.algorithm.version)
                          if reading.algorithm else None),
            properties=_interval_properties(reading),
        )
        tracking = hd.sr.TrackingIdentifier(uid=generate_uid(entropy_srcs=[sop_uid, str(index)]),
                                            identifier=f"Bone age by {who}")
        if region is not None:
            groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking, referenced_region=region, finding_type=HAND, measurements=[measurement]))
            continue
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            measurements=[measurement],
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
        ))
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(readings),
        procedure_reported=BONE_AGE,  # the LOINC/RSNA playbook code names the procedure and its result
        imaging_measurements=groups,
        title=codes.cid7021.ImagingMeasurementReport,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[source], content=report, series_instance_uid=series_uid, series_number=SR_SERIES_NUMBER,
        sop_instance_uid=sop_uid, instance_number=1, manufacturer=MANUFACTURER,
        series_description="Bone age report", is_complete=True, is_final=verification is not None,
        is_verified=verification is not None,
        verifying_observer_name=verification.observer if verification else None,
        verifying_organization=verification.organization if verification else None,
    )
    _stamp(sr, created)
    if verification is not None:  # when the reader decided, so a re-export is identical
        sr.VerifyingObserverSequence[0].VerificationDateTime = verification.when.strftime("%Y%m%d%H%M%S")
    return sr


def _interval_properties(reading: Reading) -> hd.sr.MeasurementProperties | None:
    if reading.interval is None and reading.std_months is None:
        return None
    values = []
    if reading.std_months is not None:
        values.append(hd.sr.NumContentItem(name=codes.SCT.StandardDeviation, value=round(reading.std_months, 2),
                                           unit=codes.UCUM.Month, relationship_type="HAS PROPERTIES"))
    if reading.interval is not None:
        for concept, bound in zip(interval_concepts(reading.interval_level), reading.interval):
            values.append(hd.sr.NumContentItem(name=concept, value=round(bound, 2), unit=codes.UCUM.Month,
                                               relationship_type="HAS PROPERTIES"))
    description = "Model uncertainty"
    if reading.outside_reason:  # the interval is then the project's whole age range (boneage.modeling.intervals)
        description += f". Outside this model's experience: {reading.outside_reason}"
    return hd.sr.MeasurementProperties(measurement_statistical_properties=hd.sr.MeasurementStatisticalProperties(
        values=values, description=description))


def _observation_context(readings: list[Reading]) -> hd.sr.ObservationContext:
    reader = next((r.reader for r in readings if r.reader), "")
    model = next((r.algorithm for r in readings if r.algorithm), None)
    person = device = None
    if reader:
        person = hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=reader))
    if model is not None:
        device = hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=generate_uid(entropy_srcs=[model.name, model.version]), name=f"{model.name} {model.version}", manufacturer_name=MANUFACTURER))
    return hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device)


def _stamp(ds: Dataset, created: dt.datetime) -> None:
    """The object's dates are those of what it records (the mask, the label), so re-exports are identical."""
    ds.ContentDate = ds.SeriesDate = created.strftime("%Y%m%d")
    ds.ContentTime = ds.SeriesTime = created.strftime("%H%M%S")
