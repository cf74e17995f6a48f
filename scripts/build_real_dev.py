#!/usr/bin/env python3
"""Build the real-film development set (RSNA layout, git-ignored) from two public repositories.

    git clone https://github.com/ajayduraisamy/Bone-detection-using-x-ray-images FILMS_REPO
    git clone https://github.com/DivyanHirasen/BoneAge LABELS_REPO
    python scripts/build_real_dev.py FILMS_REPO LABELS_REPO [--out data/real-dev]

FILMS_REPO/images/<id>.png are 1,200 RSNA Pediatric Bone Age training films at half resolution;
LABELS_REPO/boneage-training-dataset.csv has their official labels (id, boneage, male).
Writes OUT/all, OUT/train and OUT/test, each `labels.csv` + `images/`: the fixed split is the 200
ids with the smallest salted sha1 (TEST_SALT) as the test part, the rest as the train part. The
split depends on each id alone and never changes; never tune on the test part.

The RSNA licence is non-commercial research: nothing this writes may be committed (data/ is in
.gitignore).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import sys
from pathlib import Path

TEST_SALT = "boneage-real-dev-test:"
TEST_SIZE = 200


def test_rank(film_id: str) -> str:
    return hashlib.sha1((TEST_SALT + film_id).encode()).hexdigest()


def split(ids: list[str], test_size: int = TEST_SIZE) -> tuple[list[str], list[str]]:
    """(train ids, test ids), each sorted: the test part is the `test_size` ids of smallest salted hash."""
    test = set(sorted(ids, key=test_rank)[:test_size])
    return sorted(i for i in ids if i not in test), sorted(test)


def read_labels(csv_path: Path) -> dict[str, tuple[str, str]]:
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"id", "boneage", "male"} - set(reader.fieldnames or [])
        if missing:
            raise SystemExit(f"error: {csv_path} lacks the columns {sorted(missing)}")
        return {row["id"].strip(): (row["boneage"].strip(), row["male"].strip()) for row in reader}


def write_part(out: Path, ids: list[str], films: dict[str, Path], labels: dict[str, tuple[str, str]]) -> None:
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    tmp = out / "labels.csv.tmp"
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "boneage", "male"])
        for film_id in ids:
            age, male = labels[film_id]
            writer.writerow([film_id, age, male])
            target = images / films[film_id].name
            if not target.exists():
                try:  # the parts share the films' bytes with `all`
                    os.link(films[film_id], target)
                except OSError:
                    shutil.copyfile(films[film_id], target)
    tmp.replace(out / "labels.csv")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("films_repo", type=Path, help="checkout of ajayduraisamy/Bone-detection-using-x-ray-images")
    ap.add_argument("labels_repo", type=Path, help="checkout of DivyanHirasen/BoneAge")
    ap.add_argument("--out", type=Path, default=Path("data/real-dev"), help="output folder (default data/real-dev)")
    args = ap.parse_args(argv)
    films = {p.stem: p for p in (args.films_repo / "images").glob("*.png")}
    labels_csv = args.labels_repo / "boneage-training-dataset.csv"
    if not films:
        print(f"error: no PNG films in {args.films_repo / 'images'}", file=sys.stderr)
        return 2
    if not labels_csv.is_file():
        print(f"error: {labels_csv} not found", file=sys.stderr)
        return 2
    labels = read_labels(labels_csv)
    unlabelled = sorted(set(films) - set(labels))
    if unlabelled:
        print(f"error: {len(unlabelled)} films have no official label, e.g. {unlabelled[:3]}", file=sys.stderr)
        return 2
    ids = sorted(films)
    train, test = split(ids)
    write_part(args.out / "all", ids, films, labels)
    copied = {i: args.out / "all" / "images" / films[i].name for i in ids}
    for name, part in (("train", train), ("test", test)):
        write_part(args.out / name, part, copied, labels)
    print(f"wrote {len(ids)} films to {args.out}: train {len(train)}, test {len(test)} (fixed split, salt {TEST_SALT!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
