"""DICOM PS3.15 Annex E basic application level confidentiality profile, with the Retain Patient
Characteristics option (sex, age, size and weight stay: bone age needs them).

Actions follow Table E.1-1 for the attributes radiographs carry: X remove, Z empty, D dummy,
U replace UIDs consistently (the same input UID and project salt always give the same new UID, so
dedupe and series grouping survive). Private tags are removed; PatientIdentityRemoved=YES.
"""
from __future__ import annotations

import hashlib

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

REMOVE = (
    "InstitutionAddress", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "StationName", "InstitutionalDepartmentName", "PhysiciansOfRecord", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "OperatorsName", "AdmittingDiagnosesDescription",
    "DerivationDescription", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
    "PatientAddress", "PatientMotherBirthName", "MilitaryRank", "BranchOfService", "MedicalRecordLocator",
    "PatientTelephoneNumbers", "AdditionalPatientHistory", "PatientComments", "DeviceSerialNumber",
    "ProtocolName", "RequestingPhysician", "RequestingService", "ImageComments", "PatientBirthTime",
    "InstitutionName", "ReferencedPatientPhotoSequence", "RequestAttributesSequence", "CurrentPatientLocation",
    "PatientInstitutionResidence", "Occupation", "MedicalAlerts", "Allergies", "CountryOfResidence",
    "RegionOfResidence", "EthnicGroup", "PatientReligiousPreference", "ResponsiblePerson",
    "ResponsibleOrganization", "InstanceCreatorUID", "StudyDescription", "SeriesDescription",
    "AcquisitionDateTime", "ContentTime", "AcquisitionTime", "SeriesTime", "OverlayDate", "OverlayTime",
)
EMPTY = (
    "PatientName", "PatientID", "PatientBirthDate", "ReferringPhysicianName", "StudyID",
    "AccessionNumber", "StudyTime", "ContentDate", "AcquisitionDate", "SeriesDate",
)
DUMMY_DATE = "19000101"
REPLACE_UIDS = (
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
    "MediaStorageSOPInstanceUID", "ReferencedSOPInstanceUID", "IrradiationEventUID",
)


def replacement_uid(uid: str, salt: str) -> str:
    """The same UID and salt always give the same new UID: a 2.25 UUID-derived UID from a SHA-256 of both."""
    digest = hashlib.sha256(f"{salt}\0{uid}".encode()).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


def deidentify(ds: Dataset, *, salt: str, age_months: float | None) -> Dataset:
    """De-identify in place and return the dataset. Dates go; the patient's age is kept as PatientAge."""
    ds.remove_private_tags()
    for keyword in REMOVE:
        if keyword in ds:
            delattr(ds, keyword)
    for keyword in EMPTY:
        if keyword in ds:
            setattr(ds, keyword, "")
    if "StudyDate" in ds:
        ds.StudyDate = DUMMY_DATE
    _replace_uids(ds, salt)
    if getattr(ds, "file_meta", None) is not None and "MediaStorageSOPInstanceUID" in ds.file_meta:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if age_months is not None and not ds.get("PatientAge"):
        ds.PatientAge = f"{min(int(age_months), 999):03d}M"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "PS3.15 E.1 basic profile, retain patient chars"
    ds.DeidentificationMethodCodeSequence = Sequence([_code("113100", "Basic Application Confidentiality Profile"),
                                                      _code("113108", "Retain Patient Characteristics Option")])
    ds.PatientName = "ANONYMOUS^" + hashlib.sha256((salt + str(ds.get("StudyInstanceUID", ""))).encode()).hexdigest()[:8]
    return ds


def _replace_uids(ds: Dataset, salt: str) -> None:
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                _replace_uids(item, salt)
        elif element.keyword in REPLACE_UIDS and element.value:
            element.value = replacement_uid(str(element.value), salt)


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return item
