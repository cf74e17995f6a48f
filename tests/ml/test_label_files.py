"""Label files in the RSNA layouts (issue 30): training, validation and test files are read by their own column names;
training refuses a row without a bone age, prediction reads it as unknown; every refusal names the file and line."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from ml.data import DataError, read_folder, read_label_rows


def folder_with(tmp_path, text: str, ids=("1", "2")):
    (tmp_path / "images").mkdir()
    for i in ids:
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / f"{i}.png")
    (tmp_path / "labels.csv").write_text(text)
    return tmp_path


@pytest.mark.parametrize("text", [
    "id,boneage,male\n1,120,True\n2,30,False\n",                                    # training
    "Image ID,male,Bone Age (months)\n1,TRUE,120\n2,FALSE,30\n",                     # validation
    "\ufeffCase ID,Sex,Ground truth bone age (months)\n1,M,120\n2,F,30\n",           # test, with a BOM
])
def test_every_rsna_layout_gives_the_same_samples(tmp_path, text):
    samples = read_folder(folder_with(tmp_path, text))
    assert [(s.id, s.age_months, s.male) for s in samples] == [("1", 120.0, True), ("2", 30.0, False)]


def test_training_refuses_a_row_without_a_bone_age_and_prediction_reads_it_as_unknown(tmp_path):
    folder = folder_with(tmp_path, "Case ID,Sex\n1,M\n2,F\n")
    with pytest.raises(DataError, match="none of the known layouts"):
        read_folder(folder)
    samples = read_folder(folder, ages_required=False)
    assert all(math.isnan(s.age_months) for s in samples) and [s.male for s in samples] == [True, False]


def test_a_bad_row_is_refused_with_its_file_and_line(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("id,boneage,male\n1,120,True\n2,,False\n")
    with pytest.raises(DataError, match=r"labels\.csv, line 3: id '2' has no bone age"):
        read_label_rows(path)
    path.write_text("id,boneage,male\n1,120,perhaps\n")
    with pytest.raises(DataError, match=r"line 2: id '1': cannot read sex value 'perhaps'"):
        read_label_rows(path)
    path.write_text("id,boneage,male\n1,nan,True\n")
    with pytest.raises(DataError, match="not a finite number"):
        read_label_rows(path)
