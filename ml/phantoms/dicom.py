"""Phantoms as CR / DX DICOM objects (Explicit VR Little Endian, 12 bits stored in 16).

Variants alternate deterministically so a cohort exercises the ingest paths: CR and DX SOP classes,
MONOCHROME1 (stored inverted) and MONOCHROME2, several rescale slopes/intercepts (CR only: the DX Image module
fixes the rescale at slope 1, intercept 0). `ml.imaging.load_image` on the file gives the same bright-bone picture
as the PNG (up to 12-bit quantisation).

Both classes pass dicom3tools' `dciodvfy` without errors (tests/boneage/dicomweb/test_dciodvfy.py): the DX files
carry what the DX Image, DX Positioning and Acquisition Context modules require (Presentation LUT Shape INVERSE for
MONOCHROME1 and IDENTITY for MONOCHROME2, the pixel intensity relationship and its sign, lossy compression "00",
an empty positioner type and acquisition context), and both name the anatomic region (SNOMED CT "Hand"); DX also codes the
view (postero-anterior).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

from ml.phantoms.cohort import study_dates
from ml.phantoms.render import Phantom

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
RESCALES = ((1.0, 0.0), (1.0, -1024.0), (0.5, 0.0), (2.0, -2048.0))
HAND = ("85562004", "SCT", "Hand")  # CID 4031 Common Anatomic Region
POSTERO_ANTERIOR = ("399348003", "SCT", "postero-anterior")  # CID 4010 DX View


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def patient_age(age_months: float) -> str:
    """DICOM AS value: months below 2 years ("006M"), whole years after ("010Y")."""
    months = int(np.floor(age_months + 1e-9))
    if months < 24:
        return f"{months:03d}M"
    return f"{months // 12:03d}Y"


def write_dicom(path: Path, ph: Phantom, sid: str, *, seed: int, index: int) -> dict:
    """Write `ph` to `path`; returns the variant chosen (photometric, modality) for meta.csv."""
    meta = ph.meta
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), 0xD1C0])
    modality = "CR" if index % 2 == 0 else "DX"
    photometric = "MONOCHROME1" if (index // 2) % 2 == 0 else "MONOCHROME2"
    slope, intercept = RESCALES[int(rng.integers(len(RESCALES)))]  # drawn for DX too: the same stream either way
    if modality == "DX":
        slope, intercept = 1.0, 0.0
    entropy = [str(seed), str(index), sid]
    study_uid = generate_uid(entropy_srcs=entropy + ["study"])
    series_uid = generate_uid(entropy_srcs=entropy + ["series"])
    sop_uid = generate_uid(entropy_srcs=entropy + ["instance"])
    sop_class = CR_STORAGE if modality == "CR" else DX_PRESENTATION_STORAGE

    unit = ph.image.astype(np.float64) / 65535.0
    raw = np.round(unit * 4095.0).astype(np.uint16)
    stored = (4095 - raw) if photometric == "MONOCHROME1" else raw

    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = UID(sop_class)
    fm.MediaStorageSOPInstanceUID = sop_uid
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    fm.ImplementationVersionName = "BONEAGE_PHANTOM"
    ds = FileDataset(str(path), {}, file_meta=fm, preamble=b"\0" * 128)

    study, birth = study_dates(seed, index, float(meta["boneage"]))
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = f"{int(rng.integers(8, 18)):02d}{int(rng.integers(0, 60)):02d}00"
    ds.AccessionNumber = f"PH{int(seed) % 100000:05d}{index:06d}"
    ds.Modality = modality
    ds.Manufacturer = "Boneage Phantom"
    ds.InstitutionName = "Synthetic"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "XR HAND BONE AGE"
    ds.SeriesDescription = "PA HAND"
    ds.PatientName = f"Phantom^{sid}"
    ds.PatientID = f"PHANTOM-{sid}"
    ds.PatientBirthDate = birth.strftime("%Y%m%d")
    ds.PatientSex = "M" if meta["male"] else "F"
    ds.PatientAge = patient_age(float(meta["boneage"]))
    ds.BodyPartExamined = "HAND"
    ds.ViewPosition = "PA"
    ds.AnatomicRegionSequence = [code_item(*HAND)]
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = sid
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["R", "H"] if meta["hand"] == "left" else ["L", "H"]
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImageLaterality = "L" if meta["hand"] == "left" else "R"
        ds.DetectorType = "SCINTILLATOR"
        ds.ViewCodeSequence = [code_item(*POSTERO_ANTERIOR)]  # DX Positioning only: the CR IOD has no view code
        ds.PositionerType = ""  # type 2: a hand laid on the detector has no positioner to name
        ds.AcquisitionContextSequence = []
        ds.PixelIntensityRelationship = "LIN"
        # +1: lower stored values are less beam (MONOCHROME1 stores bone low); -1: higher ones are (MONOCHROME2)
        ds.PixelIntensityRelationshipSign = 1 if photometric == "MONOCHROME1" else -1
        ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
        ds.LossyImageCompression = "00"
    else:
        ds.Laterality = "L" if meta["hand"] == "left" else "R"
    burned = any(d["kind"] in ("text", "shortcut_tag") for d in meta["distractors"])
    ds.BurnedInAnnotation = "YES" if burned else "NO"
    spacing = f"{meta['pixel_spacing_mm']:.5f}"
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = f"{intercept:g}"
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleType = "US"
    lo, hi = intercept, 4095 * slope + intercept  # window = the full stored range after rescale
    ds.WindowCenter = f"{(lo + hi) / 2:.1f}"
    ds.WindowWidth = f"{hi - lo + 1:.1f}"
    ds.PixelData = stored.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return {"photometric": photometric, "modality": modality}
