"""Training: the loss falls, 16 phantoms can be memorised, callbacks/cancellation, checkpoints, the CLI."""
from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ml.data import HandDataset, collate, read_folder, split_ids, targets_from_batch
from ml.infer import Predictor
from ml.models import ModelConfig, build_model
from ml.phantoms import generate_cohort
from ml.train import TRAIN_PRESETS, TrainCallback, TrainConfig, recalibrate_batchnorm, train

ROOT = Path(__file__).resolve().parents[2]
TINY = ModelConfig(width=0.125, seg_size=96, work_size=96, crop_size=64, dropout=0.0)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms")
    generate_cohort(out, 24, seed=3, size=128, distractors="random", progress=False)
    return out


def fixed_batch(folder: Path, n: int) -> dict[str, torch.Tensor]:
    ds = HandDataset(read_folder(folder)[:n], TINY.work_size, augment=False)
    return collate([ds[i] for i in range(n)])


def total_loss(model, batch, teacher: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    out = model(batch["image"], batch["sex"], targets_from_batch(batch), torch.full((len(batch["age"]),), teacher))
    l_reg = (out.age - batch["age"]).abs().mean() / 12.0
    return l_reg + sum(out.losses.values()), out.age


def test_the_paper_loss_decreases_on_a_tiny_set_with_nesterov_sgd(phantoms):
    torch.manual_seed(0)
    batch = fixed_batch(phantoms, 8)
    model = build_model(TINY).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    losses = []
    for _ in range(12):
        loss, _ = total_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


def test_the_model_overfits_16_phantoms_to_under_3_months_within_150_steps(phantoms):
    """A step budget, not a wall-clock one: seeded on one thread the run is the same on a quiet or a loaded box (it
    reached 2.2 months at step 40 in 103 s on the loaded 2-core box, where the old 60-s budget failed it)."""
    torch.manual_seed(0)
    batch = fixed_batch(phantoms, 16)
    model = build_model(TINY)
    head = model.regressor.head
    head.age_mean.fill_(float(batch["age"].mean()))
    head.age_std.fill_(float(batch["age"].std()))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)  # capacity check: Adam gets there in fewer steps
    steps, mae = 0, float("inf")
    while steps < 150 and mae >= 3.0:
        steps += 5
        for _ in range(5):
            model.train()
            loss, _ = total_loss(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        recalibrate_batchnorm(model, [batch], torch.device("cpu"))
        model.eval()
        with torch.no_grad():
            _, ages = total_loss(model, batch)
        mae = float((ages - batch["age"]).abs().mean())
    assert mae < 3.0, f"MAE {mae:.2f} months after {steps} steps"


class Recorder(TrainCallback):
    def __init__(self, stop_after: int | None = None) -> None:
        self.steps: list[tuple[int, float]] = []
        self.epochs: list[dict] = []
        self.stop_after = stop_after

    def on_step(self, step, loss):
        self.steps.append((step, loss))

    def on_epoch_end(self, epoch, metrics):
        self.epochs.append(metrics)

    def should_stop(self):
        return self.stop_after is not None and len(self.steps) >= self.stop_after


def test_train_reports_progress_writes_a_checkpoint_and_never_touches_the_network(phantoms, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    samples = read_folder(phantoms)
    config = TrainConfig(model=TINY, epochs=2, batch_size=8, teacher_epochs=1, teacher_decay_epochs=1, mc_samples=4)
    rec = Recorder()
    result = train(samples, config, tmp_path / "m.pt", callback=rec)
    assert not result.cancelled and result.checkpoint == tmp_path / "m.pt"
    assert hashlib.sha256(result.checkpoint.read_bytes()).hexdigest() == result.sha256
    assert len(rec.epochs) == 2 == len(result.curve) and {"loss", "val_mae"} <= set(rec.epochs[0])
    assert [s for s, _ in rec.steps] == list(range(1, len(rec.steps) + 1))
    m = result.metrics
    assert {"val_mae", "val_mae_by_sex", "val_mae_by_age_band", "coverage90", "epochs", "seconds",
            "data_wait_fraction", "train_images_per_s"} <= set(m)
    assert m["n_train"] + m["n_val"] == 24 and set(m["val_ids"]) == split_ids([s.id for s in samples])
    assert Predictor(result.checkpoint, device="cpu").predict(torch.rand(100, 80).numpy(), True).std_months > 0


def test_cancelling_stops_within_one_step_and_writes_nothing(phantoms, tmp_path):
    rec = Recorder(stop_after=2)
    config = TrainConfig(model=TINY, epochs=3, batch_size=4)
    result = train(read_folder(phantoms), config, tmp_path / "m.pt", callback=rec)
    assert result.cancelled and result.checkpoint is None and len(rec.steps) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_fine_tune_that_only_gets_worse_returns_the_model_it_started_from(phantoms, tmp_path):
    config = TrainConfig(model=TINY, epochs=1, batch_size=8, teacher_epochs=0, teacher_decay_epochs=0, mc_samples=0)
    start = train(read_folder(phantoms), config, tmp_path / "start.pt")
    wrecking = replace(config, lr=5.0, weight_decay=0.0, grad_clip=1e6, warmup_fraction=0.0, precise_bn_batches=0)
    result = train(read_folder(phantoms), wrecking, tmp_path / "tuned.pt", init=start.checkpoint)
    m = result.metrics
    assert m["init_val_mae"] is not None and m["best_epoch"] == 0, m
    assert m["val_mae"] == pytest.approx(m["init_val_mae"], abs=1e-4)


def test_a_fine_tune_told_that_the_init_does_not_compete_ships_its_own_last_epoch(phantoms, tmp_path):
    """Ensemble members (ml.uncertainty_eval --members) must be fine-tuned weights, not copies of the init: the init
    is still scored (init_val_mae) but is no candidate, whatever it scores."""
    config = TrainConfig(model=TINY, epochs=1, batch_size=8, teacher_epochs=0, teacher_decay_epochs=0, mc_samples=0)
    start = train(read_folder(phantoms), config, tmp_path / "start.pt")
    member = replace(config, epochs=2, lr=1e-3, selection="last_epoch", init_competes=False)
    result = train(read_folder(phantoms), member, tmp_path / "member.pt", init=start.checkpoint)
    m = result.metrics
    assert m["init_val_mae"] is not None and m["best_epoch"] == 2, m
    assert set(m["final_candidates"]) == {"selected_epoch", "shipped"} and m["final_candidates"]["shipped"] == "selected_epoch"
    assert m["val_mae"] == pytest.approx(m["final_candidates"]["selected_epoch"])
    weights = lambda path: torch.load(path, weights_only=True)["state_dict"]
    before, after = weights(start.checkpoint), weights(result.checkpoint)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_the_split_is_stable_by_id_whatever_else_is_in_the_set():
    ids = [f"study-{i}" for i in range(400)]
    val = split_ids(ids)
    assert 20 <= len(val) <= 60
    assert split_ids(ids + [f"new-{i}" for i in range(100)]) & set(ids) == val


def test_the_train_cli_has_help_and_reports_bad_input_in_one_line(tmp_path):
    assert subprocess.run([sys.executable, "-m", "ml.train", "--help"], check=False, capture_output=True, cwd=ROOT).returncode == 0
    bad = subprocess.run([sys.executable, "-m", "ml.train", "--data", str(tmp_path), "--out", str(tmp_path / "m.pt")],
                         check=False, capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0 and "no labels.csv" in bad.stderr
    assert not (tmp_path / "m.pt").exists()


def test_train_config_round_trips_and_rejects_unknown_keys():
    config = replace(TrainConfig(), epochs=3)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown train config keys"):
        TrainConfig.from_dict({"epochz": 3})


def test_the_starter_preset_round_trips_as_the_platform_passes_it():
    """The platform builds its config from a dict of TrainConfig fields plus a `model` dict of ModelConfig fields."""
    starter = TRAIN_PRESETS["starter"]
    as_platform = {k: v for k, v in starter.to_dict().items() if k != "model"} | {"model": starter.model.to_dict()}
    assert TrainConfig.from_dict(as_platform) == starter
    assert TrainConfig.from_dict({**as_platform, "model": "starter"}) == starter
    assert (starter.model.work_size, starter.model.crop_size, starter.batch_size, starter.lr) == (96, 64, 8, 1e-3)


def test_skipping_the_segmenter_on_some_steps_still_trains(phantoms, tmp_path):
    config = TrainConfig(model=TINY, epochs=1, batch_size=4, seg_every=2, mc_samples=0)
    result = train(read_folder(phantoms), config, tmp_path / "m.pt")
    assert result.checkpoint is not None and result.metrics["val_mae"] == result.metrics["val_mae"]


def test_the_shipped_starter_weights_read_bone_age_on_phantoms_they_never_saw(tmp_path):
    """ml/weights/starter-light.pt (what every fine-tune starts from) on 48 new phantoms like the demo cohort's: within
    issue 12's 0.2× the mean predictor, with a hand mask that fits. Fixed weights and data: the number is fixed
    (6.97 months vs 63.2 for the mean, 2026-12-06); the margin only absorbs float differences between machines."""
    from ml.checkpoint import SHIPPED_STARTER
    from ml.imaging import load_image

    folder = tmp_path / "unseen"
    generate_cohort(folder, 48, seed=777, size=512, distractors="random", progress=False)
    samples = read_folder(folder)
    predictor = Predictor(SHIPPED_STARTER, device="cpu")
    preds = predictor.predict_batch([load_image(s.image_path) for s in samples], [s.male for s in samples],
                                    with_attention=False, mc_samples=0)
    ages = torch.tensor([s.age_months for s in samples])
    mae = float(torch.tensor([abs(p.age_months - s.age_months) for p, s in zip(preds, samples)]).mean())
    mean_mae = float((ages - 114.0).abs().mean())  # 114 months: the middle of the phantoms' uniform 0-228 ages
    assert mae < 9.0 and mae < 0.2 * mean_mae, f"starter MAE {mae:.1f} vs mean predictor {mean_mae:.1f}"
    assert min(p.score for p in preds) > 0.5, "the segmenter found no hand on some image"


def test_a_fine_tune_ships_the_best_of_its_start_and_its_candidates_scored_on_the_same_data(phantoms, tmp_path):
    """By construction, whatever the seed or the BatchNorm batches drawn: the shipped validation MAE is the minimum of
    the init model's, the selected epoch's and its recalibrated statistics', all scored by one `evaluate`."""
    config = TrainConfig(model=TINY, epochs=1, batch_size=8, teacher_epochs=0, teacher_decay_epochs=0, mc_samples=0)
    start = train(read_folder(phantoms), config, tmp_path / "start.pt")
    for seed in (1, 2):
        tuned = replace(config, epochs=2, lr=1e-3, seed=seed, precise_bn_batches=1, final_bn_batches=2)
        m = train(read_folder(phantoms), tuned, tmp_path / f"tuned-{seed}.pt", init=start.checkpoint).metrics
        candidates = {k: v for k, v in m["final_candidates"].items() if k != "shipped"}
        assert set(candidates) <= {"init", "selected_epoch", "recalibrated_bn"} and "init" in candidates
        assert m["val_mae"] == pytest.approx(candidates[m["final_candidates"]["shipped"]], abs=1e-6)
        assert m["val_mae"] == pytest.approx(min(candidates.values()), abs=1e-6)
        assert m["val_mae"] <= m["init_val_mae"] + 1e-6


def test_the_loss_is_read_back_to_the_host_only_every_kth_step(phantoms, tmp_path):
    rec = Recorder()
    config = TrainConfig(model=TINY, epochs=1, batch_size=4, mc_samples=0, loss_sync_every=2)
    train(read_folder(phantoms), config, tmp_path / "m.pt", callback=rec)
    assert rec.steps and all(step % 2 == 0 for step, _ in rec.steps)


def test_the_cli_resolves_starter_to_the_shipped_weights():
    from ml.checkpoint import SHIPPED_STARTER, resolve_checkpoint

    assert resolve_checkpoint("starter") == SHIPPED_STARTER and SHIPPED_STARTER.is_file()
    assert resolve_checkpoint("other.pt") == Path("other.pt")


def test_the_gpu_check_runs_on_the_cpu_with_a_tiny_step_count():
    from ml.gpu_check import check

    result = check("light", steps=1, warmup=0, batch=2, infer_batches=1)
    assert result["device"] == "cpu" and result["amp"] == "off" and result["train_images_per_s"] > 0
    assert result["projected_epoch_minutes"] == pytest.approx(12611 / result["train_images_per_s"] / 60, rel=0.01)


def test_the_gpu_check_reads_a_film_folder_through_the_trainers_dataloader(phantoms):
    from ml.gpu_check import check

    result = check("light", steps=2, warmup=0, batch=2, infer_batches=1, data=str(phantoms), workers=2)
    assert result["data"] == str(phantoms) and result["workers"] == 2 and result["train_images_per_s"] > 0
    assert 0 <= result["data_wait_share"] <= 1 and result["first_step_seconds"] > 0 and result["peak_memory_mib"] > 0


def test_the_gpu_check_makes_native_size_phantoms_or_says_in_one_line_what_is_wrong(tmp_path):
    run = subprocess.run([sys.executable, "-m", "ml.gpu_check", "--preset", "light", "--steps", "1", "--warmup", "0",
                          "--batch", "2", "--infer-batches", "1", "--phantoms", "2", "--workers", "0"],
                         cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "waiting for it" in run.stderr and '"data": "/' in run.stdout
    bad = subprocess.run([sys.executable, "-m", "ml.gpu_check", "--preset", "light", "--data", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_a_fine_tune_keeps_the_init_batchnorm_statistics_and_ships_the_last_epoch_or_the_init(phantoms, tmp_path):
    """Fine-tuning from `init` freezes BatchNorm statistics (training and evaluation normalise alike: no re-estimate,
    no recalibrated candidate) and `last_epoch` ships the end of the schedule unless the init scores better."""
    config = TrainConfig(model=TINY, epochs=1, batch_size=8, teacher_epochs=0, teacher_decay_epochs=0, mc_samples=0)
    start = train(read_folder(phantoms), config, tmp_path / "start.pt")
    assert start.metrics["bn_frozen"] is False
    tuned = replace(config, epochs=2, lr=1e-3, selection="last_epoch")
    result = train(read_folder(phantoms), tuned, tmp_path / "tuned.pt", init=start.checkpoint)
    m = result.metrics
    assert m["bn_frozen"] is True and m["best_epoch"] == 2
    assert set(m["final_candidates"]) == {"init", "selected_epoch", "shipped"}
    assert m["val_mae"] == pytest.approx(min(m["final_candidates"]["init"], m["final_candidates"]["selected_epoch"]))
    stats = lambda path: {k: v for k, v in torch.load(path, weights_only=True)["state_dict"].items()
                          if k.endswith(("running_mean", "running_var"))}
    before, after = stats(start.checkpoint), stats(result.checkpoint)
    assert before and all(torch.equal(before[k], after[k]) for k in before)


def test_a_step_with_a_non_finite_gradient_is_skipped_so_no_weight_becomes_nan(phantoms, tmp_path):
    """A learning rate of 1e4 without clipping sends the loss to infinity within a few steps; before the skip, the
    next step's NaN gradient made every weight NaN (a fine-tune on this CPU did that at lr 1e-3, test above)."""
    config = TrainConfig(model=TINY, epochs=2, batch_size=4, teacher_epochs=0, teacher_decay_epochs=0, mc_samples=0,
                         lr=1e4, weight_decay=0.0, grad_clip=1e30, warmup_fraction=0.0, precise_bn_batches=0)
    result = train(read_folder(phantoms), config, tmp_path / "m.pt")
    assert result.metrics["skipped_steps"] >= 1
    weights = torch.load(result.checkpoint, weights_only=True)["state_dict"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
