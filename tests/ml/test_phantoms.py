"""ml.phantoms: synthetic hand radiographs whose ground truth is consistent and whose skeleton carries age."""
from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.phantoms import CohortResult, Phantom, generate_cohort, render
from ml.phantoms.anatomy import CARPAL_ONSET
from ml.phantoms.dicom import patient_age
from ml.phantoms.render import AGE_BRACKETS, SHORTCUT_STYLES

REPO = Path(__file__).resolve().parents[2]
AGES = list(range(0, 229, 12))


def stage_sum(meta: dict) -> float:
    return float(sum(meta["epiphysis_stages"].values()))


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def run_cli(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, CohortResult]:
    out = tmp_path_factory.mktemp("cohort")
    return out, generate_cohort(out, 6, seed=11, size=192, distractors="random", progress=False)


# --- determinism ------------------------------------------------------------------------------------

def test_the_same_seed_gives_identical_images_masks_and_meta():
    a = render(100, True, seed=5, size=256, distractors="random")
    b = render(100, True, seed=5, size=256, distractors="random")
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.mask, b.mask)
    assert json.dumps(a.meta, sort_keys=True) == json.dumps(b.meta, sort_keys=True)


def test_different_seeds_give_different_images():
    a = render(100, True, seed=5, size=256)
    b = render(100, True, seed=6, size=256)
    assert a.image.shape != b.image.shape or not np.array_equal(a.image, b.image)


def test_a_cohort_written_twice_with_the_same_seed_is_byte_identical(tmp_path):
    for name in ("a", "b"):
        generate_cohort(tmp_path / name, 3, seed=3, size=128, distractors="shortcut", progress=False)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 3 * 2 + 2
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


# --- what render returns ------------------------------------------------------------------------------

def test_render_returns_a_uint16_bright_bone_image_a_binary_mask_and_json_meta():
    ph = render(150, False, seed=1, size=320)
    assert isinstance(ph, Phantom)
    assert ph.image.dtype == np.uint16 and ph.image.ndim == 2
    assert max(ph.image.shape) == 320
    assert ph.mask.dtype == np.uint8 and ph.mask.shape == ph.image.shape
    assert set(np.unique(ph.mask)) == {0, 255}
    json.dumps(ph.meta)  # serialisable
    hand = ph.mask > 0
    assert ph.image[hand].mean() > ph.image[~hand].mean() + 0.1 * 65535  # tissue brighter than air


def test_the_mask_covers_a_plausible_share_of_the_image_and_touches_the_bottom_edge():
    ph = render(120, True, seed=2, size=256)
    share = (ph.mask > 0).mean()
    assert 0.12 < share < 0.65
    assert ph.mask[-1].any()  # the forearm leaves the film


def test_native_size_gives_a_long_side_between_1600_and_2600_px():
    ph = render(60, True, seed=9, size=None)
    assert 1600 <= max(ph.image.shape) <= 2600


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        render(10, True, 0, distractors="lots")
    with pytest.raises(ValueError):
        render(10, True, 0, size=10)


# --- the skeleton carries age ------------------------------------------------------------------------

@pytest.mark.parametrize("male", [True, False])
def test_carpals_epiphyses_and_bone_lengths_never_regress_with_age(male):
    metas = [render(age, male, seed=21, size=64).meta for age in AGES]
    carpals = [m["n_carpals"] for m in metas]
    stages = [stage_sum(m) for m in metas]
    length = [m["bone_lengths_mm"]["MC3"] for m in metas]
    assert carpals == sorted(carpals) and carpals[0] <= 1 and carpals[-1] == 8
    assert all(b >= a for a, b in itertools.pairwise(stages))
    assert all(b >= a for a, b in itertools.pairwise(length))  # adults stop growing
    assert all(b > a for a, b in itertools.pairwise(length[:15]))  # children grow every year
    assert stages[-1] == pytest.approx(5.0 * len(metas[-1]["epiphysis_stages"]))  # all fused at 19 y


