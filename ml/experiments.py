"""The paper's tables on phantoms: `python -m ml.experiments paper-tables [--recipe crops|e2e] [--quick] [--seeds N]`.

Every variant trains on the same `shortcut` phantom split (train half: tag style encodes the age
bracket; test half: tags unrelated to age) and is scored on the tagged test half. Results go to
docs/paper-tables.md next to the paper's numbers, with each variant's paired comparison to `ours` (by seed).

Recipes: `crops` (the CLI default; ml.ablation): a frozen pre-trained segmenter cuts the crops once, each
variant's regressor trains from scratch on them. `e2e`: every variant trains end to end from scratch (`ml.train`),
the recipe of the tables before 2026-12-06.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ml.ablation import cache_split, paired_t, train_variant_on_crops
from ml.crops import CropTrainConfig
from ml.data import read_folder, split_ids
from ml.imaging import load_image
from ml.infer import Predictor
from ml.train import TRAIN_PRESETS, TrainConfig, train
from ml.uncertainty import coverage90

PAPER = {"vgg16": "14.0", "ours": "7.38", "no_att3": "9.07", "no_seg": "~12 (tagged images)", "no_sex": "~10"}
VARIANTS: dict[str, dict] = {
    "ours": {},
    "vgg16": {"regressor": "vgg16", "segmenter": None},
    "no_att3": {"no_attention": ("Att3_2", "Att3_3")},
    "no_seg": {"segmenter": None},
    "no_sex": {"use_sex": False},
}
LABELS = {"ours": "Ours (Mask R-CNN + residual attention + sex)", "vgg16": "VGG-16 baseline (whole image)",
          "no_att3": "Without attention in Att3_2 and Att3_3", "no_seg": "Without the Mask R-CNN subnet",
          "no_sex": "Without the sex input"}


@dataclass
class Plan:
    n: int                 # phantoms in total (half train, half test)
    size: int              # phantom image height
    config: TrainConfig    # e2e: the whole recipe; crops: only its model geometry is not used (see ml.ablation)
    seeds: int
    command: str = "python -m ml.experiments paper-tables"
    mean_mae: float | None = None   # predicting the training half's mean age, on the test half
    recipe: str = "e2e"
    crop_config: CropTrainConfig | None = None   # the crops recipe's regressor training
    phantom_seed: int = 2018
    cache_seconds: float | None = None           # crops: cutting and caching every input once (this process)


# Crops recipe: 1,200 phantoms at 512 px (the starter's source size), seed 12012 (used nowhere else); epochs chosen by
# timing one `ours` run so that 4 variants × 5 seeds fit ≈ 90 min on one thread (docs/benchmarks.md).
CROPS_EPOCHS = 12


def plan(quick: bool, seeds: int | None, n: int | None = None, recipe: str = "e2e", epochs: int | None = None) -> Plan:
    if recipe == "crops":
        crop_config = CropTrainConfig(epochs=epochs or (3 if quick else CROPS_EPOCHS), batch_size=32, lr=2e-3)
        return Plan(n=n or (160 if quick else 1200), size=256 if quick else 512, config=TRAIN_PRESETS["light"],
                    seeds=seeds or (1 if quick else 5), recipe="crops", crop_config=crop_config, phantom_seed=12012)
    if quick:
        # the `starter` preset (96-px canvas, 64-px crops, AdamW lr 1e-3, batch 8), shortened to fit <10 min
        cfg = replace(TRAIN_PRESETS["starter"], epochs=18, teacher_epochs=6, teacher_decay_epochs=4, mc_samples=4,
                      threads=None)
        return Plan(n=n or 160, size=128, config=cfg, seeds=seeds or 1)
    cfg = replace(TRAIN_PRESETS["light"], epochs=20, teacher_epochs=3, teacher_decay_epochs=5)
    return Plan(n=n or 400, size=256, config=cfg, seeds=seeds or 2)


def split_of(folder: Path) -> dict[str, str]:
    with (folder / "meta.csv").open(newline="") as fh:
        return {row["id"]: row["split"] for row in csv.DictReader(fh)}


def run_variant(name: str, p: Plan, data: Path, work: Path, seed: int) -> dict:
    samples = read_folder(data)
    split = split_of(data)
    train_s = [s for s in samples if split[s.id] == "train"]
    test_s = [s for s in samples if split[s.id] == "test"]
    cfg = replace(p.config, seed=seed, model=replace(p.config.model, **VARIANTS[name]))
    t0 = time.perf_counter()
    result = train(train_s, cfg, work / f"{name}-{seed}.pt")
    assert result.checkpoint is not None
    predictor = Predictor(result.checkpoint)
    preds = []
    for i in range(0, len(test_s), 16):
        chunk = test_s[i:i + 16]
        preds += predictor.predict_batch([load_image(s.image_path) for s in chunk], [s.male for s in chunk],
                                         with_attention=False)
    err = np.array([pr.age_months - s.age_months for pr, s in zip(preds, test_s)])
    std = np.array([pr.std_months for pr in preds])
    return {"variant": name, "seed": seed, "test_mae": float(np.abs(err).mean()), "val_mae": result.metrics["val_mae"],
            "coverage90_test": coverage90(err, std), "coverage90_val": result.metrics["coverage90"],
            "mask_iou_val": result.metrics["val_mask_iou"], "epochs": result.metrics["epochs"],
            "seconds": time.perf_counter() - t0, "n_train": len(train_s), "n_test": len(test_s)}


def paired_cell(rows: list[dict], name: str) -> str:
    """`name − ours` over the seeds both ran, with the paired t (positive: the variant is worse than ours)."""
    by_seed = lambda v: {r["seed"]: r["test_mae"] for r in rows if r["variant"] == v}
    c = paired_t(by_seed("ours"), by_seed(name))
    if c.n == 0:
        return "no common seeds"
    if c.n == 1:
        return f"{c.mean_diff:+.2f} (1 seed, no t)"
    p = f"p = {c.p:.3f}" if c.p >= 0.001 else "p < 0.001"
    return f"{c.mean_diff:+.2f} ± {c.sd_diff:.2f}, t = {c.t:+.2f}, {p} (n={c.n} pairs)"


def header(rows: list[dict], p: Plan) -> str:
    runs = (f"{len(rows)} runs, {sum(r['seconds'] for r in rows) / 60:.1f} min of training and scoring in all (runs resumed "
            "from `--rows` count their own time)")
    mean = f" Predicting the training half's mean age scores {p.mean_mae:.2f} months there." if p.mean_mae else ""
    if p.recipe == "e2e":
        m = p.config.model
        return (f"Generated by `{p.command}` on this machine's CPU: {runs}. Phantoms: {p.n} `shortcut` phantoms "
                f"({p.n // 2} train, of which 10% validation; {p.n // 2} tagged test), {p.size} px. Model: attention "
                f"width {m.width}, segmenter `{m.segmenter}` at {m.seg_size} px, work {m.work_size} px, crop "
                f"{m.crop_size} px; {p.config.epochs} epochs max, {p.config.optimizer} lr {p.config.lr} "
                f"({p.config.schedule}), batch {p.config.batch_size}. MAE in months on the tagged test half, mean ± sd "
                f"over seeds.{mean}")
    c = p.crop_config
    assert c is not None
    n_val = next((r["n_val"] for r in rows), None)
    cache = f" ({p.cache_seconds:.0f} s)" if p.cache_seconds else ""
    return (f"Generated by `{p.command}` on this machine's CPU, one thread: {runs}. Recipe `crops`: the **frozen "
            "segmenter of the shipped starter `ml/weights/starter-light.pt`** (trained on phantom seeds 61001/61005, "
            "disjoint from the data here: the analogue of the paper's pre-trained Mask R-CNN) cuts every image's hand "
            f"crop with its own detection, exactly the inference crop, cached once{cache} and shared by every variant "
            "and seed; each variant's regressor then trains **from scratch**, seeded, on the cached crops "
            "(`ml.ablation`, `ml.crops`). `no_seg` and `vgg16` see the whole image resized to the crop size instead, "
            f"`no_sex` drops the sex input, `no_att3` the attention in Att3_2/Att3_3. Phantoms: {p.n} `shortcut` "
            f"phantoms, seed {p.phantom_seed}, {p.size} px ({p.n // 2} train, of which "
            f"{n_val if n_val is not None else '10%'} validation; {p.n // 2} tagged test). Regressor: light preset "
            f"(attention width 1/8), 256-px canvas, 128-px crops; {c.epochs} epochs, AdamW lr {c.lr}, batch "
            f"{c.batch_size}, warm-up + cosine, crop-space augmentation, exact BatchNorm statistics. MAE in months on "
            f"the tagged test half, mean ± sd over seeds; *paired* = variant − ours on the same seed (same "
            f"initialisation seed and batches), positive when the variant is worse, Student t with n − 1 df.{mean}")


def write_tables(rows: list[dict], p: Plan, out: Path) -> None:
    def cell(name: str) -> str:
        maes = [r["test_mae"] for r in rows if r["variant"] == name]
        if not maes:
            return "not run"
        sd = f" ± {np.std(maes, ddof=1):.2f}" if len(maes) > 1 else ""
        return f"{np.mean(maes):.2f}{sd} (n={len(maes)} seed{'s' if len(maes) > 1 else ''})"

    def row(label: str, name: str, paper: str) -> str:
        return f"| {label} | {cell(name)} | {paper} | {'—' if name == 'ours' else paired_cell(rows, name)} |"

    head = ["| Model | MAE phantoms | MAE paper | paired with ours (variant − ours) |", "|---|---|---|---|"]
    lines = [
        "# The paper's tables on phantoms", "", header(rows, p), "",
        "## Table 1 — VGG-16 vs ours", "", *head,
        row(LABELS["vgg16"], "vgg16", "14.0"),
        "| Iglovikov et al. whole hand | not reproduced | 8.08 | |",
        "| Iglovikov et al. ensemble | not reproduced | 7.52 | |",
        row(LABELS["ours"], "ours", "7.38"), "",
        "## Table 2 — attention in Att3_2 and Att3_3", "", *head,
        row(LABELS["no_att3"], "no_att3", "9.07"), row(LABELS["ours"], "ours", "7.38"), "",
        "## Other ablations (paper §3 text)", "", *head,
        row(f"{LABELS['no_seg']} (tagged test images)", "no_seg", "~12"),
        row(LABELS["no_sex"], "no_sex", "~10"), row(LABELS["ours"], "ours", "7.38"), "",
        "## Every run", "",
    ]
    if p.recipe == "e2e":
        lines += ["| variant | seed | test MAE | val MAE | 90% coverage test / val | val mask IoU | epochs | seconds |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['variant']} | {r['seed']} | {r['test_mae']:.2f} | {r['val_mae']:.2f} | "
                  f"{r['coverage90_test']:.2f} / {r['coverage90_val']:.2f} | {r['mask_iou_val']:.2f} | "
                  f"{r['epochs']} | {r['seconds']:.0f} |" for r in rows]
    else:
        lines += ["| variant | seed | test MAE | val MAE | epochs | train images/s | seconds |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['variant']} | {r['seed']} | {r['test_mae']:.2f} | {r['val_mae']:.2f} | {r['epochs']} | "
                  f"{r['images_per_s']:.1f} | {r['seconds']:.0f} |" for r in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = out.read_text() if out.exists() else ""
    notes = existing[existing.index("## Reading"):] if "## Reading" in existing else ""
    out.write_text("\n".join(lines) + "\n\n" + notes)


def paper_tables(quick: bool, seeds: int | None, out: Path, variants: list[str], n: int | None = None,
                 rows_file: Path | None = None, first_seed: int = 0, train_missing: bool = True,
                 recipe: str = "e2e", epochs: int | None = None) -> list[dict]:
    """Train and score every (variant, seed); with `rows_file`, finished runs are kept there and not run again.
    `train_missing=False` writes the tables of the runs in `rows_file` and trains nothing. Rows carry their recipe
    (none: `e2e`, the older rows); only the chosen recipe's rows make the tables, the others stay in the file.
    The Python default stays `e2e` for existing callers; the command line defaults to `crops`."""
    from ml.phantoms import generate_cohort

    p = plan(quick, seeds, n, recipe, epochs)
    kept = json.loads(rows_file.read_text()) if rows_file is not None and rows_file.exists() else []
    others = [r for r in kept if r.get("recipe", "e2e") != recipe]
    rows = [r for r in kept if r.get("recipe", "e2e") == recipe]
    done = {(r["variant"], r["seed"]) for r in rows}
    with tempfile.TemporaryDirectory(prefix="paper-tables-") as tmp:
        data = Path(tmp) / "phantoms"
        generate_cohort(data, p.n, seed=p.phantom_seed, size=p.size, distractors="shortcut", progress=False)
        split, samples = split_of(data), read_folder(data)
        train_mean = np.mean([s.age_months for s in samples if split[s.id] == "train"])
        p.mean_mae = float(np.mean([abs(s.age_months - train_mean) for s in samples if split[s.id] == "test"]))
        p.command = "python -m ml.experiments paper-tables" + (f" --recipe {recipe}" if recipe != "crops" else "") + (
            " --quick" if quick else "") + (f" --seeds {seeds}" if seeds else "") + (f" --n {n}" if n else "") + (
            f" --epochs {epochs}" if epochs else "")
        todo = [(seed, name) for seed in range(first_seed, p.seeds) for name in variants
                if (name, seed) not in done] if train_missing else []
        if recipe == "crops":  # VGG-16 is ~14× slower per image: the other variants' seeds first
            todo.sort(key=lambda job: (job[1] == "vgg16", job[0]))
        run = _crops_runner(p, samples, split) if recipe == "crops" and todo else None
        for seed, name in todo:
            print(f"{name} seed {seed}: training ({len(rows) + 1 - len(done)} of {len(todo)} in this process)",
                  file=sys.stderr, flush=True)
            rows.append(run(name, seed) if run is not None else run_variant(name, p, data, Path(tmp), seed))
            if rows_file is not None:
                rows_file.write_text(json.dumps(others + rows, indent=1))
            print(f"{name} seed {seed}: test MAE {rows[-1]['test_mae']:.2f} months ({rows[-1]['seconds']:.0f}s)",
                  file=sys.stderr, flush=True)
            write_tables(rows, p, out)  # after every run: a stopped run leaves its tables so far
    write_tables(rows, p, out)  # also when nothing was left to train (merged or finished --rows)
    return rows


def _crops_runner(p: Plan, samples: list, split: dict[str, str]):
    """Cache the split's inputs once (crops by the frozen segmenter, whole images); return a (name, seed) → row."""
    train_half = [s for s in samples if split[s.id] == "train"]
    val_ids = split_ids([s.id for s in train_half])
    cached = cache_split([s for s in train_half if s.id not in val_ids], [s for s in train_half if s.id in val_ids],
                         [s for s in samples if split[s.id] == "test"])
    p.cache_seconds = cached.seconds
    print(f"cached {len(samples)} crops and whole images in {cached.seconds:.0f} s", file=sys.stderr, flush=True)
    assert p.crop_config is not None
    config = p.crop_config
    return lambda name, seed: train_variant_on_crops(name, VARIANTS[name], cached, config, seed).row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.experiments", description="Reproduce the paper's tables on phantoms.")
    sub = ap.add_subparsers(dest="command", required=True)
    pt = sub.add_parser("paper-tables", help="train every variant on one shortcut phantom split; write the tables")
    pt.add_argument("--quick", action="store_true", help="small phantoms and model, 1 seed (<10 min on 2 CPU cores)")
    pt.add_argument("--seeds", type=int)
    pt.add_argument("--n", type=int, help="phantoms in all, half train / half test (default: crops 1200, e2e 400; --quick 160)")
    pt.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {sorted(VARIANTS)}")
    pt.add_argument("--out", default="docs/paper-tables.md")
    pt.add_argument("--rows", help="JSON file that keeps finished runs: a rerun skips them (resume after a stop)")
    pt.add_argument("--first-seed", type=int, default=0,
                    help="start at this seed (split one plan's seeds over processes, each with its own --rows; "
                         "merge the files and rerun with --rows to write the tables)")
    pt.add_argument("--tables-only", action="store_true",
                    help="write the tables from the runs in --rows (merged from several processes); train nothing")
    pt.add_argument("--recipe", choices=("crops", "e2e"), default="crops",
                    help="crops (default): a frozen pre-trained segmenter cuts the crops once, regressors train from "
                         "scratch on them (ml.ablation); e2e: every variant end to end from scratch (the old tables)")
    pt.add_argument("--epochs", type=int, help=f"crops recipe: regressor epochs (default {CROPS_EPOCHS}; --quick 3)")
    pt.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: on a shared 2-core box more threads stall in OpenMP)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.tables_only and not args.rows:
        print("error: --tables-only writes the tables of the runs in --rows: give --rows FILE", file=sys.stderr)
        return 2
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        print(f"error: unknown variants {sorted(unknown)}; known: {sorted(VARIANTS)}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows = paper_tables(args.quick, args.seeds, Path(args.out), variants, args.n, Path(args.rows) if args.rows else None,
                        args.first_seed, train_missing=not args.tables_only, recipe=args.recipe, epochs=args.epochs)
    by_variant: dict[str, list[float]] = {}
    for r in rows:
        by_variant.setdefault(r["variant"], []).append(r["test_mae"])
    summary = ", ".join(f"{k} {np.mean(v):.1f} (n={len(v)})" for k, v in by_variant.items())
    print(f"paper tables in {(time.perf_counter() - t0) / 60:.1f} min → {args.out}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
