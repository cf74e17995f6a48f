"""The paper-tables command: resumed and merged runs make one set of tables, with seed counts and their time."""
from __future__ import annotations

import json

from ml.experiments import paper_tables


def run_row(variant: str, seed: int, mae: float, seconds: float) -> dict:
    return {"variant": variant, "seed": seed, "test_mae": mae, "val_mae": mae, "coverage90_test": 0.9,
            "coverage90_val": 0.9, "mask_iou_val": 0.9, "epochs": 20, "seconds": seconds, "n_train": 4, "n_test": 4}


def test_runs_already_in_the_rows_file_are_not_trained_again_yet_their_tables_are_written(tmp_path):
    rows_file, out = tmp_path / "rows.json", tmp_path / "tables.md"
    finished = [run_row("ours", 0, 16.0, 600), run_row("ours", 1, 18.0, 600),
                run_row("no_seg", 0, 48.0, 120), run_row("no_seg", 1, 50.0, 480)]
    rows_file.write_text(json.dumps(finished))
    out.write_text("# old tables\n\n## Reading (by hand)\n\nkept as written.\n")

    rows = paper_tables(True, 2, out, ["ours", "no_seg"], n=8, rows_file=rows_file)

    assert rows == finished
    tables = out.read_text()
    assert "| 17.00 ± 1.41 (n=2 seeds) | 7.38 |" in tables
    assert "| 49.00 ± 1.41 (n=2 seeds) | ~12 |" in tables
    assert "| VGG-16 baseline (whole image) | not run | 14.0 |" in tables
    assert "4 runs, 30.0 min of training and scoring in all" in tables
    assert tables.endswith("## Reading (by hand)\n\nkept as written.\n")
    assert "# old tables" not in tables


def test_a_process_given_a_first_seed_leaves_the_earlier_seeds_to_another(tmp_path):
    rows_file = tmp_path / "rows.json"
    later_seed_only = [run_row("ours", 1, 20.0, 60)]
    rows_file.write_text(json.dumps(later_seed_only))

    rows = paper_tables(True, 2, tmp_path / "tables.md", ["ours"], n=8, rows_file=rows_file, first_seed=1)

    assert rows == later_seed_only  # seed 0 would have been trained and added


def test_tables_only_writes_what_the_rows_hold_and_trains_nothing_missing(tmp_path):
    rows_file, out = tmp_path / "rows.json", tmp_path / "tables.md"
    merged = [run_row("ours", 0, 16.0, 60), run_row("no_seg", 3, 48.0, 60)]
    rows_file.write_text(json.dumps(merged))

    rows = paper_tables(True, 5, out, ["ours", "no_seg", "vgg16"], n=8, rows_file=rows_file, train_missing=False)

    assert rows == merged
    assert "| VGG-16 baseline (whole image) | not run | 14.0 |" in out.read_text()


def test_tables_only_without_a_rows_file_is_refused_with_a_clear_error(capsys):
    from ml.experiments import main

    assert main(["paper-tables", "--tables-only"]) == 2
    assert "give --rows FILE" in capsys.readouterr().err