def test_carpals_ossify_in_the_documented_order():
    first_seen = {}
    for age in range(0, 229, 3):
        for name in render(age, True, seed=4, size=64).meta["carpals_ossified"]:
            first_seen.setdefault(name, age)
    order = sorted(first_seen, key=first_seen.get)
    assert set(order) == set(CARPAL_ONSET)
    assert order[:2] == ["capitate", "hamate"] or order[:2] == ["hamate", "capitate"]
    assert order[-1] == "pisiform"
    assert first_seen["triquetrum"] < first_seen["scaphoid"]


def test_infants_have_no_epiphyses_and_adolescents_are_fused_girls_first():
    assert stage_sum(render(6, True, seed=8, size=64).meta) < 21.0  # every stage < 1: none visible
    boy, girl = render(186, True, seed=8, size=64).meta, render(186, False, seed=8, size=64).meta
    assert girl["epiphysis_stages"]["DP3"] == 5.0
    assert boy["epiphysis_stages"]["radius"] < 5.0  # distal radius fuses last


def test_girls_are_skeletally_ahead_of_boys_of_the_same_age():
    for age in (30, 60, 120, 160):
        boy, girl = render(age, True, seed=13, size=64).meta, render(age, False, seed=13, size=64).meta
        assert stage_sum(girl) > stage_sum(boy), age
        assert girl["n_carpals"] >= boy["n_carpals"], age


def test_the_capitate_shows_up_in_the_pixels_once_it_has_ossified():
    def contrast(age: float) -> float:
        ph = render(age, True, seed=30, size=384)
        x, y = (round(v) for v in ph.meta["carpal_centres_px"]["capitate"])
        img = ph.image.astype(np.float64) / 65535
        centre = img[y - 2:y + 3, x - 2:x + 3].mean()
        ring = np.median(img[y - 14:y + 15, x - 14:x + 15][ph.mask[y - 14:y + 15, x - 14:x + 15] > 0])
        return centre - ring

    assert contrast(1) < 0.03  # cartilage only: soft-tissue density
    assert contrast(60) > 0.05  # a bone now sits there


# --- distractors ---------------------------------------------------------------------------------------

def test_random_distractors_are_recorded_with_boxes_inside_the_image():
    kinds = set()
    for seed in range(12):
        ph = render(100, seed % 2 == 0, seed=seed, size=192, distractors="random")
        h, w = ph.image.shape
        for d in ph.meta["distractors"]:
            x0, y0, x1, y1 = d["box"]
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, d
            kinds.add(d["kind"])
    assert {"lead_marker", "text"} <= kinds


def test_no_distractors_means_none_are_drawn():
    assert render(100, True, seed=3, size=128, distractors="none").meta["distractors"] == []


def test_shortcut_tags_follow_the_age_bracket_in_the_train_half_only():
    mismatches = 0
    for seed, age in enumerate([10, 70, 130, 200] * 3):
        bracket = int(np.searchsorted(AGE_BRACKETS, age, side="right") - 1)
        train = render(age, True, seed=seed, size=192, distractors="shortcut", split="train").meta
        test = render(age, True, seed=seed, size=192, distractors="shortcut", split="test").meta
        assert train["shortcut_style"] == SHORTCUT_STYLES[bracket]
        mismatches += test["shortcut_style"] != SHORTCUT_STYLES[bracket]
    assert mismatches >= 3


# --- cohort files ------------------------------------------------------------------------------------

def test_labels_csv_has_exactly_the_rsna_columns(cohort):
    out, result = cohort
    rows = list(csv.reader((out / "labels.csv").read_text().splitlines()))
    assert rows[0] == ["id", "boneage", "male"]
    assert len(rows) == 1 + result.n
    for sid, age, male in rows[1:]:
        assert sid.isdigit() and int(sid) >= 1000
        assert 0 <= int(age) <= 228
        assert male in ("True", "False")
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])


def test_every_label_has_a_16_bit_image_and_a_mask_of_the_same_size(cohort):
    out, _ = cohort
    for row in read_rows(out / "labels.csv"):
        with Image.open(out / "images" / f"{row['id']}.png") as im, Image.open(out / "masks" / f"{row['id']}.png") as mk:
            assert im.mode.startswith("I;16") and mk.mode == "L"
            assert im.size == mk.size
            assert set(np.unique(np.asarray(mk))) <= {0, 255}


