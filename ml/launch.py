"""Run a training under torchrun from Python (a platform run that asks for several GPUs).

The caller's samples, config and validation ids go to the ranks as a job file; rank 0 appends its progress to a
JSON-lines file that this process reads back into the caller's callback (steps, epochs, and `should_stop`, which
stops the whole process group). The result is the same TrainResult as `ml.train.train` returns in-process.

    result = train_in_processes(samples, config, out, nproc=2, callback=cb, init=None, val_ids=val, workdir=tmp)
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ml.checkpoint import file_sha256, load_checkpoint
from ml.data import Sample
from ml.train import TrainCallback, TrainConfig, TrainResult

POLL_S = 0.5


@dataclass(frozen=True)
class TrainJob:
    samples: list[Sample]
    config: TrainConfig
    out: Path
    init: Path | None
    val_ids: list[str] | None

    def write(self, path: Path) -> None:
        path.write_text(json.dumps({
            "samples": [{**asdict(s), "image_path": str(s.image_path),
                         "mask_path": str(s.mask_path) if s.mask_path else None} for s in self.samples],
            "config": self.config.to_dict(), "out": str(self.out), "init": str(self.init) if self.init else None,
            "val_ids": self.val_ids}))

    @classmethod
    def read(cls, path: Path) -> TrainJob:
        data = json.loads(Path(path).read_text())
        samples = [Sample(s["id"], Path(s["image_path"]), Path(s["mask_path"]) if s["mask_path"] else None,
                          float(s["age_months"]), s["male"]) for s in data["samples"]]
        return cls(samples, TrainConfig.from_dict(data["config"]), Path(data["out"]),
                   Path(data["init"]) if data["init"] else None, data["val_ids"])


class ProgressFile(TrainCallback):
    """Rank 0's callback under torchrun: one JSON line per reported step and per epoch."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def _append(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, default=float) + "\n")

    def on_step(self, step: int, loss: float) -> None:
        self._append({"event": "step", "step": step, "loss": loss})

    def on_epoch_end(self, epoch: int, metrics: dict[str, Any]) -> None:
        self._append({"event": "epoch", "epoch": epoch,
                      "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}})


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to torchrun's process group (it forwards to the ranks), SIGKILL if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def train_in_processes(samples: list[Sample], config: TrainConfig, out: Path, *, nproc: int,
                       callback: Any = None, init: Path | None = None, val_ids: set[str] | None = None,
                       workdir: Path) -> TrainResult:
    callback = callback or TrainCallback()
    workdir.mkdir(parents=True, exist_ok=True)
    job_file, progress_file, log_file = workdir / "job.json", workdir / "progress.jsonl", workdir / "torchrun.log"
    progress_file.write_text("")
    TrainJob(samples, config, Path(out), init, sorted(val_ids) if val_ids is not None else None).write(job_file)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "ml.train", "--job", str(job_file), "--progress-file", str(progress_file), "--quiet"]
    curve: list[dict[str, Any]] = []
    pending = ""
    with log_file.open("wb") as log, progress_file.open() as progress:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   cwd=Path(__file__).resolve().parents[1])
        try:
            while True:
                finished = process.poll() is not None
                pending += progress.read()  # only what rank 0 appended since the last poll
                *lines, pending = pending.split("\n")  # the last piece may be a line rank 0 is still writing
                for line in lines:
                    record = json.loads(line)
                    if record["event"] == "step":
                        callback.on_step(record["step"], record["loss"])
                    else:
                        curve.append(record["metrics"])
                        callback.on_epoch_end(record["epoch"], record["metrics"])
                if finished:
                    break
                if callback.should_stop():
                    _stop(process)
                    return TrainResult(None, None, {"epochs": len(curve), "world_size": nproc}, curve, True)
                time.sleep(POLL_S)
        except BaseException:
            _stop(process)
            raise
    if process.returncode != 0:
        tail = log_file.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"distributed training ({nproc} processes) exited with {process.returncode}: {tail}")
    checkpoint = load_checkpoint(out)
    return TrainResult(Path(out), file_sha256(Path(out)), checkpoint.metrics, curve, False)