def test_meta_csv_agrees_with_labels_and_the_rendered_ground_truth(cohort):
    out, _ = cohort
    labels = {r["id"]: r for r in read_rows(out / "labels.csv")}
    for m in read_rows(out / "meta.csv"):
        assert labels[m["id"]]["boneage"] == m["boneage"] and labels[m["id"]]["male"] == m["male"]
        assert int(m["n_carpals"]) == len([c for c in m["carpals_ossified"].split(";") if c])
        assert len(json.loads(m["epiphysis_stages"])) == 21
        assert m["split"] in ("train", "test")
        with Image.open(out / "images" / f"{m['id']}.png") as im:
            assert im.size == (int(m["width"]), int(m["height"]))
        json.loads(m["distractors"])


# --- DICOM ----------------------------------------------------------------------------------------------

def test_dicom_files_read_back_as_the_same_bright_bone_picture(tmp_path):
    import pydicom

    from ml.imaging import load_image

    generate_cohort(tmp_path / "png", 4, seed=17, size=160, progress=False)
    generate_cohort(tmp_path / "dcm", 4, seed=17, size=160, fmt="dicom", progress=False)
    seen = set()
    for sid in ("1000", "1001", "1002", "1003"):
        ds = pydicom.dcmread(tmp_path / "dcm" / "images" / f"{sid}.dcm")  # no force: preamble + file meta
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 12, 11)
        assert ds.Modality in ("CR", "DX") and ds.PatientSex in ("M", "F")
        assert int(ds.pixel_array.max()) <= 4095
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
            assert pydicom.uid.UID(uid).is_valid
        seen.add(ds.PhotometricInterpretation)
        png = load_image(tmp_path / "png" / "images" / f"{sid}.png")
        dcm = load_image(tmp_path / "dcm" / "images" / f"{sid}.dcm")
        assert np.abs(png - dcm).max() < 2.0 / 4095
    assert seen == {"MONOCHROME1", "MONOCHROME2"}


def test_dicom_ages_and_dates_agree_with_the_label(tmp_path):
    import datetime as dt

    import pydicom

    generate_cohort(tmp_path, 3, seed=2, size=96, fmt="dicom", progress=False)
    for row in read_rows(tmp_path / "labels.csv"):
        ds = pydicom.dcmread(tmp_path / "images" / f"{row['id']}.dcm")
        assert ds.PatientAge == patient_age(float(row["boneage"]))
        assert ds.PatientSex == ("M" if row["male"] == "True" else "F")
        study = dt.datetime.strptime(ds.StudyDate, "%Y%m%d")
        birth = dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d")
        assert abs((study - birth).days / 30.4375 - float(row["boneage"])) < 1.0


def test_patient_age_uses_months_below_two_years_and_years_after():
    assert patient_age(6) == "006M"
    assert patient_age(23.9) == "023M"
    assert patient_age(24) == "002Y"
    assert patient_age(131) == "010Y"


# --- CLI ------------------------------------------------------------------------------------------------

def test_the_cli_writes_a_cohort_and_prints_a_one_line_summary(tmp_path):
    r = run_cli("ml.phantoms", "--n", "2", "--seed", "1", "--out", str(tmp_path / "c"), "--size", "96",
                "--distractors", "random")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 1 and "wrote 2 phantoms" in r.stdout
    assert "100%" in r.stderr  # the tqdm progress bar
    assert sorted(p.name for p in (tmp_path / "c" / "images").iterdir()) == ["1000.png", "1001.png"]


def test_the_cli_help_works():
    r = run_cli("ml.phantoms", "--help")
    assert r.returncode == 0 and "--distractors" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--n", "2", "--size", "huge"], "--size"),
    (["--n", "0"], "at least 1"),
    (["--n", "2", "--format", "jpeg"], "--format"),
])
def test_the_cli_rejects_bad_arguments_with_a_clear_error(tmp_path, args, message):
    r = run_cli("ml.phantoms", *args, "--out", str(tmp_path / "x"))
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr


def test_the_cli_reports_an_unwritable_output_folder_without_a_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = run_cli("ml.phantoms", "--n", "1", "--out", str(blocker), "--no-progress")
    assert r.returncode != 0
    assert r.stderr.startswith("error:") and "Traceback" not in r.stderr
